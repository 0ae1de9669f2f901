"""OGC API Features Parts 1-3: ``/collections``, ``/collections/{id}``, ``/queryables``, ``/items``, ``/items/{fid}``.

Access: a layer the caller may not read is 404 (as if absent) and missing from ``/collections``; personal fields
without the ``personal_data`` scope are unknown properties. ``limit`` above ``CIM_MAX_LIMIT`` is clamped to it
(OGC allows this); non-integers and values below 1 are a 400. Reads of restricted layers or personal fields
are written to ``cim_meta.access_log``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from cim_service.auth import (
    Principal,
    can_read_layer,
    get_principal,
    log_access,
    needs_audit,
    resolve_layer,
    visible_fields,
)
from cim_service.core.catalog import Access, LayerSpec
from cim_service.errors import Busy, InvalidParameter, NotFound, error_responses
from cim_service.features import export, formats, keyset
from cim_service.features.asof import check_at, parse_at
from cim_service.features.asof import source as as_of_source
from cim_service.features.collections import collection_doc, link, queryables_doc, temporal_extent
from cim_service.features.cql2 import FilterContext, coerce, parse_filter, to_sql
from cim_service.features.crs import content_crs_header, resolve_crs
from cim_service.features.params import bbox_condition, parse_feature_id, parse_properties, parse_sortby
from cim_service.features.query import ItemsQuery, item_sql, items_sql, linked_condition, matched_value
from cim_service.features.sql import Params, field_cast, quote_ident
from cim_service.features.temporal import datetime_condition
from cim_service.metrics import FEATURES_RETURNED
from cim_service.offloop import off_loop, stream_from_thread
from cim_service.routes import coverages
from cim_service.store import layer_state
from cim_service.store.db import Session

router = APIRouter(tags=["OGC API Features"], responses=error_responses(400, 401, 404, 503, 504))
_GEO = {200: {"description": "GeoJSON (default), HTML or CSV",
              "content": {"application/geo+json": {}, "text/html": {}, "text/csv": {}}}}
_DOC = {200: {"description": "JSON (default) or HTML", "content": {"application/json": {}, "text/html": {}}}}

#: query parameters of /items that are not property filters
ITEMS_PARAMS = {"at", "bbox", "bbox-crs", "datetime", "limit", "offset", "cursor", "properties", "sortby", "filter",
                "filter-lang", "filter-crs", "crs", "f"}
#: ``f`` values of /items: pages (json, html, csv) and file exports (features.export.FORMATS)
ITEMS_FORMATS = ("json", "html", "csv", *export.FORMATS)
F = Annotated[str | None, Query(description="Output format: json, html (or csv for items).")]
At = Annotated[str | None, Query(description="RFC 3339 instant (or date): the collection as it was then, from its "
                                             "history. Not `datetime`, which filters on a feature's own date.")]
CollectionId = Annotated[str, Path(description="Collection (layer) id, e.g. `cameras`.")]


def base_url(request: Request) -> str:
    """Service root URL, without trailing slash."""
    return str(request.base_url).rstrip("/")


@router.get("/collections", summary="List the collections the caller may read", responses=_DOC)
async def collections(request: Request, principal: Annotated[Principal, Depends(get_principal)],
                      f: F = None) -> Response:
    """List every readable layer with extent, CRS list and links."""
    fmt = formats.negotiate(request, f)
    base = base_url(request)
    specs = [s for s in request.app.state.catalog if can_read_layer(s, principal)]

    async def fetch(session: Session) -> list[dict[str, Any]]:
        states = await layer_state.fetch_states(session)
        return [collection_doc(s, states.get(s.id), base, await temporal_extent(session, s)) for s in specs]

    docs = await request.app.state.db.run(fetch)
    docs += await run_in_threadpool(coverages.listed, request)  # the rasters, as coverage collections
    body = {"collections": docs, "links": [
        formats_link(base, "/collections", "self", formats.JSON),
        formats_link(base, "/collections?f=html", "alternate", formats.HTML)]}
    if fmt == "html":
        return formats.html("collections.html", doc=body, base=base, links=body["links"])
    return formats.json_response(body)


def formats_link(base: str, path: str, rel: str, type_: str) -> dict[str, str]:
    """A link relative to the service root."""
    return link(f"{base}{path}", rel, type_)


@router.get("/collections/{collectionId}", summary="Describe one collection", responses=_DOC)
async def collection(request: Request, collectionId: CollectionId,  # noqa: N803
                     principal: Annotated[Principal, Depends(get_principal)], f: F = None) -> Response:
    """Return the layer's metadata: titles, extent (spatial and temporal), CRS list and links (or a coverage's)."""
    fmt = formats.negotiate(request, f)
    base = base_url(request)
    if coverages.is_coverage(request, collectionId):
        doc = await run_in_threadpool(coverages.describe, request, collectionId)
        if fmt == "html":
            return formats.html("collection.html", doc=doc, base=base, links=doc["links"])
        return formats.json_response(doc)
    spec = await resolve_layer(collectionId, request, principal)

    async def fetch(session: Session) -> dict[str, Any]:
        states = await layer_state.fetch_states(session)
        return collection_doc(spec, states.get(spec.id), base, await temporal_extent(session, spec))

    doc = await request.app.state.db.run(fetch)
    if fmt == "html":
        return formats.html("collection.html", doc=doc, base=base, links=doc["links"])
    return formats.json_response(doc)


@router.get("/collections/{collectionId}/queryables", summary="Queryable properties (JSON Schema)",
            responses={200: {"content": {"application/schema+json": {}, "text/html": {}}}})
async def queryables(request: Request, collectionId: CollectionId,  # noqa: N803
                     spec: Annotated[LayerSpec, Depends(resolve_layer)],
                     principal: Annotated[Principal, Depends(get_principal)], f: F = None) -> Response:
    """Return the JSON Schema of the properties usable in ``filter`` (personal ones only with the scope)."""
    fmt = formats.negotiate(request, f)
    doc = queryables_doc(spec, visible_fields(spec, principal), base_url(request))
    if fmt == "html":
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
        return formats.html("json.html", title=f"{spec.title_zh} queryables", text=text, base=base_url(request),
                            links=[])
    return formats.json_response(doc, media_type="application/schema+json")


_ITEMS = {200: {"description": "GeoJSON (default), HTML, CSV; or a whole-result file export (GeoPackage, "
                              "FlatGeobuf, GeoParquet 1.1, GeoJSON text sequence), streamed",
                "content": {"application/geo+json": {}, "text/html": {}, "text/csv": {},
                            **{f.media_type: {} for f in export.FORMATS.values()}}},
           503: {"description": "Database unavailable, or as many exports running as allowed (Retry-After)"}}


@router.get("/collections/{collectionId}/items",
            summary="Features of a collection (GeoJSON, HTML, CSV pages; GeoPackage, FlatGeobuf, GeoParquet, "
                    "GeoJSONSeq exports)", responses=_ITEMS)
async def items(
    request: Request,
    collectionId: CollectionId,  # noqa: N803
    spec: Annotated[LayerSpec, Depends(resolve_layer)],
    principal: Annotated[Principal, Depends(get_principal)],
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in `bbox-crs` axis order.")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description="CRS of `bbox` (default CRS84).")] = None,
    datetime_: Annotated[str | None, Query(alias="datetime",
                                           description="Instant or interval `start/end` (`..` open).")] = None,
    limit: Annotated[int | None, Query(ge=1, description="Page size; values above the maximum are clamped. "
                                       "Exports: all matched features when absent (refused above the "
                                       "export maximum), else clamped to it.")] = None,
    offset: Annotated[int, Query(ge=0, le=2**53, description="Number of features to skip.")] = 0,
    cursor: Annotated[str | None, Query(description="Keyset position from a `next` link: the page starts "
                                        "after the feature it names (in the same `sortby`).")] = None,
    properties: Annotated[str | None, Query(description="Comma-separated properties to return.")] = None,
    sortby: Annotated[str | None, Query(description="Comma-separated properties, `-` for descending.")] = None,
    filter_: Annotated[str | None, Query(alias="filter", description="CQL2 filter expression.")] = None,
    filter_lang: Annotated[str | None, Query(alias="filter-lang", description="cql2-text or cql2-json.")] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs", description="CRS of geometries in `filter`.")] = None,
    crs: Annotated[str | None, Query(description="Output CRS URI (default CRS84).")] = None,
    f: Annotated[str | None, Query(description="Output format: json, html, csv (pages); gpkg, fgb, parquet, "
                                   "geojsonseq (file exports of every matched feature).")] = None,
    at: At = None,
) -> Response:
    """Return a page of features filtered by bbox, datetime, CQL2 and property values (as of ``at``), or export."""
    settings = request.app.state.settings
    fmt = formats.negotiate(request, f, ITEMS_FORMATS)
    visible = visible_fields(spec, principal)
    out_crs = resolve_crs(crs, "crs")
    page_max = settings.max_limit if fmt != "html" else min(settings.max_limit, settings.max_html_limit)
    q = ItemsQuery(spec=spec, properties=parse_properties(properties, visible), crs=out_crs,
                   order=parse_sortby(sortby, visible), limit=min(limit or settings.default_limit, page_max),
                   offset=offset, offline_s=settings.sensor_offline_s)
    args = (request, spec, visible, q.params, bbox, bbox_crs, datetime_, filter_, filter_lang, filter_crs)
    # parsing a filter is CPU work proportional to its length: off the event loop
    q.where, filtered_on = await off_loop(_conditions, *args) if filter_ else _conditions(*args)
    if at is not None:
        instant = parse_at(at)
        await check_at(request.app.state.db, [spec], instant)
        q.source = as_of_source(spec, q.params.bind(instant, "timestamptz"))
    if cursor is not None:
        q.after = keyset.after_condition(spec, q.order, keyset.decode(cursor, q.order), q.params)
    names = [p.name for p in q.properties]
    read = list(dict.fromkeys([*names, *sorted(filtered_on), *(c.strip('"') for c, _ in q.order if c != '"id"')]))
    if fmt in export.FORMATS:
        return await _export(request, principal, q, export.FORMATS[fmt], limit, read)
    sql = items_sql(q)

    row = await request.app.state.db.fetchrow(sql, *q.params.values)
    returned, matched = int(row["returned"]), matched_value(row["matched"], bool(q.where))
    if matched is not None and cursor is None and matched < q.offset + returned:
        matched = None  # layer_state behind the table: don't report it
    # after a cursor the page's position is unknown: a full page means "maybe more"
    matched_for_links = matched if cursor is None else None
    features = row["features"]
    if out_crs.python_crs and features:
        features = await off_loop(formats.to_python_crs, features, out_crs.python_crs)
    # /metrics is anonymous: a non-public layer is counted under its access level, never named (its existence
    # is not revealed to callers who may not read it)
    label = spec.id if spec.access is Access.public else f"({spec.access.value})"
    FEATURES_RETURNED.labels(collection=label).inc(returned)
    if needs_audit(spec, read):  # filtering or sorting on a field reads it too
        await log_access(request.app.state.db, principal, spec, "items", read,
                         {"query": request.url.query, "returned": returned}, _client(request))
    next_cursor = keyset.encode(q.order, list(row["last_key"])) if row["last_key"] is not None else None
    links = _page_links(request, q.offset, q.limit, returned, matched_for_links, next_cursor, cursor is not None)
    headers = {"Content-Crs": content_crs_header(out_crs)}
    # the ETag covers what the page says (not its timeStamp): equal pages revalidate with a 304
    tag_parts = (fmt, headers["Content-Crs"], features, str(returned), str(matched), orjson.dumps(links).decode())
    etag = (await off_loop(formats.content_etag, *tag_parts) if len(features) >= formats.ETAG_OFF_LOOP_CHARS
            else formats.content_etag(*tag_parts))
    unchanged = formats.not_modified(request, etag, headers)
    if unchanged is not None:
        return unchanged
    headers["ETag"] = etag
    envelope = (f'{{"type":"FeatureCollection","features":[{features}],"numberReturned":{returned},'
                + (f'"numberMatched":{matched},' if matched is not None else "")
                + f'"timeStamp":"{_now()}","links":{orjson.dumps(links).decode()}}}')
    if fmt == "json":
        return Response(envelope, media_type=formats.GEOJSON, headers=headers)
    return await off_loop(_render_page, fmt, envelope, names, spec, base_url(request), headers)


async def _export(request: Request, principal: Principal, q: ItemsQuery, fmt: export.ExportFormat,
                  limit: int | None, read: list[str]) -> Response:
    """Stream every matched feature (or ``limit`` of them) as a file, from a worker thread; 503 when busy."""
    settings = request.app.state.settings
    plan = export.ExportPlan(spec=q.spec, fmt=fmt, properties=q.properties, crs=q.crs, order=q.order,
                             limit=min(limit or settings.max_export_features, settings.max_export_features),
                             offset=q.offset, refuse_above_limit=limit is None, params=q.params, where=q.where,
                             after=q.after)
    headers = {"Content-Crs": content_crs_header(q.crs),
               "Content-Disposition": f'attachment; filename="{plan.filename}"',
               "Cache-Control": "private, no-store" if q.spec.access is not Access.public else "no-cache"}
    if request.scope.get("cim.head"):  # HEAD: the headers of the export, without running it
        return Response(status_code=200, media_type=fmt.media_type, headers=headers)
    slots = request.app.state.exports
    if not slots.take():
        raise Busy(f"{slots.size} exports are running (CIM_MAX_CONCURRENT_EXPORTS); retry later",
                   headers={"Retry-After": "10"})
    spec = q.spec
    label = spec.id if spec.access is Access.public else f"({spec.access.value})"

    def produce(emit) -> None:  # noqa: ANN001 - the thread's emit
        written = export.run_export(plan, settings.database_url, emit, batch_rows=settings.export_batch_rows,
                                    statement_timeout_ms=settings.statement_timeout_ms)
        FEATURES_RETURNED.labels(collection=label).inc(written)

    try:
        body = await stream_from_thread(produce, on_done=slots.give_back)
    except export.ExportTooLarge as exc:
        raise InvalidParameter(f"parameter 'limit': the query matches more than {exc.bound} features, the most "
                               f"one export holds (CIM_MAX_EXPORT_FEATURES); narrow it (bbox, filter) or export "
                               f"in parts with limit and cursor") from None
    if needs_audit(spec, read):
        await log_access(request.app.state.db, principal, spec, "export", read,
                         {"query": request.url.query, "format": fmt.name}, _client(request))
    return StreamingResponse(body, media_type=fmt.media_type, headers=headers)


def _render_page(fmt: str, envelope: str, names: list[str], spec: LayerSpec, base: str,
                 headers: dict[str, str]) -> Response:
    """An items page as CSV or HTML (CPU work: run off the event loop)."""
    doc = orjson.loads(envelope)
    if fmt == "csv":
        csv_text = formats.features_to_csv(doc["features"], names)
        headers["Content-Disposition"] = f'attachment; filename="{spec.id}.csv"'
        return Response(csv_text, media_type="text/csv; charset=utf-8", headers=headers)
    response = formats.html("items.html", doc=doc, columns=names, collection=spec.id, base=base,
                            title=f"{spec.title_zh} {spec.title_en}", links=[])
    response.headers.update(headers)
    return response


def _conditions(request: Request, spec: LayerSpec, visible: list, params: Params, bbox: str | None,
                bbox_crs: str | None, datetime_: str | None, filter_: str | None, filter_lang: str | None,
                filter_crs: str | None) -> tuple[list[str], set[str]]:
    """WHERE clauses of the request (bbox, datetime, CQL2 filter, property equality parameters), fields used."""
    where: list[str] = []
    if bbox is not None:
        where.append(bbox_condition(bbox, resolve_crs(bbox_crs, "bbox-crs"), spec, params))
    elif bbox_crs is not None:
        resolve_crs(bbox_crs, "bbox-crs")
    if datetime_ is not None:
        if not spec.time_field or spec.time_field not in {f.name for f in visible}:
            raise InvalidParameter(f"parameter 'datetime': collection {spec.id!r} has no temporal property")
        where.append(datetime_condition(datetime_, spec.field(spec.time_field), params))
    ctx = FilterContext(fields={f.name: f for f in visible}, filter_crs=resolve_crs(filter_crs, "filter-crs"),
                        params=params)
    if filter_ is not None and filter_.strip():
        where.append(to_sql(parse_filter(filter_, filter_lang), ctx))
    elif filter_lang is not None and filter_lang.strip().lower() not in ("cql2-text", "cql2-json"):
        raise InvalidParameter(f"parameter 'filter-lang': unsupported {filter_lang!r}; use cql2-text or cql2-json")
    for name, value in request.query_params.items():
        if name in ITEMS_PARAMS:
            continue
        field = ctx.fields.get(name)
        if field is None:  # OGC /req/core/query-param-unknown; hidden personal fields are unknown too
            raise InvalidParameter(f"unknown query parameter {name!r}; besides {', '.join(sorted(ITEMS_PARAMS))}, "
                                   f"property names filter by equality")
        where.append(f"{quote_ident(name)} = {params.bind(coerce(value, field, name), field_cast(field))}")
        ctx.used.add(name)
    return where, ctx.used


def _page_links(request: Request, offset: int, limit: int, returned: int, matched: int | None,
                next_cursor: str | None, keyset_page: bool) -> list[dict]:
    """self/alternate and next/prev links of an items page.

    ``next`` is a keyset link (``cursor`` after this page's last feature, no ``offset``); ``prev`` is offered for
    offset pages only (a keyset page does not know its position).
    """
    url = request.url
    links = [
        link(str(url), "self", formats.GEOJSON, "this page"),
        link(str(url.include_query_params(f="html")), "alternate", formats.HTML, "this page as HTML"),
        link(str(url.include_query_params(f="csv")), "alternate", formats.CSV, "this page as CSV"),
    ]
    more = (offset + returned < matched) if matched is not None else returned >= limit
    if more and returned > 0 and next_cursor is not None:
        nxt = url.remove_query_params("offset").include_query_params(cursor=next_cursor, limit=limit)
        links.append(link(str(nxt), "next", formats.GEOJSON, "next page"))
    if offset > 0 and not keyset_page:
        links.append(link(str(url.include_query_params(offset=max(0, offset - limit), limit=limit)), "prev",
                          formats.GEOJSON, "previous page"))
    return links


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature",
            responses={200: {"content": {"application/geo+json": {}, "text/html": {}}}})
async def item(
    request: Request,
    collectionId: CollectionId,  # noqa: N803
    featureId: Annotated[str, Path(description="Feature id (integer).")],  # noqa: N803
    spec: Annotated[LayerSpec, Depends(resolve_layer)],
    principal: Annotated[Principal, Depends(get_principal)],
    properties: Annotated[str | None, Query(description="Comma-separated properties to return.")] = None,
    crs: Annotated[str | None, Query(description="Output CRS URI (default CRS84).")] = None,
    expand: Annotated[str | None, Query(description="Comma-separated layers linked to this one (declared with "
                                                    "`references:`), e.g. `houses,organisations,people` on a "
                                                    "standard address: their features are added under "
                                                    "`expanded`.")] = None,
    f: F = None,
    at: At = None,
) -> Response:
    """Return one feature by id (as of ``at``); 404 when absent. ``expand`` adds the linked records the caller
    may read (current ones: not with ``at``)."""
    fmt = formats.negotiate(request, f)
    out_crs = resolve_crs(crs, "crs")
    if expand is not None and at is not None:
        raise InvalidParameter("parameter 'expand': linked records are current; not available with 'at'")
    links = _expand_links(request, spec, principal, expand) if expand is not None else []
    props = parse_properties(properties, visible_fields(spec, principal))
    fid = parse_feature_id(featureId, spec)
    params = Params()
    source = None
    if at is not None:
        instant = parse_at(at)
        await check_at(request.app.state.db, [spec], instant)
        source = as_of_source(spec, params.bind(instant, "timestamptz"))
    sql = item_sql(spec, props, out_crs, params, fid, source, request.app.state.settings.sensor_offline_s)
    row = await request.app.state.db.fetchrow(sql, *params.values)
    text = row["feature"] if row is not None else None
    if text is None:
        raise NotFound(f"feature {featureId!r} not found in collection {spec.id!r}"
                       + (f" as of {at}" if at is not None else ""))
    if out_crs.python_crs:
        text = await off_loop(formats.to_python_crs, text, out_crs.python_crs)
    names = [p.name for p in props]
    if needs_audit(spec, names):
        await log_access(request.app.state.db, principal, spec, "item", names, {"id": fid, "at": at},
                         _client(request))
    base = base_url(request)
    links_ = [link(str(request.url), "self", formats.GEOJSON, "this feature"),
              link(f"{base}/collections/{spec.id}", "collection", formats.JSON, spec.title_en)]
    headers = {"Content-Crs": content_crs_header(out_crs)}
    expanded = await _expanded(request, principal, spec, links, fid, out_crs) if links else None
    # "<version>.<representation>": the feature's version (store.layer_tables.etag_sql), which If-Match on an
    # edit compares, then the hash of this representation (format, CRS, links, expanded features)
    content = formats.content_etag(fmt, headers["Content-Crs"], text, orjson.dumps(links_).decode(), expanded or "")
    etag = f'"{row["etag"].strip(chr(34))}.{content.strip(chr(34))[:12]}"'
    unchanged = formats.not_modified(request, etag, headers)
    if unchanged is not None:
        return unchanged
    headers["ETag"] = etag
    if fmt == "html":
        doc = orjson.loads(text)
        if expanded is not None:
            doc["expanded"] = orjson.loads(expanded)
        response = formats.html("item.html", doc=doc, base=base, links=links_,
                                title=f"{spec.title_zh} {spec.title_en}")
        response.headers.update(headers)
        return response
    more = f',"expanded":{expanded}' if expanded is not None else ""
    body = text[:-1] + ',"links":' + orjson.dumps(links_).decode() + more + "}"
    return Response(body, media_type=formats.GEOJSON, headers=headers)


#: largest number of linked features returned per expanded layer
EXPAND_LIMIT = 1000


def _expand_links(request: Request, spec: LayerSpec, principal: Principal,
                  expand: str) -> list[tuple[LayerSpec, str, str]]:
    """The requested linked layers (layer, its linking field, this layer's field); 400 for unknown names.

    Only layers the caller may read are offered: another is as unknown as a missing one (like collections).
    """
    offered = {layer.id: (layer, f.name, target_field)
               for layer, f, target_field in request.app.state.catalog.links_to(spec)
               if can_read_layer(layer, principal)}
    names = list(dict.fromkeys(n.strip() for n in expand.split(",") if n.strip()))
    if not names:
        raise InvalidParameter("parameter 'expand': name one or more linked layers")
    for name in names:
        if name not in offered:
            raise InvalidParameter(f"parameter 'expand': {name!r} is not linked to {spec.id!r}"
                                   + (f"; linked: {', '.join(sorted(offered))}" if offered else ""))
    return [offered[n] for n in names]


async def _expanded(request: Request, principal: Principal, target: LayerSpec,
                    links: list[tuple[LayerSpec, str, str]], fid: int, out_crs) -> str:  # noqa: ANN001
    """JSON text ``{layer: FeatureCollection}`` of the linked features, each layer with its own access rules.

    Personal fields only with ``personal_data``; reads of restricted layers or personal fields are access-logged.
    """
    parts = []
    for layer, link_field, target_field in links:
        visible = visible_fields(layer, principal)
        q = ItemsQuery(spec=layer, properties=visible, crs=out_crs, order=[('"id"', True)], limit=EXPAND_LIMIT,
                       offset=0)
        q.where = [linked_condition(target, target_field, link_field, q.params, fid)]
        row = await request.app.state.db.fetchrow(items_sql(q), *q.params.values)
        features = row["features"]
        if out_crs.python_crs and features:
            features = await off_loop(formats.to_python_crs, features, out_crs.python_crs)
        returned = int(row["returned"])
        names = [f.name for f in visible]
        if needs_audit(layer, names):
            await log_access(request.app.state.db, principal, layer, "expand", names,
                             {"via": target.id, "id": fid, "returned": returned}, _client(request))
        matched = matched_value(row["matched"], True)
        parts.append(f'{orjson.dumps(layer.id).decode()}:{{"type":"FeatureCollection","features":[{features}],'
                     f'"numberReturned":{returned}'
                     + (f',"numberMatched":{matched}' if matched is not None else "") + "}")
    return "{" + ",".join(parts) + "}"
