"""Operations and discovery: landing page ``/``, ``/conformance``, ``/healthz``, ``/metrics``.

Router modules declare the conformance classes they implement in a module-level ``CONFORMANCE`` list; the app
factory gathers them into ``app.state.conformance``, which ``/conformance`` lists.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cim_service.errors import error_response, error_responses
from cim_service.features import formats
from cim_service.features.collections import link
from cim_service.metrics import CONTENT_TYPE, render
from cim_service.routes.alerts import update_metrics

router = APIRouter(tags=["Service"])

_FEAT = "http://www.opengis.net/spec/ogcapi-features-"
_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    _FEAT + "1/1.0/conf/core",
    _FEAT + "1/1.0/conf/geojson",
    _FEAT + "1/1.0/conf/html",
    _FEAT + "1/1.0/conf/oas30",
    _FEAT + "2/1.0/conf/crs",
    _FEAT + "3/1.0/conf/filter",
    _FEAT + "3/1.0/conf/features-filter",
    _FEAT + "3/1.0/conf/queryables",
    _FEAT + "3/1.0/conf/queryables-query-parameters",
    _CQL2 + "cql2-text",
    _CQL2 + "cql2-json",
    _CQL2 + "basic-cql2",
    _CQL2 + "advanced-comparison-operators",
    _CQL2 + "case-insensitive-comparison",
    _CQL2 + "basic-spatial-functions",
    _CQL2 + "basic-spatial-functions-plus",
    _CQL2 + "spatial-functions",
    _CQL2 + "temporal-functions",
    _CQL2 + "arithmetic",
    _CQL2 + "property-property",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting",
    _FEAT + "6/1.0/conf/property-selection",
]
F = Annotated[str | None, Query(description="Output format: json or html.")]


_DOC = {200: {"description": "JSON (default) or HTML", "content": {"application/json": {}, "text/html": {}}}}


@router.get("/", summary="Landing page", responses={**_DOC, **error_responses(400)})
async def landing(request: Request, f: F = None) -> Response:
    """Return the landing page: title, description and links to the API, conformance, collections and map."""
    fmt = formats.negotiate(request, f)
    base = str(request.base_url).rstrip("/")
    doc = {
        "title": request.app.title,
        "description": request.app.description,
        "links": [
            link(f"{base}/", "self", formats.JSON, "this document"),
            link(f"{base}/?f=html", "alternate", formats.HTML, "this document as HTML"),
            link(f"{base}/api", "service-desc", "application/vnd.oai.openapi+json;version=3.0", "OpenAPI"),
            link(f"{base}/api.html", "service-doc", formats.HTML, "API documentation"),
            link(f"{base}/conformance", "conformance", formats.JSON, "conformance classes"),
            link(f"{base}/collections", "data", formats.JSON, "collections"),
            link(f"{base}/tileMatrixSets", "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", formats.JSON,
                 "tile matrix sets"),
            link(f"{base}/tiles", "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", formats.JSON,
                 "vector tilesets (multi-layer)"),
            link(f"{base}/map", "alternate", formats.HTML, "CIM一张图 web map"),
        ],
    }
    if fmt == "html":
        return formats.html("landing.html", doc=doc, base=base, links=doc["links"])
    return formats.json_response(doc)


@router.get("/conformance", summary="Conformance classes", responses={**_DOC, **error_responses(400)})
async def conformance(request: Request, f: F = None) -> Response:
    """List the conformance classes the service implements."""
    fmt = formats.negotiate(request, f)
    doc = {"conformsTo": list(request.app.state.conformance)}
    if fmt == "html":
        return formats.html("conformance.html", doc=doc, base=str(request.base_url).rstrip("/"), links=[])
    return formats.json_response(doc)


@router.get("/healthz", summary="Liveness and database health", responses=error_responses(503))
async def healthz(request: Request) -> Response:
    """Check the database (``SELECT 1`` and PostGIS); 503 when it is unreachable."""
    db = request.app.state.db

    async def check() -> str:
        return await db.fetchval("SELECT postgis_lib_version()")

    try:
        postgis = await asyncio.wait_for(check(), timeout=5)
    except Exception:  # noqa: BLE001 - any failure means unhealthy; details stay in the server log
        try:
            postgis = await asyncio.wait_for(check(), timeout=5)  # one retry: a stale pooled connection
        except Exception:  # noqa: BLE001
            return error_response(503, "ServiceUnavailable", "database unreachable", {"Retry-After": "5"})
    return formats.json_response({"status": "ok", "database": "ok", "postgis": postgis})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Expose the Prometheus metrics (request latency by route, tile cache hits/misses, active alerts, ...)."""
    await update_metrics(request.app)
    return Response(render(), media_type=CONTENT_TYPE)
