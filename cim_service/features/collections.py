"""Collection metadata documents: ``/collections``, ``/collections/{id}`` and ``/queryables`` bodies."""

from __future__ import annotations

from typing import Any

from cim_service.core.catalog import FieldSpec, LayerSpec
from cim_service.features.crs import CRS84, CRS_LIST
from cim_service.features.export import FORMATS as EXPORT_FORMATS
from cim_service.features.formats import CSV, GEOJSON, HTML, JSON
from cim_service.features.sql import quote_ident
from cim_service.store.db import Session

_GEOMETRY_SCHEMA = {
    "Point": "https://geojson.org/schema/Point.json", "MultiPoint": "https://geojson.org/schema/MultiPoint.json",
    "LineString": "https://geojson.org/schema/LineString.json",
    "MultiLineString": "https://geojson.org/schema/MultiLineString.json",
    "Polygon": "https://geojson.org/schema/Polygon.json",
    "MultiPolygon": "https://geojson.org/schema/MultiPolygon.json",
}
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_ITEMS = "items"
REL_TILESETS = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
#: the 3D container of an extruded layer, and the media type of its 3D Tiles tileset (OGC API 3D GeoVolumes)
REL_3DTILES = "http://www.opengis.net/def/rel/ogc/1.0/3dtiles"
TILESET_3D = "application/json+3dtiles"


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    """One OGC link object."""
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def tilesets_link(href: str) -> dict[str, str]:
    """The collection's link to its vector tilesets, without a ``type`` (optional in OGC API links).

    GDAL's ``OGCAPI:`` driver takes the tiles path for a collection whose links hold ``tilesets-vector`` typed
    ``application/json``, and never falls back to the items when that path fails. In GDAL 3.6 (Debian 12) the
    reading of vector tiles in that driver is compiled out (it sits under ``OGR_ENABLE_DRIVER_GML``, which its
    build defines only after the raster drivers are configured), so the path fails without a message and
    ``ogrinfo OGCAPI:…/collections/<id>`` opens nothing. Without the ``type`` the driver reads the features from
    ``items`` (exact geometries, every feature, no thinning), and clients that follow rels still find the tiles.
    """
    return {"href": href, "rel": REL_TILESETS, "title": "vector tilesets (OGC API Tiles; JSON)"}


async def temporal_extent(session: Session, spec: LayerSpec) -> list[str | None] | None:
    """``[min, max]`` of the layer's time field as ISO strings (index-assisted), None without a time field."""
    if not spec.time_field:
        return None
    col = quote_ident(spec.time_field)
    row = await session.fetchrow(f"SELECT min({col}) AS lo, max({col}) AS hi FROM {spec.qualified_table}")
    return [_iso(row["lo"]), _iso(row["hi"])]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text.replace("+00:00", "Z")


def collection_doc(spec: LayerSpec, state: dict[str, Any] | None, base: str,
                   interval: list[str | None] | None) -> dict[str, Any]:
    """The ``/collections/{id}`` document of one layer."""
    url = f"{base}/collections/{spec.id}"
    extent: dict[str, Any] = {}
    if state is not None and state["minx"] is not None:
        extent["spatial"] = {"bbox": [[state["minx"], state["miny"], state["maxx"], state["maxy"]]], "crs": CRS84}
    if interval is not None:
        extent["temporal"] = {"interval": [interval], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return {
        "id": spec.id,
        "title": spec.title_en,
        "title_zh": spec.title_zh,
        "description": spec.description_en or spec.title_en,
        "description_zh": spec.description_zh or spec.title_zh,
        "itemType": "feature",
        "geometryType": spec.geometry.value,
        "access": spec.access.value,
        "featureCount": int(state["feature_count"]) if state is not None else 0,
        "version": int(state["version"]) if state is not None else 0,
        "extent": extent,
        "crs": CRS_LIST,
        "storageCrs": CRS84,
        "links": [
            link(url, "self", JSON, "this collection"),
            link(f"{url}?f=html", "alternate", HTML, "this collection as HTML"),
            link(f"{url}/items", REL_ITEMS, GEOJSON, "features as GeoJSON"),
            link(f"{url}/items?f=html", REL_ITEMS, HTML, "features as HTML"),
            link(f"{url}/items?f=csv", REL_ITEMS, CSV, "features as CSV"),
            link(f"{url}/queryables", REL_QUERYABLES, "application/schema+json", "queryables"),
            tilesets_link(f"{url}/tiles"),
            *(link(f"{url}/items?f={f.name}", "enclosure", f.media_type, f"all features as {f.title}")
              for f in EXPORT_FORMATS.values()),
            *([link(f"{url}/3dtiles", REL_3DTILES, JSON, "3D container (OGC API 3D GeoVolumes)"),
               link(f"{url}/3dtiles/tileset.json", "original", TILESET_3D, "3D Tiles 1.1 tileset")]
              if spec.extruded else []),
        ],
        **({"content": [link(f"{url}/3dtiles/tileset.json", "original", TILESET_3D, "3D Tiles 1.1 tileset")]}
           if spec.extruded else {}),
    }


def queryables_doc(spec: LayerSpec, visible: list[FieldSpec], base: str) -> dict[str, Any]:
    """JSON Schema of the queryable properties (visible fields, ``id`` and the geometry)."""
    props: dict[str, Any] = {
        "id": {"title": "Feature id", "type": "integer"},
        "geometry": {"title": "Geometry", "format": f"geometry-{spec.geometry.value.lower()}",
                     "$ref": _GEOMETRY_SCHEMA[spec.geometry.value]},
    }
    for f in visible:
        schema = dict(f.type.info.json_schema)
        schema["title"] = f.title_en
        schema["x-title-zh"] = f.title_zh
        if f.description:
            schema["description"] = f.description
        if f.enum:
            schema["enum"] = f.enum
        if f.pattern:
            schema["pattern"] = f.pattern
        if f.minimum is not None:
            schema["minimum"] = f.minimum
        if f.maximum is not None:
            schema["maximum"] = f.maximum
        props[f.name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{spec.id}/queryables",
        "type": "object",
        "title": spec.title_en,
        "properties": props,
        "additionalProperties": False,
    }
