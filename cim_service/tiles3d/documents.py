"""The OGC API 3D GeoVolumes documents of an extruded layer: its 3D container and the links to it."""

from __future__ import annotations

import math

from cim_service.core.catalog import LayerSpec

#: media type of a 3D Tiles tileset in OGC API 3D GeoVolumes content links
TILESET_TYPE = "application/json+3dtiles"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"


def content_links(spec: LayerSpec, base: str) -> list[dict]:
    """The ``content`` entries of a 3D container (one 3D Tiles tileset)."""
    return [{"rel": "original", "type": TILESET_TYPE, "title": f"{spec.title_en}: 3D Tiles 1.1",
             "href": f"{base}/collections/{spec.id}/3dtiles/tileset.json"}]


def container_doc(spec: LayerSpec, base: str, tileset: dict) -> dict:
    """``/collections/{id}/3dtiles``: the 3D container with its 3D extent (from the tileset's root region)."""
    w, s, e, n, h0, h1 = tileset["root"]["boundingVolume"]["region"]
    url = f"{base}/collections/{spec.id}/3dtiles"
    return {
        "id": spec.id,
        "title": spec.title_en,
        "title_zh": spec.title_zh,
        "collectionType": "3d-container",
        "extent": {"spatial": {"bbox": [[math.degrees(w), math.degrees(s), h0, math.degrees(e), math.degrees(n), h1]],
                               "crs": CRS84H}},
        "content": content_links(spec, base),
        "links": [{"rel": "self", "type": "application/json", "href": url},
                  {"rel": "collection", "type": "application/json", "href": f"{base}/collections/{spec.id}"},
                  *content_links(spec, base)],
    }
