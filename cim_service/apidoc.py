"""The OpenAPI document at ``/api``: OpenAPI 3.0.3 that clients can plan with.

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12: ``anyOf`` with ``{"type": "null"}``, ``examples`` lists,
numeric ``exclusiveMinimum``). The OGC API conformance classes and the clients of the field (GDAL's OAPIF
driver, QGIS, OWSLib) expect 3.0, and the landing page announces
``application/vnd.oai.openapi+json;version=3.0``; so the document is rewritten as valid 3.0.3 (checked with
``openapi-spec-validator`` in the tests) and served with that media type.

What clients read from it:

- ``limit`` of ``/items`` with its ``default`` (``CIM_DEFAULT_LIMIT``) and ``maximum`` (``CIM_MAX_LIMIT``):
  GDAL and QGIS page at the maximum instead of their own small defaults;
- enums for ``f``, ``filter-lang``, ``crs``, ``bbox-crs`` and ``filter-crs``;
- one path per public collection (``/collections/cameras/items``, as pygeoapi and tipg do) whose parameters
  include the collection's queryables (equality filters, OGC API Features Part 3
  ``queryables-query-parameters``), so clients see that filters run on the server.

Only public collections are listed: the document is the same for every caller and reveals no other layer.
"""

from __future__ import annotations

import copy
from typing import Any

from cim_service.core.catalog import Access, Catalog, LayerSpec
from cim_service.core.settings import Settings
from cim_service.features.crs import CRS_LIST

MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"
ITEMS = "/collections/{collectionId}/items"
ITEM = "/collections/{collectionId}/items/{featureId}"
#: enums of parameters (canonical values; the routes also accept the documented aliases)
ENUMS: dict[str, dict[str, list[str]]] = {
    ITEMS: {"f": ["json", "html", "csv"], "filter-lang": ["cql2-text", "cql2-json"], "crs": CRS_LIST,
            "bbox-crs": CRS_LIST, "filter-crs": CRS_LIST},
    ITEM: {"f": ["json", "html"], "crs": CRS_LIST},
}
#: the same ``f`` enum on every other operation that has an ``f`` (JSON documents with an HTML view)
DOC_FORMATS = ["json", "html"]
TILE_FORMATS = ["mvt", "pbf"]


def openapi_30(doc: dict[str, Any], settings: Settings, catalog: Catalog) -> dict[str, Any]:
    """FastAPI's 3.1 document as OpenAPI 3.0.3, with limits, enums and per-collection paths."""
    out = _downgrade(copy.deepcopy(doc), in_parameter=False)
    out["openapi"] = "3.0.3"
    paths = out.get("paths", {})
    for path, item in paths.items():
        for operation in item.values():
            if isinstance(operation, dict):
                _parameters(path, operation)
    out.setdefault("components", {}).setdefault("parameters", {})["limit"] = limit_parameter(settings)
    for spec in catalog:
        if spec.access is Access.public:
            _collection_paths(paths, spec)
    return out


def _downgrade(node: Any, *, in_parameter: bool) -> Any:
    """Rewrite JSON Schema 2020-12 constructs into their OpenAPI 3.0 spelling (recursively)."""
    if isinstance(node, list):
        return [_downgrade(v, in_parameter=in_parameter) for v in node]
    if not isinstance(node, dict):
        return node
    if "in" in node and "name" in node and "schema" in node:  # a Parameter object: its values are never null
        return {k: _downgrade(v, in_parameter=(k == "schema")) for k, v in node.items()}
    out = {k: _downgrade(v, in_parameter=in_parameter) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and any(o == {"type": "null"} for o in options):
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1:
                merged = {**rest[0], **out}
                out = merged
            elif rest:
                out[key] = rest
            if not in_parameter:
                out["nullable"] = True
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]) and not in_parameter:
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else "string"
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[plain] = value
            out[bound] = True
    if isinstance(out.get("examples"), list) and "type" in out:  # a schema's examples list
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for key in ("contentMediaType", "contentEncoding", "$schema"):
        out.pop(key, None)
    return out


def _parameters(path: str, operation: dict[str, Any]) -> None:
    for param in operation.get("parameters", []):
        if "$ref" in param:
            continue
        name, schema = param.get("name"), param.setdefault("schema", {})
        enum = ENUMS.get(path, {}).get(name)
        if enum is None and name == "f" and param.get("in") == "query":
            enum = TILE_FORMATS if "/tiles/" in path and path.endswith("{y}") else DOC_FORMATS
        if enum is not None:
            schema.update({"type": "string", "enum": list(enum)})
    if "parameters" in operation:
        operation["parameters"] = [LIMIT_REF if path == ITEMS and p.get("name") == "limit" else p
                                   for p in operation["parameters"]]


#: ``limit`` is one shared parameter (``#/components/parameters/limit``, where QGIS reads it)
LIMIT_REF = {"$ref": "#/components/parameters/limit"}


def limit_parameter(settings: Settings) -> dict[str, Any]:
    """The ``limit`` parameter of every items operation, with its default and maximum."""
    return {"name": "limit", "in": "query", "required": False, "style": "form", "explode": False,
            "description": (f"Page size (default {settings.default_limit}, at most {settings.max_limit}; larger "
                            f"values are clamped to the maximum)."),
            "schema": {"type": "integer", "minimum": 1, "maximum": settings.max_limit,
                       "default": settings.default_limit}}


def _collection_paths(paths: dict[str, Any], spec: LayerSpec) -> None:
    """``/collections/{id}/items`` and ``…/items/{featureId}`` for one collection, queryables as parameters."""
    for generic, suffix in ((ITEMS, "items"), (ITEM, "items/{featureId}")):
        template = paths.get(generic, {}).get("get")
        if template is None:
            continue
        operation = copy.deepcopy(template)
        operation["parameters"] = [p for p in operation.get("parameters", [])
                                   if "$ref" in p or p.get("name") != "collectionId"]
        operation["operationId"] = f"{operation.get('operationId', 'get')}_{spec.id}"
        operation["summary"] = f"{operation.get('summary', '')} — {spec.title_en} {spec.title_zh}".strip(" —")
        operation["tags"] = [spec.title_en]
        if generic == ITEMS:
            operation["parameters"] += _queryable_parameters(spec)
        paths[f"/collections/{spec.id}/{suffix}"] = {"get": operation}


def _queryable_parameters(spec: LayerSpec) -> list[dict[str, Any]]:
    """Equality filters on the properties anonymous callers may read."""
    params = []
    for field in spec.public_fields(personal_data=False):
        schema = {k: v for k, v in field.type.info.json_schema.items() if k in ("type", "format")}
        if field.enum:
            schema["enum"] = list(field.enum)
        params.append({"name": field.name, "in": "query", "required": False, "style": "form", "explode": False,
                       "description": f"{field.title_en} ({field.title_zh}) equals this value.",
                       "schema": schema})
    return params
