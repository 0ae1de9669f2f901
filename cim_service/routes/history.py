"""Feature history over HTTP: a feature's versions and a collection's changes in an interval.

``/collections/{id}/items/{featureId}/history`` lists the versions (oldest first) as a GeoJSON FeatureCollection
whose properties carry ``valid_from``, ``valid_to`` (null: current), ``op`` and ``actor``;
``/collections/{id}/changes?from=&to=`` lists what was inserted, updated or deleted in ``[from, to)`` with the
change kind (``change``). Access control is the current data's: an unreadable layer is 404, personal fields'
old values need the ``personal_data`` scope and their reads are access-logged like current ones.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from cim_service.auth import Principal, get_principal, log_access, needs_audit, resolve_layer, visible_fields
from cim_service.core.catalog import LayerSpec
from cim_service.errors import InvalidParameter, NotFound, error_responses
from cim_service.features import formats
from cim_service.features.asof import check_at, parse_at
from cim_service.features.collections import link
from cim_service.features.crs import content_crs_header, resolve_crs
from cim_service.features.params import parse_feature_id, parse_properties
from cim_service.features.query import changes_sql, history_sql
from cim_service.features.sql import Params
from cim_service.offloop import off_loop

router = APIRouter(tags=["Feature history"], responses=error_responses(400, 401, 404, 503, 504))
CONFORMANCE: list[str] = []
_GEO = {200: {"description": "GeoJSON", "content": {"application/geo+json": {}}}}
Limit = Annotated[int | None, Query(ge=1, description="Page size; values above the maximum are clamped.")]
Offset = Annotated[int, Query(ge=0, le=2**53, description="Number of versions to skip.")]
Props = Annotated[str | None, Query(description="Comma-separated properties to return.")]
Crs = Annotated[str | None, Query(description="Output CRS URI (default CRS84).")]


async def _page(request: Request, spec: LayerSpec, principal: Principal, sql: str, params: Params, out_crs,
                action: str, names: list[str], detail: dict, limit: int, offset: int) -> tuple[str, int]:
    row = await request.app.state.db.fetchrow(sql, *params.values)
    returned, features = int(row["returned"]), row["features"]
    if out_crs.python_crs and features:
        features = await off_loop(formats.to_python_crs, features, out_crs.python_crs)
    if needs_audit(spec, names):  # old values of personal fields are logged like current ones
        await log_access(request.app.state.db, principal, spec, action, names, {**detail, "returned": returned},
                         request.client.host if request.client else None)
    links = [link(str(request.url), "self", formats.GEOJSON, "this page")]
    if returned >= limit:
        links.append(link(str(request.url.include_query_params(offset=offset + returned, limit=limit)), "next",
                          formats.GEOJSON, "next page"))
    if offset > 0:
        links.append(link(str(request.url.include_query_params(offset=max(0, offset - limit), limit=limit)), "prev",
                          formats.GEOJSON, "previous page"))
    body = (f'{{"type":"FeatureCollection","features":[{features}],"numberReturned":{returned},'
            f'"links":{orjson.dumps(links).decode()}}}')
    return body, returned


@router.get("/collections/{collectionId}/items/{featureId}/history", summary="Versions of one feature",
            responses=_GEO)
async def feature_history(
    request: Request,
    collectionId: str,  # noqa: N803
    featureId: Annotated[str, Path(description="Feature id (integer).")],  # noqa: N803
    spec: Annotated[LayerSpec, Depends(resolve_layer)],
    principal: Annotated[Principal, Depends(get_principal)],
    properties: Props = None, crs: Crs = None, limit: Limit = None, offset: Offset = 0,
) -> Response:
    """Every version of the feature, oldest first (a deleted feature ends with its ``delete`` tombstone)."""
    settings = request.app.state.settings
    _no_history(spec)
    fid = parse_feature_id(featureId, spec)
    out_crs = resolve_crs(crs, "crs")
    props = parse_properties(properties, visible_fields(spec, principal))
    size = min(limit or settings.default_limit, settings.max_limit)
    params = Params()
    sql = history_sql(spec, props, out_crs, params, fid, size, offset)
    body, returned = await _page(request, spec, principal, sql, params, out_crs, "history",
                                 [p.name for p in props], {"id": fid}, size, offset)
    if returned == 0 and offset == 0:
        raise NotFound(f"feature {featureId!r} has no history in collection {spec.id!r}")
    return Response(body, media_type=formats.GEOJSON, headers={"Content-Crs": content_crs_header(out_crs)})


@router.get("/collections/{collectionId}/changes", summary="Features inserted, updated or deleted in an interval",
            responses=_GEO)
async def changes(
    request: Request,
    collectionId: str,  # noqa: N803
    spec: Annotated[LayerSpec, Depends(resolve_layer)],
    principal: Annotated[Principal, Depends(get_principal)],
    from_: Annotated[str | None, Query(alias="from", description="Start instant (RFC 3339, inclusive).")] = None,
    to: Annotated[str | None, Query(description="End instant (RFC 3339, exclusive; default now).")] = None,
    properties: Props = None, crs: Crs = None, limit: Limit = None, offset: Offset = 0,
) -> Response:
    """The changes of ``[from, to)`` in time order; ``properties.change`` is insert, update or delete."""
    from datetime import UTC, datetime

    settings = request.app.state.settings
    _no_history(spec)
    if from_ is None:
        raise InvalidParameter("parameter 'from' is required: the start of the interval (RFC 3339)")
    start = parse_at(from_, "from")
    end = parse_at(to, "to") if to is not None else datetime.now(UTC)
    if end <= start:
        raise InvalidParameter("parameters 'from'/'to': 'to' must be after 'from'")
    bound = timedelta(days=settings.history_max_interval_days)
    if end - start > bound:
        raise InvalidParameter(f"parameters 'from'/'to': the interval exceeds {bound.days} days; ask in parts")
    await check_at(request.app.state.db, [spec], start, "from")
    out_crs = resolve_crs(crs, "crs")
    props = parse_properties(properties, visible_fields(spec, principal))
    size = min(limit or settings.default_limit, settings.max_limit)
    params = Params()
    sql = changes_sql(spec, props, out_crs, params, start, end, size, offset)
    body, _ = await _page(request, spec, principal, sql, params, out_crs, "changes", [p.name for p in props],
                          {"from": start.isoformat(), "to": end.isoformat()}, size, offset)
    return Response(body, media_type=formats.GEOJSON, headers={"Content-Crs": content_crs_header(out_crs)})


def _no_history(spec: LayerSpec) -> None:
    from cim_service.store import history

    if not history.has_history(spec):
        raise InvalidParameter(f"collection {spec.id!r} keeps no history (it is derived from other layers)")
