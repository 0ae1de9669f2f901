"""Requests of the SensorThings API: resolve the resource path, compile, run, shape the answer.

Reads use the service's async pool (one statement per request, JSON built by PostgreSQL); writes run in a
worker thread on the synchronous engine, one transaction each (:mod:`cim_service.sta.writes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cim_service.errors import InvalidParameter, NotFound
from cim_service.sta import model
from cim_service.sta.grammar import Options, parse_options
from cim_service.sta.sql import (
    Ctx,
    NotFoundPath,
    Params,
    collection_sql,
    count_sql,
    entity_sql,
    property_sql,
    ref_sql,
    scope_for,
    source,
)
from cim_service.store.db import Database, QueryDataError

_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((\d{1,19})\))?$")


@dataclass
class Resource:
    """A parsed resource path: entity segments and what is asked of the last one."""

    segments: list[tuple[str, int | None]]
    prop: str | None = None       # /Things(1)/name
    value: bool = False           # /Things(1)/name/$value
    ref: bool = False             # /Things/$ref


def parse_path(path: str) -> Resource:
    """Parse ``Things(1)/Datastreams``, ``Datastreams(3)/Observations/$ref``, ``Things(1)/name/$value``."""
    parts = [p for p in path.strip("/").split("/") if p != ""]
    if not parts:
        raise NotFound("no resource")
    segments: list[tuple[str, int | None]] = []
    res = Resource(segments)
    es = None
    single = False
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "$ref" and last and segments:
            res.ref = True
            break
        if part == "$value" and last and res.prop:
            res.value = True
            break
        if res.prop is not None:
            raise NotFound(f"no resource {path[:100]!r}")
        m = _SEGMENT.match(part)
        if not m:
            raise NotFound(f"no resource {part[:60]!r}")
        name, ident = m.group(1), m.group(2)
        if es is None:
            es = model.entity_set(name)
            if es is None:
                raise NotFound(f"no entity set {name!r}")
            single = ident is not None
        else:
            nav = es.nav(name)
            if nav is None:
                if single and ident is None and (es.prop(name) is not None or name == "id"):
                    res.prop = name
                    continue
                raise NotFound(f"{es.name} have no navigation property {name!r}")
            if not single:
                raise NotFound(f"{name} of a collection: address one entity first")
            es = model.ENTITY_SETS[nav.target]
            single = ident is not None or not nav.many
        value = int(ident) if ident is not None else None
        if value is not None and value > 2**63 - 1:
            raise NotFound("no such entity")
        segments.append((name, value))
    return res


def last_entity_set(res: Resource) -> model.EntitySet:
    """The entity set of the path's last entity segment."""
    es = model.entity_set(res.segments[0][0])
    for name, _ in res.segments[1:]:
        es = model.ENTITY_SETS[es.nav(name).target]
    return es


def query_options(items: list[tuple[str, str]], *, max_top: int, default_top: int) -> Options:
    """The query options of a request; a repeated option is a 400."""
    params: dict[str, str] = {}
    for key, value in items:
        if not key.startswith("$"):
            continue
        if key in params:
            raise InvalidParameter(f"parameter '{key}' given twice")
        params[key] = value
    return parse_options(params, max_top=max_top, default_top=default_top)


async def _fetch(db: Database, sql: str, params: Params, option: str) -> list[dict[str, Any]]:
    try:
        return await db.fetch(sql, *params.values)
    except QueryDataError:
        raise InvalidParameter(f"parameter '{option}': the query failed on a value outside the domain of its "
                               "operation (division by zero, a number out of range, a bad cast)") from None


async def read(db: Database, res: Resource, opts: Options, raw_query: list[tuple[str, str]], *, base: str,
               hidden: list[str], request_url: str) -> tuple[Any, bool]:
    """Answer a GET: (JSON document or plain value, True when the value is for ``$value``)."""
    try:
        return await _read(db, res, opts, raw_query, base=base, hidden=hidden, request_url=request_url)
    except RecursionError:  # an expression nested too deeply for the compiler (a long chain of operators)
        raise InvalidParameter("parameter '$filter': too complex (nested too deeply)") from None


async def _read(db: Database, res: Resource, opts: Options, raw_query: list[tuple[str, str]], *, base: str,
                hidden: list[str], request_url: str) -> tuple[Any, bool]:
    ctx = Ctx(Params(), hidden=hidden)
    try:
        scope, single = scope_for(res.segments, ctx)
    except NotFoundPath as exc:
        raise NotFound(str(exc)) from None
    option = "$filter" if opts.filter is not None else "$orderby" if opts.orderby else "$expand"
    if res.prop is not None:
        if not single:
            raise NotFound("a property of a collection has no value")
        rows = await _fetch(db, property_sql(scope, res.prop, ctx), ctx.params, option)
        if not rows:
            raise NotFound("no such entity")
        value = rows[0]["j"]
        if res.value:
            return value, True
        return {res.prop: value}, False
    if res.ref:
        rows = await _fetch(db, ref_sql(scope, opts, ctx, base, single), ctx.params, option)
        if single:
            if not rows:
                raise NotFound("no such entity")
            return rows[0]["j"], False
        return _page([r["j"] for r in rows], opts, None, raw_query, request_url), False
    if single:
        rows = await _fetch(db, entity_sql(scope, opts, ctx, base), ctx.params, option)
        if not rows:
            raise NotFound("no such entity")
        return rows[0]["j"], False
    rows = await _fetch(db, collection_sql(scope, opts, ctx, base), ctx.params, option)
    if not rows and len(res.segments) > 1:  # an empty collection of a missing (or invisible) entity is a 404
        pctx = Ctx(Params(), hidden=hidden)
        pscope, _ = scope_for(res.segments[:-1], pctx)
        found = await _fetch(db, f"SELECT 1 AS j {source(pscope.es, pscope.alias, pctx, *pscope.conds)} LIMIT 1",
                             pctx.params, option)
        if not found:
            raise NotFound("no such entity")
    count = None
    if opts.count:
        cctx = Ctx(Params(), hidden=hidden)
        cscope, _ = scope_for(res.segments, cctx)
        count = (await _fetch(db, count_sql(cscope, opts, cctx), cctx.params, option))[0]["count"]
    return _page([r["j"] for r in rows], opts, count, raw_query, request_url), False


def _page(values: list[Any], opts: Options, count: int | None, raw_query: list[tuple[str, str]],
          request_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if count is not None:
        doc["@iot.count"] = count
    top = int(opts.top or 0)
    more = top > 0 and len(values) > top
    doc["value"] = values[:top]
    if more:
        query = [(k, v) for k, v in raw_query if k not in ("$skip", "$top")]
        query += [("$top", str(top)), ("$skip", str(opts.skip + top))]
        doc["@iot.nextLink"] = f"{request_url}?{urlencode(query, safe='$,()/:@')}"
    return doc
