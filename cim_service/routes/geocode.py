"""Geocoding (CJJ/T 315 地名地址 services) over the standard addresses: ``/geocode``, ``/geocode/batch``,
``/geocode/reverse``.

The layer with role ``standard_addresses`` is the reference; a caller who may not read it gets 404. ``crs``
chooses the CRS of returned points (and of the reverse query's point) like ``crs`` on items, GCJ-02/BD-09
included. Parsing, matching and CSV work run off the event loop.
"""

from __future__ import annotations

import math
from typing import Annotated

import orjson
import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cim_service.auth import Principal, can_read_layer, get_principal
from cim_service.core.catalog import LayerSpec
from cim_service.errors import InvalidParameter, NotFound, error_responses
from cim_service.features.crs import content_crs_header, literal_to_wgs84, resolve_crs
from cim_service.geocode.batch import BatchRequest, geocode_csv
from cim_service.geocode.service import DEFAULT_RADIUS_M, MAX_QUERY_CHARS, MAX_RADIUS_M, Geocoder, to_output
from cim_service.offloop import off_loop

router = APIRouter(tags=["Geocoding"], responses=error_responses(400, 401, 404, 503, 504))
GEOJSON = "application/geo+json"
#: largest number of candidates of a forward query
MAX_CANDIDATES = 50
#: largest number of rows of one batch upload (the body is also bounded by CIM_MAX_BODY_BYTES)
MAX_BATCH_ROWS = 100_000

Crs = Annotated[str | None, Query(description="CRS of the returned points (default CRS84); "
                                              "also `urn:cim:crs:gcj02`, `urn:cim:crs:bd09`.")]


def geocoder(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Geocoder:
    """The app's geocoder; 404 when the catalog has no standard addresses or the caller may not read them."""
    coder: Geocoder = request.app.state.geocoder
    spec: LayerSpec | None = coder.spec
    if spec is None or not can_read_layer(spec, principal):
        raise NotFound("no standard addresses to geocode against")
    return coder


def _only(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidParameter(f"unknown query parameter {unknown[0]!r}; use {', '.join(sorted(allowed))}")


@router.get("/geocode", summary="Address text to ranked standard addresses",
            responses={200: {"content": {GEOJSON: {}}}})
async def forward(
    request: Request,
    coder: Annotated[Geocoder, Depends(geocoder)],
    q: Annotated[str, Query(description="Address text, e.g. `莘松路958弄`.", max_length=MAX_QUERY_CHARS)],
    limit: Annotated[int, Query(ge=1, le=MAX_CANDIDATES, description="Number of candidates.")] = 5,
    crs: Crs = None,
) -> Response:
    """Return candidates, best first, with `score` (0-1) and `match_level`: building, door_plate, road,
    community, town, district or text."""
    _only(request, {"q", "limit", "crs"})
    if not q.strip():
        raise InvalidParameter("parameter 'q': empty address text")
    if "\x00" in q:
        raise InvalidParameter("parameter 'q': contains a NUL character")
    out_crs = resolve_crs(crs, "crs")
    index = await coder.index(request.app.state.db, request.app.state.engine)
    doc = await off_loop(coder.forward, index, q, limit, out_crs)
    return Response(orjson.dumps(doc), media_type=GEOJSON, headers={"Content-Crs": content_crs_header(out_crs)})


@router.post("/geocode/batch", summary="Geocode a CSV upload",
             responses={200: {"content": {"text/csv": {}}}},
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {
                 "schema": {"type": "string", "format": "binary"}}}}})
async def batch(
    request: Request,
    coder: Annotated[Geocoder, Depends(geocoder)],
    column: Annotated[str, Query(description="The column holding the address text.", max_length=200)] = "address",
    town_column: Annotated[str | None, Query(description="A column naming the town (a hint).", max_length=200)] = None,
    encoding: Annotated[str | None, Query(description="Text encoding (default: BOM, else UTF-8/GB18030 guessed).",
                                          max_length=40)] = None,
    crs: Crs = None,
) -> Response:
    """Return the uploaded rows with `address_code`, `match_level`, `score`, the point (`lon`/`lat`, or `x`/`y` in a
    projected CRS) and `town`. The body is the CSV file itself (`curl --data-binary @file.csv`)."""
    _only(request, {"column", "town_column", "encoding", "crs"})
    out_crs = resolve_crs(crs, "crs")
    data = await request.body()
    if not data:
        raise InvalidParameter("the request body is empty: send the CSV file as the body")
    index = await coder.index(request.app.state.db, request.app.state.engine)
    req = BatchRequest(data, column, town_column, out_crs, encoding, MAX_BATCH_ROWS)
    text, rows = await off_loop(geocode_csv, req, index)
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Crs": content_crs_header(out_crs), "X-Rows": str(rows),
                             "Content-Disposition": 'attachment; filename="geocoded.csv"'})


@router.get("/geocode/reverse", summary="A point to its nearest standard address and town",
            responses={200: {"content": {GEOJSON: {}}}})
async def reverse(
    request: Request,
    coder: Annotated[Geocoder, Depends(geocoder)],
    lon: Annotated[float, Query(description="First axis of the point in `crs` (longitude for CRS84/GCJ-02).")],
    lat: Annotated[float, Query(description="Second axis of the point in `crs`.")],
    radius: Annotated[float, Query(gt=0, le=MAX_RADIUS_M, description="Search radius in metres.")] = DEFAULT_RADIUS_M,
    crs: Crs = None,
) -> Response:
    """Return the nearest standard address within `radius` (none when there is none) and the town at the point.

    `lon`/`lat` are read in `crs` (its axis order), and the address is returned in it."""
    _only(request, {"lon", "lat", "radius", "crs"})
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidParameter("parameters 'lon'/'lat': finite numbers expected")
    in_crs = resolve_crs(crs, "crs")
    point = literal_to_wgs84(shapely.Point(lon, lat), in_crs, "lon/lat")
    row, town = await coder.reverse(request.app.state.db, point.x, point.y, radius)
    features = []
    if row is not None:
        (x, y), = to_output([row["lon"]], [row["lat"]], in_crs)
        features.append({"type": "Feature", "id": row["id"], "geometry": {"type": "Point", "coordinates": [x, y]},
                         "properties": {"address_code": row["address_code"], "full_address": row["full_address"],
                                        "town": row["town"], "district": row["district"],
                                        "distance_m": round(float(row["distance_m"]), 2)}})
    doc = {"type": "FeatureCollection", "features": features, "numberReturned": len(features), "town": town,
           "radius_m": radius}
    return Response(orjson.dumps(doc), media_type=GEOJSON, headers={"Content-Crs": content_crs_header(in_crs)})
