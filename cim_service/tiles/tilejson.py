"""Tileset documents: OGC API Tiles tileset lists and metadata, and TileJSON 3.0 with ``vector_layers``."""

from __future__ import annotations

from urllib.parse import urlencode

from cim_service.core.catalog import FieldSpec, LayerSpec
from cim_service.core.region import DISTRICT_BBOX
from cim_service.errors import NotFound
from cim_service.tiles.labels import has_label_points, label_fields, label_layer_name
from cim_service.tiles.mvt import THIN_BELOW_ZOOM, THIN_GRID
from cim_service.tiles.tms import SUPPORTED, get_tms, tile_matrix_limits

MVT = "application/vnd.mapbox-vector-tile"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
REL_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
REL_TILESET = "http://www.opengis.net/def/rel/ogc/1.0/tileset"
#: the district (declared in ``core.region``), used when a layer has no extent yet
DEFAULT_BBOX = DISTRICT_BBOX
Bbox = tuple[float, float, float, float]


def check_tilejson_tms(tms_id: str) -> None:
    """TileJSON describes Web Mercator xyz tiles: other tile matrix sets have no TileJSON (404)."""
    get_tms(tms_id)
    if tms_id != "WebMercatorQuad":
        raise NotFound(f"TileJSON is offered for WebMercatorQuad only (TileJSON tiles are Web Mercator), not {tms_id}")


def tile_template(base: str, tms_id: str, query: dict[str, str] | None = None) -> str:
    """URL template of the tiles under ``base`` (a collection's or the dataset's ``/tiles``)."""
    qs = f"?{urlencode(query)}" if query else ""
    return f"{base}/{tms_id}/{{z}}/{{x}}/{{y}}{qs}"


def _dimension(spec: LayerSpec) -> int:
    if spec.geometry.is_point:
        return 0
    return 1 if "Line" in spec.geometry.value else 2


#: TileJSON types and JSON schemas of the live members a sensing layer's tiles carry (``tiles.mvt``)
LIVE_TILEJSON = {"latest_value": "Number", "latest_time": "String", "status": "String"}
LIVE_SCHEMA = {
    "latest_value": {"type": "number", "title": "Latest reading of the primary observed property"},
    "latest_time": {"type": "string", "format": "date-time", "title": "Phenomenon time of that reading"},
    "status": {"type": "string", "enum": ["ok", "warning", "alarm", "offline"], "title": "Live status"},
}


def properties_schema(spec: LayerSpec, fields: list[FieldSpec]) -> dict:
    """JSON schema of the properties a tile of ``spec`` carries (``count`` for point layers, the live members
    for sensing layers)."""
    props = {f.name: {**f.type.info.tile_schema, "title": f.title_en, "x-title-zh": f.title_zh} for f in fields}
    if spec.geometry.is_point:
        props["count"] = {"type": "integer", "title": "Points represented by this feature "
                          f"(> 1 only below zoom {THIN_BELOW_ZOOM}, where points are thinned per grid cell)"}
    if spec.sensing is not None:
        props.update(LIVE_SCHEMA)
    return {"type": "object", "properties": props}


def thinning(spec: LayerSpec) -> dict | None:
    """How low-zoom tiles of a point layer are thinned (``x-cim-thinning`` in tileset metadata and TileJSON)."""
    if not spec.geometry.is_point:
        return None
    return {"belowZoom": THIN_BELOW_ZOOM, "method": "one feature per grid cell", "grid": THIN_GRID,
            "countProperty": "count",
            "description": (f"Below zoom {THIN_BELOW_ZOOM} each tile is divided into {THIN_GRID} x {THIN_GRID} "
                            "cells and each non-empty cell holds one point (its smallest id) whose 'count' is "
                            "the number of points in the cell; sum(count) over a tile is the number of points "
                            f"in it. From zoom {THIN_BELOW_ZOOM} on every point is present with count = 1.")}


def union_bbox(boxes: list[Bbox | None]) -> Bbox:
    """Union of the known boxes, or Minhang's when none is known."""
    known = [b for b in boxes if b is not None]
    if not known:
        return DEFAULT_BBOX
    return (min(b[0] for b in known), min(b[1] for b in known), max(b[2] for b in known), max(b[3] for b in known))


def _layer_entry(spec: LayerSpec, fields: list[FieldSpec], maxzoom: int) -> dict:
    entry = {
        "id": spec.id, "title": spec.title_en, "description": spec.description_en or spec.title_zh,
        "dataType": "vector", "geometryDimension": _dimension(spec),
        "minTileMatrix": "0", "maxTileMatrix": str(maxzoom),
        "propertiesSchema": properties_schema(spec, fields),
    }
    thin = thinning(spec)
    if thin is not None:
        entry["x-cim-thinning"] = thin
    return entry


def tileset_metadata(title: str, base: str, root: str, tms_id: str,
                     layers: list[tuple[LayerSpec, list[FieldSpec]]], bbox: Bbox,
                     query: dict[str, str] | None = None) -> dict:
    """OGC API Tiles tileset metadata (vector) of ``layers``; ``base`` is the ``.../tiles`` URL, ``root`` the API's."""
    tms = get_tms(tms_id)
    return {
        "title": title,
        "dataType": "vector",
        "crs": str(tms.crs.root),
        "tileMatrixSetURI": str(tms.uri),
        "tileMatrixSetDefinition": f"{root}/tileMatrixSets/{tms_id}",
        "boundingBox": {"lowerLeft": [bbox[0], bbox[1]], "upperRight": [bbox[2], bbox[3]], "crs": CRS84},
        "centerPoint": {"coordinates": [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], "crs": CRS84,
                        "tileMatrix": "12"},
        "tileMatrixSetLimits": tile_matrix_limits(tms_id, bbox, tms.minzoom, tms.maxzoom),
        "layers": [_layer_entry(spec, fields, tms.maxzoom) for spec, fields in layers],
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/{tms_id}"},
            {"rel": REL_SCHEME, "type": "application/json", "href": f"{root}/tileMatrixSets/{tms_id}"},
            {"rel": "item", "type": MVT, "templated": True, "title": "Mapbox vector tiles ({z}/{x}/{y})",
             "href": tile_template(base, tms_id, query).replace("{z}", "{tileMatrix}")
             .replace("{x}", "{tileCol}").replace("{y}", "{tileRow}")},
            {"rel": "alternate", "type": "application/json", "title": "TileJSON 3.0",
             "href": f"{base}/{tms_id}/tilejson.json"},
        ],
    }


def tileset_list(title: str, base: str, root: str, data_type: str = "vector") -> dict:
    """``.../tiles``: one tileset per supported tile matrix set."""
    sets = []
    for tms_id in SUPPORTED:
        tms = get_tms(tms_id)
        sets.append({
            "title": f"{title} ({tms_id})", "dataType": data_type, "crs": str(tms.crs.root),
            "tileMatrixSetURI": str(tms.uri),
            "tileMatrixSetDefinition": f"{root}/tileMatrixSets/{tms_id}",
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{base}/{tms_id}"},
                {"rel": REL_TILESET, "type": "application/json", "href": f"{base}/{tms_id}"},
                {"rel": REL_SCHEME, "type": "application/json", "href": f"{root}/tileMatrixSets/{tms_id}"},
            ],
        })
    return {"links": [{"rel": "self", "type": "application/json", "href": base}], "tilesets": sets}


def tilejson(name: str, base: str, tms_id: str, layers: list[tuple[LayerSpec, list[FieldSpec]]],
             bbox: Bbox, query: dict[str, str] | None = None, live: bool = True, labels: bool = False) -> dict:
    """TileJSON 3.0 document for ``layers`` (xyz scheme) with their ``vector_layers`` and fields (with ``live``,
    the live members of sensing layers too; with ``labels``, the label-point layers of ``tiles.labels``)."""
    check_tilejson_tms(tms_id)
    tms = get_tms(tms_id)
    vector_layers = []
    for spec, fields in layers:
        described = {f.name: f.type.info.tilejson for f in fields}
        if spec.geometry.is_point:
            described["count"] = "Number"
        layer = {"id": spec.id, "description": spec.title_en, "fields": described,
                 "minzoom": tms.minzoom, "maxzoom": tms.maxzoom}
        if live and spec.sensing is not None:
            layer["fields"].update(LIVE_TILEJSON)
        thin = thinning(spec)
        if thin is not None:
            layer["x-cim-thinning"] = thin
        vector_layers.append(layer)
    if labels:
        vector_layers += [{"id": label_layer_name(spec), "description": f"{spec.title_en}: one label point per "
                           "feature (its interior point), in the one tile that holds it",
                           "fields": {name: "String" for name in label_fields(spec)},
                           "minzoom": tms.minzoom, "maxzoom": tms.maxzoom}
                          for spec, fields in layers if has_label_points(spec)
                          and set(label_fields(spec)) <= {f.name for f in fields}]
    return {
        "tilejson": "3.0.0", "name": name, "version": "1.0.0", "scheme": "xyz",
        "tiles": [tile_template(base, tms_id, query)],
        "minzoom": tms.minzoom, "maxzoom": tms.maxzoom,
        "bounds": list(bbox), "center": [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, 12],
        "vector_layers": vector_layers,
    }
