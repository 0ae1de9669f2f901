"""The CIM一张图 web map: the ``/map`` page, its static assets and the address search it uses."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from cim_service import encoding
from cim_service.auth import ANONYMOUS, Principal, can_read_layer, get_principal
from cim_service.core.catalog import Catalog, Role
from cim_service.errors import InvalidParameter
from cim_service.features.asof import check_at, parse_at
from cim_service.store import history, layer_state
from cim_service.store.db import Database
from cim_service.webmap.assets import (
    deck_bundle_etag,
    deck_bundle_path,
    own_asset_content,
    own_asset_type,
    own_assets,
)
from cim_service.webmap.page import SCREENS, VIEW_MODES, build_page_config, external_basemap, render_page
from cim_service.webmap.search import search_addresses

router = APIRouter(prefix="/map", tags=["map"])


async def district_bbox(db: Database, catalog: Catalog) -> tuple[float, float, float, float] | None:
    """Return the district outline's bbox from the layer state, or None when it is not loaded (or not declared)."""
    outline = catalog.role(Role.district_outline)
    if outline is None:
        return None
    extents = await db.run(lambda session: layer_state.fetch_extents(session, [outline.id]))
    return extents[outline.id]


At = Annotated[str | None, Query(description="RFC 3339 instant: the layers' tiles as of then (their history).")]


async def _at(request: Request, principal: Principal, at: str | None) -> str | None:
    """``at`` checked against the history of the source layers the caller may read, as a UTC instant."""
    if at is None:
        return None
    instant = parse_at(at)
    specs = [s for s in request.app.state.catalog if s.kind == "source" and can_read_layer(s, principal)]
    await check_at(request.app.state.db, specs, instant)
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def history_begins(db: Database, catalog: Catalog) -> dict[str, str | None]:
    """Return when each layer's history begins (RFC 3339, None: none yet): the time slider asks a layer as of a
    day only from then on (an earlier ``at=`` is refused)."""
    specs = [spec for spec in catalog if history.has_history(spec)]

    async def fetch(session) -> dict[str, str | None]:
        out = {}
        for spec in specs:
            begins = await history.fetch_begins(session, spec)
            out[spec.id] = begins.isoformat() if begins is not None else None
        return out

    return await db.run(fetch)


def _basemap(request: Request) -> dict | None:
    """The operator's external basemap (CIM_BASEMAP_URL, CIM_BASEMAP_CRS), or None."""
    settings = request.app.state.settings
    return external_basemap(settings.basemap_url, settings.basemap_crs)


@router.get("", response_class=HTMLResponse, summary="The CIM一张图 planners' web map")
async def map_page(
    request: Request,
    view: Annotated[str | None, Query(description="The first view: `2d` (default) or `3d` (pitched, rotated, "
                                                  "extruded buildings over the basemap).")] = None,
    screen: Annotated[str | None, Query(description="The layout: `planner` (default) or `ops`, the operations "
                                                    "centre's dark screen with KPI cards.")] = None,
    at: At = None,
) -> HTMLResponse:
    """Serve the map page (deck.gl, offline: every asset comes from this service).

    A page load carries no credentials, so the page describes the public layers only; once an API key is
    entered, the page replaces its configuration with ``/map/config`` for that key.
    """
    if view is not None and view not in VIEW_MODES:
        raise InvalidParameter(f"parameter 'view': {view[:40]!r} is not one of {', '.join(VIEW_MODES)}")
    if screen is not None and screen not in SCREENS:
        raise InvalidParameter(f"parameter 'screen': {screen[:40]!r} is not one of {', '.join(SCREENS)}")
    bbox = await district_bbox(request.app.state.db, request.app.state.catalog)
    begins = await history_begins(request.app.state.db, request.app.state.catalog)
    config = build_page_config(request.app.state.catalog, district_bbox=bbox, view_mode=view or "2d",
                               screen=screen or "planner", history_begins=begins,
                               at=await _at(request, ANONYMOUS, at),
                               default_indicator=getattr(request.app.state, "map_indicator", None),
                               basemap=_basemap(request))
    return HTMLResponse(render_page(config), headers={"Cache-Control": "no-cache"})


@router.get("/config", summary="The map's configuration for the caller: the layers and fields its key may see")
async def map_config(request: Request, principal: Annotated[Principal, Depends(get_principal)],
                     at: At = None) -> JSONResponse:
    """Return the page configuration (layers, fields, deck.gl spec) for the caller's API key."""
    bbox = await district_bbox(request.app.state.db, request.app.state.catalog)
    begins = await history_begins(request.app.state.db, request.app.state.catalog)
    config = build_page_config(request.app.state.catalog, principal=principal, district_bbox=bbox,
                               history_begins=begins, at=await _at(request, principal, at),
                               default_indicator=getattr(request.app.state, "map_indicator", None),
                               basemap=_basemap(request))
    return JSONResponse(config, headers={"Cache-Control": "private, no-store"})


@router.get("/static/{name:path}", summary="Map assets: the deck.gl bundle, the map's ES modules and CSS")
def map_static(name: str, request: Request) -> Response:
    """Serve the map's deck.gl bundle (built at install), or one of our map assets (modules as text/javascript)."""
    if name == "deck.js":
        etag = f'"{deck_bundle_etag()}"'
        if encoding.matches(request.headers.get("if-none-match", ""), etag):
            return Response(status_code=304, headers={"ETag": etag})
        return FileResponse(deck_bundle_path(), media_type="text/javascript",
                            headers={"ETag": etag, "Cache-Control": "public, max-age=86400"})
    if name not in own_assets():
        raise HTTPException(status_code=404, detail="no such map asset")
    # revalidated on every load (an edited module is seen at once), answered 304 while unchanged
    body, tag = own_asset_content(name)
    headers = {"ETag": f'"{tag}"', "Cache-Control": "no-cache"}
    if encoding.matches(request.headers.get("if-none-match", ""), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=own_asset_type(name), headers=headers)


@router.get("/search", summary="Find standard addresses by typed Chinese address text")
async def map_search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=100, description="Address text, e.g. 莲花南路1500弄")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict:
    """Return matching standard addresses with WGS84 coordinates, best first."""
    spec = request.app.state.catalog.role(Role.standard_addresses)
    if spec is None:
        raise HTTPException(status_code=404, detail="no address layer in the catalog")
    results = await request.app.state.db.run(lambda session: search_addresses(session, spec, q, limit))
    return {"query": q, "results": results}
