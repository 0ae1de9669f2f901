"""FastAPI application factory: ``create_app(settings)``.

Nothing is built at import time. The lifespan opens one asyncpg pool per process (kept on ``app.state.pool``),
reads the layer catalog once (``app.state.catalog``) and closes the pool on shutdown. Routers are discovered
from ``ROUTER_MODULES``: each module exposes ``router: APIRouter`` and, optionally,
``async def startup(app)`` / ``async def shutdown(app)`` hooks run in the lifespan (tile cache listeners,
indicator engine).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse

from cim_service import __version__
from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.errors import install_error_handlers
from cim_service.metrics import RequestObserver
from cim_service.store.db import create_pool

#: router modules, in the order their routes are matched
ROUTER_MODULES = (
    "cim_service.routes.ops",
    "cim_service.routes.features",
    "cim_service.routes.tiles",
    "cim_service.routes.indicators",
    "cim_service.routes.map",
)


def _router_modules() -> list:
    modules = []
    for name in ROUTER_MODULES:
        if importlib.util.find_spec(name) is not None:
            modules.append(importlib.import_module(name))
    return modules


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service application for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    modules = _router_modules()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(settings)
        try:
            for module in modules:
                hook = getattr(module, "startup", None)
                if hook is not None:
                    await hook(app)
            yield
        finally:
            for module in reversed(modules):
                hook = getattr(module, "shutdown", None)
                if hook is not None:
                    await hook(app)
            await app.state.pool.close()

    app = FastAPI(
        title="Minhang CIM 闵行区CIM一张图",
        version=__version__,
        description=("OGC API Features and Tiles, plan indicators and the CIM一张图 web map "
                     "for Minhang District."),
        lifespan=lifespan,
        openapi_url="/api",
        docs_url=None,  # served from local files by _offline_docs (no CDN at run time)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.catalog = load_catalog(settings.catalog_dir)
    install_error_handlers(app)
    _document_400_not_422(app)
    _offline_docs(app)
    for module in modules:  # optional ``MIDDLEWARE`` of router modules (e.g. the cached-tile fast path), added
        for middleware in getattr(module, "MIDDLEWARE", ()):  # first so CORS and RequestObserver wrap them
            app.add_middleware(middleware)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD"],
                           allow_headers=["X-API-Key", "Authorization", "Accept", "If-None-Match"],
                           expose_headers=["Content-Crs", "ETag", "Link"])
    app.add_middleware(RequestObserver, log_json=settings.log_json)
    for module in modules:
        app.include_router(module.router)
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
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


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
