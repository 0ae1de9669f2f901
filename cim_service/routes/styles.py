"""OGC API Styles: ``/styles``, ``/styles/{styleId}``, ``/collections/{collectionId}/styles[/{styleId}]``.

One style, ``default``, made from the catalog's ``style:`` declarations (``cim_service.styles.render``):

- ``?f=mapbox`` (default; ``Accept: application/vnd.mapbox.style+json``): a MapLibre/Mapbox GL style over the
  multi-layer vector tiles, with the collections the caller may read;
- ``?f=sld`` (``Accept: application/vnd.ogc.sld+xml``): SLD 1.1 / SE 1.1 with one named layer per collection
  (QGIS: *Layer Properties ▸ Style ▸ Load Style*).

Collections the caller may not read are 404, as everywhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cim_service.auth import Principal, can_read_layer, get_principal, resolve_layer
from cim_service.core.catalog import LayerSpec
from cim_service.errors import InvalidParameter, NotFound, error_responses
from cim_service.features.formats import json_response
from cim_service.store import layer_state
from cim_service.styles.render import MAPBOX, SLD, mapbox_style, sld
from cim_service.tiles.tilejson import union_bbox

router = APIRouter(tags=["Styles"], responses=error_responses(400, 404))
CONFORMANCE = ["http://www.opengis.net/spec/ogcapi-styles-1/1.0/conf/core",
               "http://www.opengis.net/spec/ogcapi-styles-1/1.0/conf/mapbox-styles",
               "http://www.opengis.net/spec/ogcapi-styles-1/1.0/conf/sld-11"]
STYLE_ID = "default"
F = Annotated[str | None, Query(description="Style encoding: mapbox (default) or sld.")]
Visible = Annotated[bool, Query(description=(
    "Only the layers shown by default (style.visible): for clients that draw every layer whatever its "
    "layout visibility, such as QGIS 3.22's MapLibre style converter."))]
_FORMATS = {"mapbox": "mapbox", MAPBOX: "mapbox", "sld": "sld", "application/vnd.ogc.sld+xml": "sld", SLD: "sld"}
_STYLE_RESPONSES = {200: {"content": {MAPBOX: {}, "application/vnd.ogc.sld+xml": {}},
                          "description": "MapLibre GL style JSON or SLD 1.1"}}


def _format(request: Request, f: str | None) -> str:
    if f is not None:
        fmt = _FORMATS.get(f.strip().lower())
        if fmt is None:
            raise InvalidParameter(f"parameter 'f': unsupported style encoding {f!r}; use mapbox or sld")
        return fmt
    accept = request.headers.get("accept", "").lower()
    return "sld" if "sld" in accept and "mapbox" not in accept else "mapbox"


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _check_style(style_id: str) -> None:
    if style_id != STYLE_ID:
        raise NotFound(f"style {style_id!r} not found; styles: {STYLE_ID}")


def _style_entry(base: str, title: str) -> dict:
    return {"id": STYLE_ID, "title": title, "links": [
        {"rel": "stylesheet", "type": MAPBOX, "title": "MapLibre GL style", "href": f"{base}/{STYLE_ID}?f=mapbox"},
        {"rel": "stylesheet", "type": SLD, "title": "SLD 1.1", "href": f"{base}/{STYLE_ID}?f=sld"},
    ]}


async def _render(request: Request, specs: list[LayerSpec], fmt: str, name: str) -> Response:
    if fmt == "sld":
        return Response(sld(specs), media_type=SLD)
    ids = [s.id for s in specs]
    extents = await request.app.state.db.run(lambda session: layer_state.fetch_extents(session, ids))
    doc = mapbox_style(name, specs, _root(request), union_bbox(list(extents.values())))
    return json_response(doc, media_type=MAPBOX)


@router.get("/styles", summary="Styles of the dataset")
async def styles(request: Request) -> dict:
    """List the styles (one: ``default``, from the catalog)."""
    base = f"{_root(request)}/styles"
    return {"default": STYLE_ID, "styles": [_style_entry(base, "Minhang CIM default style")]}


@router.get("/styles/{styleId}", summary="A style of the dataset", response_class=Response,
            responses=_STYLE_RESPONSES)
async def style(request: Request, styleId: str, f: F = None,  # noqa: N803 - OGC parameter name
                visible: Visible = False, principal: Principal = Depends(get_principal)) -> Response:
    """The style of every collection the caller may read (with ``visible``, of those shown by default), as
    MapLibre GL style JSON or SLD 1.1."""
    _check_style(styleId)
    specs = [s for s in request.app.state.catalog if can_read_layer(s, principal) and (s.style.visible or not visible)]
    return await _render(request, specs, _format(request, f), "Minhang CIM")


@router.get("/collections/{collectionId}/styles", summary="Styles of a collection")
async def collection_styles(request: Request, spec: LayerSpec = Depends(resolve_layer)) -> dict:
    """List the styles of one collection."""
    base = f"{_root(request)}/collections/{spec.id}/styles"
    return {"default": STYLE_ID, "styles": [_style_entry(base, f"{spec.title_zh} {spec.title_en}")]}


@router.get("/collections/{collectionId}/styles/{styleId}", summary="A style of a collection",
            response_class=Response, responses=_STYLE_RESPONSES)
async def collection_style(request: Request, styleId: str, f: F = None,  # noqa: N803
                           spec: LayerSpec = Depends(resolve_layer)) -> Response:
    """One collection's style, as MapLibre GL style JSON or SLD 1.1."""
    _check_style(styleId)
    return await _render(request, [spec], _format(request, f), spec.title_en)
