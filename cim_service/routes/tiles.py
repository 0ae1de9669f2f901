"""OGC API Tiles: tile matrix sets, vector tiles (MVT) per collection and multi-layer, raster tiles (PNG).

Conventions (documented for clients):

- tile paths are ``.../{tileMatrixSetId}/{z}/{x}/{y}`` (z = tileMatrix, x = tileCol, y = tileRow), also with the
  extension ``.mvt`` or ``.pbf`` (``.../12/3429/1675.pbf``: the same tile, for clients that want one, e.g.
  GDAL's MVT driver);
- a zoom, column or row outside the tile matrix set → **404** naming the valid range; an unknown tile matrix
  set → 404 listing the supported ones; malformed parameters → 400 naming the parameter;
- a tile without features → **204 No Content** (MapLibre, deck.gl and OpenLayers treat it as empty);
- every tile has a strong ``ETag``; ``If-None-Match`` → 304; ``Cache-Control: public, max-age=60`` for public
  layers, ``private, no-store`` for internal/restricted layers or personal fields;
- collections the caller may not read → 404, as for unknown ones; personal fields only with ``personal_data``;
- raster tiles of the indicator COGs: ``/rasters`` and ``/rasters/{name}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.png``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse

from cim_service.auth import Principal, get_principal, log_access, needs_audit, resolve_layer, visible_fields
from cim_service.core.catalog import LayerSpec
from cim_service.errors import InvalidParameter
from cim_service.features.asof import check_at, parse_at
from cim_service.offloop import off_loop
from cim_service.store import history, layer_state
from cim_service.tiles import mvt, raster
from cim_service.tiles.filters import filtered_request
from cim_service.tiles.labels import has_label_points, label_fields
from cim_service.tiles.params import (
    MVT,
    check_format,
    check_properties_known,
    is_public,
    request_coding,
    select_fields,
    select_layers,
    tile_response,
)
from cim_service.tiles.service import LayerRequest, TileState
from cim_service.tiles.tilejson import tilejson, tileset_list, tileset_metadata, union_bbox
from cim_service.tiles.tms import SUPPORTED, get_tms, tile_ref, tms_definition, tms_summary

router = APIRouter(tags=["Tiles"])

_TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
_TMS = "http://www.opengis.net/spec/tms/2.0/conf/"
#: OGC API Tiles conformance classes implemented here (listed by ``/conformance``)
CONFORMANCE = [
    _TILES + "core", _TILES + "tileset", _TILES + "tilesets-list", _TILES + "geodata-tilesets",
    _TILES + "dataset-tilesets", _TILES + "geodata-selection", _TILES + "mvt", _TILES + "oas30",
    _TMS + "tilematrixset", _TMS + "json-tilematrixset",
]

TmsId = Annotated[str, "tileMatrixSetId"]
Properties = Annotated[str | None, Query(description="Comma-separated property names to include in tiles.")]
Format = Annotated[str | None, Query(description="Tile format: mvt (the only one; default).")]
Filter = Annotated[str | None, Query(description="CQL2 filter applied to the features of the tile.")]
FilterCrs = Annotated[str | None, Query(alias="filter-crs", description="CRS of geometry literals (CRS84).")]
FilterLang = Annotated[str | None, Query(alias="filter-lang", description="cql2-text (default) or cql2-json.")]
At = Annotated[str | None, Query(description="RFC 3339 instant (or date): the layers as they were then.")]
Collections = Annotated[str | None, Query(description="Comma-separated collection ids (default: all readable).")]
Labels = Annotated[bool, Query(description="Also one label point per feature of the labelled polygon collections, "
                                           "in the one tile holding it: MVT layer '<collection>.labels'.")]
TILE_DESCRIPTION = (
    "Mapbox vector tile (`application/vnd.mapbox-vector-tile`). Empty tile → 204; `ETag` + `If-None-Match` → "
    "304; zoom/column/row outside the tile matrix set → 404 naming the valid range.\n\n" + (mvt.__doc__ or "")
)
TILE_RESPONSES = {200: {"content": {MVT: {}}, "description": "Mapbox vector tile"},
                  204: {"description": "Empty tile"}, 304: {"description": "Not modified"}}


async def startup(app: FastAPI) -> None:
    """Create the tile cache (when it is on), kept current by the app's layer-version listener."""
    app.state.tiles = TileState.create(app.state.db, app.state.settings, app.state.listener)


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _bboxes(request: Request, specs: list[LayerSpec]) -> list:
    ids = [s.id for s in specs]
    return list((await request.app.state.db.run(lambda session: layer_state.fetch_extents(session, ids))).values())


async def _audit(request: Request, principal: Principal, reqs: list[LayerRequest], detail: dict) -> None:
    client = request.client.host if request.client else None
    for r in reqs:
        read = list(dict.fromkeys([*r.fields, *r.filter_fields]))  # a filter on a field reads it too
        if needs_audit(r.spec, read):
            await log_access(request.app.state.db, principal, r.spec, "tile", read, detail, client)


# -- tile matrix sets ------------------------------------------------------------------------------

@router.get("/tileMatrixSets", summary="Tile matrix sets offered")
async def tile_matrix_sets(request: Request) -> dict:
    """List the supported tile matrix sets."""
    return {"tileMatrixSets": [tms_summary(t, _root(request)) for t in SUPPORTED]}


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="Tile matrix set definition")
async def tile_matrix_set(tileMatrixSetId: TmsId) -> dict:  # noqa: N803 - OGC parameter name
    """Return the OGC TileMatrixSet 2.0 definition."""
    return tms_definition(tileMatrixSetId)


# -- collection tiles ------------------------------------------------------------------------------

@router.get("/collections/{collectionId}/tiles", summary="Tilesets of a collection")
async def collection_tilesets(request: Request, spec: LayerSpec = Depends(resolve_layer)) -> dict:
    """List the vector tilesets of a collection (one per tile matrix set)."""
    root = _root(request)
    return tileset_list(spec.title_en, f"{root}/collections/{spec.id}/tiles", root)


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", summary="Tileset metadata of a collection")
async def collection_tileset(request: Request, tileMatrixSetId: TmsId,  # noqa: N803
                             spec: LayerSpec = Depends(resolve_layer),
                             principal: Principal = Depends(get_principal)) -> dict:
    """Return OGC API Tiles tileset metadata for a collection."""
    get_tms(tileMatrixSetId)
    root = _root(request)
    layers = [(spec, visible_fields(spec, principal))]
    return tileset_metadata(spec.title_en, f"{root}/collections/{spec.id}/tiles", root, tileMatrixSetId, layers,
                            union_bbox(await _bboxes(request, [spec])))


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json", summary="TileJSON of a collection")
async def collection_tilejson(request: Request, tileMatrixSetId: TmsId,  # noqa: N803
                              spec: LayerSpec = Depends(resolve_layer),
                              principal: Principal = Depends(get_principal)) -> dict:
    """Return a TileJSON 3.0 document with the collection's vector layer and fields."""
    get_tms(tileMatrixSetId)
    layers = [(spec, visible_fields(spec, principal))]
    return tilejson(spec.id, f"{_root(request)}/collections/{spec.id}/tiles", tileMatrixSetId, layers,
                    union_bbox(await _bboxes(request, [spec])))


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}", summary="Vector tile of a collection",
            description=TILE_DESCRIPTION, response_class=Response, responses=TILE_RESPONSES)
@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.pbf", include_in_schema=False)
@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.mvt", include_in_schema=False)
async def collection_tile(request: Request, tileMatrixSetId: TmsId, z: int, x: int, y: int,  # noqa: N803
                          properties: Properties = None, f: Format = None, filter: Filter = None,
                          filter_lang: FilterLang = None, filter_crs: FilterCrs = None, at: At = None,
                          spec: LayerSpec = Depends(resolve_layer),
                          principal: Principal = Depends(get_principal)) -> Response:
    """Return the MVT of one collection (layer named after the collection)."""
    check_format(f)
    tile = tile_ref(tileMatrixSetId, z, x, y)
    fields = select_fields(spec, principal, properties)
    req = LayerRequest(spec, fields)
    if filter is not None:  # parsing is CPU work proportional to the filter's length: off the event loop
        req = await off_loop(filtered_request, spec, principal, fields, filter, filter_lang, filter_crs)
    if at is not None:
        req = replace(req, at=await _instant(request, [spec], at))
    content = await request.app.state.tiles.tile([req], tile, request_coding(request))
    await _audit(request, principal, [req], {"tms": tile.tms_id, "z": z, "x": x, "y": y})
    return tile_response(request, content, is_public([spec], [fields]), live=spec.sensing is not None and at is None)


async def _instant(request: Request, specs: list[LayerSpec], at: str) -> datetime:
    """The parsed ``at``, checked against each layer's history."""
    instant = parse_at(at)
    await check_at(request.app.state.db, specs, instant)
    return instant


# -- dataset (multi-layer) tiles -------------------------------------------------------------------

@router.get("/tiles", summary="Dataset tilesets (multi-layer)")
async def dataset_tilesets(request: Request) -> dict:
    """List the multi-layer tilesets (one per tile matrix set)."""
    root = _root(request)
    return tileset_list("Minhang CIM", f"{root}/tiles", root)


def _dataset_layers(request: Request, principal: Principal, collections: str | None) -> list:
    specs = select_layers(request, principal, collections)
    return [(s, visible_fields(s, principal)) for s in specs]


@router.get("/tiles/{tileMatrixSetId}", summary="Dataset tileset metadata (multi-layer)")
async def dataset_tileset(request: Request, tileMatrixSetId: TmsId, collections: Collections = None,  # noqa: N803
                          principal: Principal = Depends(get_principal)) -> dict:
    """Return tileset metadata of the multi-layer tiles (the selected or all readable collections)."""
    get_tms(tileMatrixSetId)
    layers = _dataset_layers(request, principal, collections)
    root = _root(request)
    query = {"collections": collections} if collections else None
    return tileset_metadata("Minhang CIM", f"{root}/tiles", root, tileMatrixSetId, layers,
                            union_bbox(await _bboxes(request, [s for s, _ in layers])), query)


@router.get("/tiles/{tileMatrixSetId}/tilejson.json", summary="TileJSON of the multi-layer tiles")
async def dataset_tilejson(request: Request, tileMatrixSetId: TmsId, collections: Collections = None,  # noqa: N803
                           labels: Labels = False, principal: Principal = Depends(get_principal)) -> dict:
    """Return TileJSON 3.0 for the multi-layer tiles, one vector layer per collection (and label layer)."""
    get_tms(tileMatrixSetId)
    layers = _dataset_layers(request, principal, collections)
    query = {"collections": collections} if collections else {}
    if labels:
        query["labels"] = "true"
    return tilejson("minhang-cim", f"{_root(request)}/tiles", tileMatrixSetId, layers,
                    union_bbox(await _bboxes(request, [s for s, _ in layers])), query or None, labels=labels)


@router.get("/tiles/{tileMatrixSetId}/{z}/{x}/{y}", summary="Multi-layer vector tile",
            description="One MVT layer per collection (named by its id). " + TILE_DESCRIPTION,
            response_class=Response, responses=TILE_RESPONSES)
@router.get("/tiles/{tileMatrixSetId}/{z}/{x}/{y}.pbf", include_in_schema=False)
@router.get("/tiles/{tileMatrixSetId}/{z}/{x}/{y}.mvt", include_in_schema=False)
async def dataset_tile(request: Request, tileMatrixSetId: TmsId, z: int, x: int, y: int,  # noqa: N803
                       collections: Collections = None, properties: Properties = None, f: Format = None,
                       filter: Annotated[str | None, Query(description="Not supported here: use collection tiles.")]
                       = None, at: At = None, labels: Labels = False,
                       principal: Principal = Depends(get_principal)) -> Response:
    """Return one MVT with one layer per selected collection (and, with ``labels``, their label points)."""
    check_format(f)
    if filter is not None:
        raise InvalidParameter("parameter 'filter' is supported on collection tiles "
                               "(/collections/{collectionId}/tiles/...), not on multi-layer tiles")
    if labels and at is not None:
        raise InvalidParameter("parameter 'labels' shows the layers as they are now: not with 'at'")
    tile = tile_ref(tileMatrixSetId, z, x, y)
    specs = select_layers(request, principal, collections)
    check_properties_known(specs, principal, properties)
    if at is not None and collections is None:  # all layers as of then: those that keep a history
        specs = [s for s in specs if history.has_history(s)]
    instant = await _instant(request, specs, at) if at is not None else None
    reqs = [LayerRequest(s, select_fields(s, principal, properties, strict=False), at=instant) for s in specs]
    if labels:
        reqs += label_requests(specs, principal)
    content = await request.app.state.tiles.tile(reqs, tile, request_coding(request))
    await _audit(request, principal, reqs, {"tms": tile.tms_id, "z": z, "x": x, "y": y})
    return tile_response(request, content, is_public([r.spec for r in reqs], [r.fields for r in reqs]),
                         live=instant is None and any(s.sensing is not None for s in specs))


def label_requests(specs: list[LayerSpec], principal: Principal) -> list[LayerRequest]:
    """The label-point layers of the labelled polygon collections among ``specs`` whose label fields the caller
    may see."""
    out = []
    for spec in specs:
        if has_label_points(spec):
            fields = label_fields(spec)
            if set(fields) <= set(select_fields(spec, principal, None, strict=False)):
                out.append(LayerRequest(spec, fields, labels=True))
    return out


# -- raster tiles ----------------------------------------------------------------------------------

@router.get("/rasters", summary="Rasters served as PNG tiles")
def rasters(request: Request) -> dict:
    """List the rasters (indicator COGs) with their tile URL templates."""
    root = _root(request)
    names = raster.list_rasters(request.app.state.settings.home)
    return {"rasters": [{"id": n, "links": [{
        "rel": "item", "type": "image/png", "templated": True,
        "href": f"{root}/rasters/{n}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"}]} for n in names]}


@router.get("/rasters/{name}/tilejson.json", summary="TileJSON of a raster")
def raster_tilejson(request: Request, name: str) -> dict:
    """Return a TileJSON 3.0 document for a raster's PNG tiles (WebMercatorQuad)."""
    path = raster.raster_path(request.app.state.settings.home, name)
    return raster.raster_tilejson(path, name, _root(request))


@router.get("/rasters/{name}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.png", summary="Raster tile (PNG)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}, 204: {"description": "Empty"}})
def raster_tile(request: Request, name: str, tileMatrixSetId: TmsId, z: int, x: int, y: int,  # noqa: N803
                colormap: Annotated[str, Query(description="rio-tiler colormap name.")] = raster.DEFAULT_COLORMAP,
                rescale: Annotated[str | None, Query(description="min,max of the colour ramp.")] = None) -> Response:
    """Render a colour-mapped PNG tile of a raster (blocking rasterio work, run in the threadpool)."""
    tile_ref(tileMatrixSetId, z, x, y)
    path = raster.raster_path(request.app.state.settings.home, name)
    png = raster.render_png(path, tileMatrixSetId, z, x, y, colormap.lower(), raster.parse_rescale(rescale))
    if png is None:
        return Response(status_code=204)
    return Response(content=png, media_type="image/png", headers={"Cache-Control": "public, max-age=60"})


# -- rasters as coverages (OGC API Coverages: the COG itself, its description and value legend) ----------

COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def _raster_doc(request: Request, name: str, path) -> dict:
    root = _root(request)
    info = raster.raster_description(path)
    return {
        "id": name, "title": name.replace("_", " "), "itemType": "coverage", "dataType": "coverage",
        "extent": {"spatial": {"bbox": [info["bbox"]], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
        "storageCrs": info["crs"], "x-cim-raster": info,
        "legend": raster.raster_legend(path),
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{root}/rasters/{name}"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage", "type": COG,
             "href": f"{root}/rasters/{name}/coverage", "title": "the Cloud-Optimized GeoTIFF (range requests)"},
            {"rel": "describedby", "type": "application/json", "href": f"{root}/rasters/{name}/legend",
             "title": "value legend"},
            {"rel": "alternate", "type": "application/json", "href": f"{root}/rasters/{name}/tilejson.json",
             "title": "TileJSON 3.0 of the PNG tiles"},
            {"rel": "item", "type": "image/png", "templated": True,
             "href": f"{root}/rasters/{name}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"},
        ],
    }


@router.get("/rasters/{name}", summary="A raster as a coverage: description, legend, links")
def raster_collection(request: Request, name: str) -> dict:
    """Describe a raster (CRS, grid, data type, nodata, extent), with its value legend and links."""
    return _raster_doc(request, name, raster.raster_path(request.app.state.settings.home, name))


@router.get("/rasters/{name}/legend", summary="Value legend of a raster")
def raster_legend(request: Request, name: str,
                  colormap: Annotated[str, Query(description="rio-tiler colormap name.")] = raster.DEFAULT_COLORMAP,
                  rescale: Annotated[str | None, Query(description="min,max of the colour ramp.")] = None) -> dict:
    """Values and the colours the PNG tiles draw them in (same ``colormap`` and ``rescale``)."""
    path = raster.raster_path(request.app.state.settings.home, name)
    return raster.raster_legend(path, colormap.lower(), raster.parse_rescale(rescale))


@router.get("/rasters/{name}/coverage", summary="The raster as a Cloud-Optimized GeoTIFF",
            response_class=FileResponse, responses={200: {"content": {COG: {}}}, 206: {"description": "Range"}})
def raster_coverage(request: Request, name: str) -> FileResponse:
    """Download the COG (``Range`` requests give 206, so GDAL's /vsicurl/ reads only the blocks it needs)."""
    path = raster.raster_path(request.app.state.settings.home, name)
    return FileResponse(path, media_type=COG, filename=f"{name}.tif",
                        headers={"Cache-Control": "public, max-age=60"})
