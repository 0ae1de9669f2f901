"""OGC API Coverages: the indicator rasters as coverage collections (``cim_service.tiles.coverage``).

``/collections/{collectionId}`` and the ``/collections`` list describe a coverage through :func:`describe` and
:func:`listed` (called by the features routes, which own those paths); the coverage's own resources are here.
Every handler is a plain ``def``: rasterio blocks, so Starlette runs them in its threadpool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from cim_service.errors import error_responses
from cim_service.features import formats
from cim_service.tiles import coverage

router = APIRouter(tags=["Coverages"])
CONFORMANCE = coverage.CONFORMANCE
CoverageId = Annotated[str, PathParam(description="Coverage collection id, e.g. `camera_density`.")]


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _layer_ids(request: Request) -> set[str]:
    return {s.id for s in request.app.state.catalog}


def is_coverage(request: Request, collection_id: str) -> bool:
    """Tell whether ``collection_id`` names a coverage (a raster that is not a layer)."""
    return collection_id in coverage.coverage_ids(request.app.state.settings.home, _layer_ids(request))


def _path(request: Request, collection_id: str) -> Path:
    return coverage.coverage_path(request.app.state.settings.home, collection_id, _layer_ids(request))


def describe(request: Request, collection_id: str) -> dict:
    """The collection document of coverage ``collection_id`` (blocking: run it in a thread)."""
    return coverage.collection_doc(_path(request, collection_id), collection_id, _root(request))


def listed(request: Request) -> list[dict]:
    """The collection documents of every coverage, for ``/collections`` (blocking: run it in a thread)."""
    home, ids = request.app.state.settings.home, _layer_ids(request)
    return [coverage.collection_doc(coverage.coverage_path(home, n, ids), n, _root(request))
            for n in coverage.coverage_ids(home, ids)]


@router.get("/collections/{collectionId}/coverage", summary="The coverage: the COG, or a GeoTIFF subset",
            response_class=Response,
            responses={200: {"content": {coverage.COG: {}, coverage.GEOTIFF: {}}},
                       206: {"description": "Range of the COG"}, **error_responses(400, 404)})
def get_coverage(
    request: Request, collectionId: CoverageId,  # noqa: N803 - OGC path parameter name
    subset: Annotated[list[str] | None, Query(description="Window in CRS84 degrees: `Lon(a:b),Lat(c:d)` (or one "
                                                            "axis per parameter).")] = None,
    bbox: Annotated[str | None, Query(description="Window in CRS84: west,south,east,north.")] = None,
    scaleSize: Annotated[list[str] | None, Query(description="Output size in cells: `Lon(w),Lat(h)`; at most "  # noqa: N803
                                                              f"{coverage.MAX_SIDE} a side.")] = None,
) -> Response:
    """Without parameters the stored COG (``Range`` → 206); with ``subset``/``bbox``/``scaleSize`` a GeoTIFF."""
    path = _path(request, collectionId)
    req = coverage.parse_request(path, subset or [], bbox, scaleSize or [])
    if req is None:
        return FileResponse(path, media_type=coverage.COG, filename=f"{collectionId}.tif",
                            headers={"Cache-Control": "public, max-age=60"})
    body = coverage.render_geotiff(path, req)
    return Response(body, media_type=coverage.GEOTIFF, headers={
        "Cache-Control": "public, max-age=60",
        "Content-Disposition": f'inline; filename="{collectionId}-subset.tif"',
        "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4326>"})


@router.get("/collections/{collectionId}/coverage/domainset", summary="Domain set of a coverage (CIS 1.1 JSON)",
            responses=error_responses(404))
def get_domainset(request: Request, collectionId: CoverageId) -> Response:  # noqa: N803
    """The coverage's grid: CRS84 axes (Lon, Lat) with bounds and cell size, and its index limits."""
    return formats.json_response(coverage.domainset(_path(request, collectionId)))


@router.get("/collections/{collectionId}/coverage/rangetype", summary="Range type of a coverage (CIS 1.1 JSON)",
            responses=error_responses(404))
def get_rangetype(request: Request, collectionId: CoverageId) -> Response:  # noqa: N803
    """What a cell holds: the band's quantity, data type and nodata value."""
    return formats.json_response(coverage.rangetype(_path(request, collectionId), collectionId))
