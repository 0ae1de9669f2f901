"""FastAPI application factory: ``create_app(settings)``, the one place where the service is assembled.

Nothing is built at import time. ``create_app`` resolves the database URL once (the configured one, or the
project-local cluster's), reads the layer catalog once (``app.state.catalog``) and includes every router by
name. The lifespan opens what one process holds, in this order, and closes it in reverse:

- ``app.state.db``: the async connection pool of the requests (:class:`cim_service.store.db.Database`);
- ``app.state.engine``: the synchronous engine of work done in threads (indicator computations);
- ``app.state.listener``: one LISTEN connection keeping layer versions current, shared by the tile cache, the
  gap-layer refresher and the ``/events`` hub (``app.state.events``, which also listens to observations and alerts);
- the tile cache (``app.state.tiles``), the built 3D Tiles (``app.state.tiles3d``), the indicator engine and
  the refresher (``routes.indicators``);
- ``app.state.sensing``: the MQTT bridge and the observations' maintenance (``cim_service.sensing.service``), when
  ``Settings.run_sensor_bridge``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, Response

import cim_service.routes.events as events_routes
from cim_service import __version__
from cim_service.apidoc import MEDIA_TYPE as OPENAPI_MEDIA_TYPE
from cim_service.apidoc import openapi_30
from cim_service.compression import Compression
from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.edge import Edge, Methods
from cim_service.errors import install_error_handlers
from cim_service.geocode.service import Geocoder
from cim_service.metrics import SENSOR_OBSERVATIONS, SENSOR_REJECTED, RequestObserver
from cim_service.offloop import Slots
from cim_service.routes import alerts as alerts_routes
from cim_service.routes import coverages, features, geocode, indicators, ops, pmtiles, sta, styles, tiles, tiles3d
from cim_service.routes import edit as edit_routes
from cim_service.routes import fonts as font_routes
from cim_service.routes import history as history_routes
from cim_service.routes import map as map_routes
from cim_service.sensing.alerts import rules_for
from cim_service.sensing.service import SensingService
from cim_service.store.db import Database, make_engine
from cim_service.store.localdb import resolve_database_url
from cim_service.store.versions import VersionListener
from cim_service.styles.glyphs import GlyphStore
from cim_service.styles.labels import WebFonts
from cim_service.tiles.fastpath import CachedTileFastPath


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service application for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    if not settings.database_url:
        settings = settings.model_copy(update={"database_url": resolve_database_url(settings)})
    url = settings.database_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(url, min_size=settings.pool_min_size, max_size=settings.pool_max_size,
                                statement_timeout_ms=settings.statement_timeout_ms)
        await app.state.db.open()
        app.state.engine = make_engine(url)
        app.state.listener = VersionListener(url)
        try:
            await tiles.startup(app)
            await tiles3d.startup(app)
            await indicators.startup(app)
            await alerts_routes.startup(app)  # the rules in the database before the bridge writes readings
            await events_routes.startup(app)  # its channels registered before the listener connects
            await app.state.listener.start()
            app.state.sensing = None
            if settings.run_sensor_bridge:
                sensing = SensingService(settings, url, on_committed=SENSOR_OBSERVATIONS.inc,
                                         on_rejected=lambda reason, n: SENSOR_REJECTED.labels(reason).inc(n))
                if await asyncio.to_thread(sensing.start):
                    app.state.sensing = sensing
            await sta.startup(app)  # after the sensing service, which starts the project-local broker
            yield
        finally:
            await sta.shutdown(app)
            await events_routes.shutdown(app)
            if getattr(app.state, "sensing", None) is not None:
                await asyncio.to_thread(app.state.sensing.stop)
            await indicators.shutdown(app)
            await app.state.listener.stop()
            app.state.engine.dispose()
            await app.state.db.close()

    app = FastAPI(
        title="Minhang CIM 闵行区CIM一张图",
        version=__version__,
        description=("OGC API Features and Tiles, plan indicators and the CIM一张图 web map "
                     "for Minhang District."),
        lifespan=lifespan,
        openapi_url=None,  # /api is served by _openapi_document (OpenAPI 3.0.3, cim_service/apidoc.py)
        docs_url=None,  # served from local files by _offline_docs (no CDN at run time)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.exports = Slots(settings.max_concurrent_exports)  # file exports running at once
    app.state.catalog = load_catalog(settings.catalog_dir)
    app.state.alert_rules = rules_for(settings, app.state.catalog)  # a bad rules file stops the start here
    app.state.geocoder = Geocoder(app.state.catalog)  # the address index is read on first use
    app.state.glyphs = GlyphStore(settings.home / "glyphs")  # glyph ranges, built on first request and cached
    app.state.webfonts = WebFonts(settings.home / "fonts" / "web")  # the map's label font subsets
    app.state.sprites = {}  # pixel ratio -> the point symbols' sprite sheet, made on first request
    app.state.conformance = list(dict.fromkeys([*ops.CONFORMANCE, *tiles.CONFORMANCE, *sta.CONFORMANCE,
                                                *styles.CONFORMANCE, *edit_routes.CONFORMANCE,
                                                *coverages.CONFORMANCE]))
    install_error_handlers(app)
    _document_400_not_422(app)
    _openapi_document(app)
    _offline_docs(app)
    app.add_middleware(Compression)  # innermost: cached tiles (already compressed) never pass through it
    # added next, so CORS and RequestObserver wrap it: anonymous cache hits of public tiles skip routing
    app.add_middleware(CachedTileFastPath)
    app.add_middleware(Methods)  # HEAD and OPTIONS on every route; inside CORS so preflights reach CORS first
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Accept", "If-None-Match", "Range",
                                          "If-Match", "Content-Type", "Content-Crs"],
                           expose_headers=["Content-Crs", "ETag", "Link", "Content-Range", "Accept-Ranges",
                                           "Location"],
                           max_age=3600)
    app.add_middleware(Edge, settings=settings)  # request bounds, link origin, client address, loop-lag probe
    app.add_middleware(RequestObserver, log_json=settings.log_json)
    # routes are matched in this order
    app.include_router(ops.router)
    app.include_router(features.router)
    app.include_router(history_routes.router)
    app.include_router(edit_routes.router)
    app.include_router(tiles.router)
    app.include_router(coverages.router)
    app.include_router(tiles3d.router)
    app.include_router(styles.router)
    app.include_router(font_routes.router)
    app.include_router(indicators.router)
    app.include_router(geocode.router)
    app.include_router(map_routes.router)
    app.include_router(sta.router)
    app.include_router(pmtiles.router)
    app.include_router(alerts_routes.router)
    app.include_router(events_routes.router)
    return app


def _document_400_not_422(app: FastAPI) -> None:
    """Drop FastAPI's generated 422 responses from the OpenAPI document: validation errors are 400 here."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if isinstance(operation, dict):
                        operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = openapi_30(schema, app.state.settings, app.state.catalog)
        return app.openapi_schema

    app.openapi = openapi


def _openapi_document(app: FastAPI) -> None:
    """Serve the OpenAPI document at ``/api`` with the OpenAPI 3.0 media type (built once, then cached)."""
    body: list[bytes] = []

    @app.get("/api", include_in_schema=False)
    async def api_document() -> Response:
        if not body:
            body.append(orjson.dumps(app.openapi()))
        return Response(body[0], media_type=OPENAPI_MEDIA_TYPE)


def _offline_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/api.html`` from the ``swagger-ui-bundle-v2`` wheel, not from a CDN."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/api-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="api-static")

    @app.get("/api.html", include_in_schema=False)
    async def api_html(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/api", title=f"{app.title} — API",
            swagger_js_url=f"{root}/api-static/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/api-static/swagger-ui.css",
            swagger_favicon_url=f"{root}/api-static/favicon-32x32.png",
        )
