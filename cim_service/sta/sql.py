"""Compile SensorThings requests (a resource path, ``$filter``, ``$orderby``, ``$select``, ``$expand``) to SQL.

The SQL produced names only the tables and columns declared in :mod:`cim_service.sta.model`; every value is a
``$n`` placeholder with an explicit cast. One statement answers a request: each entity is built as JSON in the
database (``json_build_object``), expanded navigation properties as correlated subqueries aggregated with
``json_agg``, so nesting costs no extra round trip.

Filter paths through navigation properties (``Datastream/Thing/name``, ``Locations/location``) become an
``EXISTS`` around the smallest boolean expression holding them; in ``$orderby`` only to-one navigation is
allowed (a scalar subquery).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import shapely

from cim_service.errors import InvalidParameter
from cim_service.sta import model
from cim_service.sta.grammar import BinOp, Call, Expand, Literal, Neg, Not, Options, Path
from cim_service.sta.model import EntitySet, Nav

_CMP = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_ARITH = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%"}
_SPATIAL_BOOL = {
    "geo.intersects": "ST_Intersects", "st_intersects": "ST_Intersects", "st_within": "ST_Within",
    "st_contains": "ST_Contains", "st_disjoint": "ST_Disjoint", "st_equals": "ST_Equals",
    "st_touches": "ST_Touches", "st_overlaps": "ST_Overlaps", "st_crosses": "ST_Crosses",
}
_TIME_PARTS = {"year": "year", "month": "month", "day": "day", "hour": "hour", "minute": "minute",
               "second": "second"}
MAX_PARAMS = 2_000


class Params:
    """The bound values of one statement, as ``$n::type`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str) -> str:
        """Bind ``value``; return its placeholder with the cast."""
        if len(self.values) >= MAX_PARAMS:
            raise InvalidParameter("the query has too many values")
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


@dataclass
class Typed:
    """A compiled expression: its SQL and kind (with interval bounds when it is one)."""

    sql: str
    kind: str
    start: str | None = None
    end: str | None = None
    num: str | None = None       # numeric reading of a result/json value
    text: str | None = None      # text reading


@dataclass
class Ctx:
    """Compilation state: the statement's parameters, alias counter, hidden layers and the option's name."""

    params: Params
    hidden: list[str]
    option: str = "$filter"
    counter: int = 0
    joins: list[tuple[EntitySet, str, str]] = field(default_factory=list)  # pending EXISTS joins
    scalar_nav: bool = False

    def alias(self) -> str:
        """A fresh table alias."""
        self.counter += 1
        return f"a{self.counter}"

    def bad(self, msg: str) -> InvalidParameter:
        """An error naming the option being compiled."""
        return InvalidParameter(f"parameter '{self.option}': {msg}")


def hidden_clause(es: EntitySet, alias: str, ctx: Ctx) -> str | None:
    """The predicate hiding ``es`` rows of unreadable layers (None when the caller may read every layer)."""
    if not ctx.hidden:
        return None
    h = ctx.params.add(ctx.hidden, "text[]")
    return "NOT coalesce(" + model.HIDDEN[es.name].format(t=alias, h=h) + ", false)"


def source(es: EntitySet, alias: str, ctx: Ctx, *conds: str | None) -> str:
    """``FROM table alias WHERE ...`` of ``es`` with the visibility predicate and ``conds``."""
    where = [c for c in (hidden_clause(es, alias, ctx), *conds) if c]
    return f"FROM {es.table} {alias}" + (f" WHERE {' AND '.join(where)}" if where else "")


def nav_pred(nav: Nav, src: str, dst: str) -> str:
    """The predicate joining alias ``src`` to the navigation target alias ``dst``."""
    return nav.pred.format(s=src, d=dst)


# -- expressions ---------------------------------------------------------------------------------------------------
def _path(es: EntitySet, alias: str, parts: tuple[str, ...], ctx: Ctx) -> Typed:
    head, rest = parts[0], parts[1:]
    nav = es.nav(head)
    if nav is not None:
        if not rest:
            raise ctx.bad(f"{head} is a navigation property, not a value")
        target = model.ENTITY_SETS[nav.target]
        dst = ctx.alias()
        if ctx.scalar_nav:
            if nav.many:
                raise ctx.bad(f"cannot order by a property of the to-many navigation {head}")
            inner = _path(target, dst, rest, ctx)
            sub = f"(SELECT {inner.sql} {source(target, dst, ctx, nav_pred(nav, alias, dst))} LIMIT 1)"
            return Typed(sub, inner.kind)
        ctx.joins.append((target, dst, nav_pred(nav, alias, dst)))
        return _path(target, dst, rest, ctx)
    if head in ("@iot.id", "id"):
        if rest:
            raise ctx.bad(f"{head} has no sub-properties")
        return Typed(es.id_sql.format(t=alias), "number")
    prop = es.prop(head)
    if prop is None:
        raise ctx.bad(f"{es.name} have no property {head!r}")
    if rest:
        if prop.subfields:
            if len(rest) != 1 or rest[0] not in prop.subfields:
                raise ctx.bad(f"{head} has no member {'/'.join(rest)!r}")
            return Typed(prop.subfields[rest[0]].format(t=alias), "text")
        if prop.kind not in ("json", "result"):
            raise ctx.bad(f"{head} has no sub-properties")
        keys = ctx.params.add(list(rest), "text[]")
        return Typed(f"({prop.sql.format(t=alias)} #> {keys})", "json")
    sql = prop.sql.format(t=alias)
    if prop.kind == "interval":
        return Typed(sql, "interval", start=prop.start.format(t=alias), end=prop.end.format(t=alias))
    if prop.kind == "result":
        return Typed(sql, "json", num=f"{alias}.result",
                     text=f"coalesce({alias}.result_json #>> '{{}}', {alias}.result::text)")
    return Typed(sql, prop.kind)


def _literal(lit: Literal, ctx: Ctx) -> Typed:
    p = ctx.params
    if lit.kind == "text":
        return Typed(p.add(lit.value, "text"), "text")
    if lit.kind == "number":
        if isinstance(lit.value, int):
            return Typed(p.add(lit.value, "int8"), "number")
        return Typed(p.add(float(lit.value), "float8"), "number")
    if lit.kind == "bool":
        return Typed(p.add(lit.value, "bool"), "bool")
    if lit.kind == "null":
        return Typed("NULL", "null")
    if lit.kind == "time":
        return Typed(p.add(lit.value, "timestamptz"), "time")
    if lit.kind == "interval":
        a, b = lit.value
        return Typed("NULL", "interval", start=p.add(a, "timestamptz"), end=p.add(b, "timestamptz"))
    if lit.kind == "geom":
        try:
            geom = shapely.from_wkt(lit.value)
        except Exception:  # shapely raises its own GEOSException subclasses
            raise ctx.bad("invalid WKT in a geography literal") from None
        if geom is None or geom.is_empty:
            raise ctx.bad("empty geography literal")
        coords = shapely.get_coordinates(geom)
        if not all(math.isfinite(v) for v in coords.ravel()) or \
                (abs(coords[:, 0]) > 180).any() or (abs(coords[:, 1]) > 90).any():
            raise ctx.bad("geography literal outside longitude/latitude bounds")
        return Typed(f"ST_GeomFromText({p.add(geom.wkt, 'text')}, 4326)", "geom")
    raise ctx.bad(f"unsupported literal {lit.kind}")


def _as_number(t: Typed, ctx: Ctx) -> str:
    if t.kind == "number":
        return t.sql
    if t.kind == "json":
        return t.num or f"(CASE WHEN jsonb_typeof({t.sql}) = 'number' THEN ({t.sql})::float8 END)"
    raise ctx.bad(f"a number was expected, not a {t.kind} value")


def _as_text(t: Typed, ctx: Ctx) -> str:
    if t.kind == "text":
        return t.sql
    if t.kind == "json":
        return t.text or f"({t.sql} #>> '{{}}')"
    raise ctx.bad(f"a string was expected, not a {t.kind} value")


def _as_geom(t: Typed, ctx: Ctx) -> str:
    if t.kind != "geom":
        raise ctx.bad(f"a geometry was expected, not a {t.kind} value")
    return t.sql


def _as_time(t: Typed, ctx: Ctx) -> str:
    if t.kind == "time":
        return t.sql
    if t.kind == "interval" and t.start:
        return t.start
    raise ctx.bad(f"a time was expected, not a {t.kind} value")


def value(expr: Any, es: EntitySet, alias: str, ctx: Ctx) -> Typed:
    """Compile a value expression (path, literal, arithmetic, function)."""
    if isinstance(expr, Path):
        return _path(es, alias, expr.parts, ctx)
    if isinstance(expr, Literal):
        return _literal(expr, ctx)
    if isinstance(expr, Neg):
        return Typed(f"(-{_as_number(value(expr.operand, es, alias, ctx), ctx)})", "number")
    if isinstance(expr, BinOp) and expr.op in _ARITH:
        a = _as_number(value(expr.left, es, alias, ctx), ctx)
        b = _as_number(value(expr.right, es, alias, ctx), ctx)
        if expr.op == "mod":
            return Typed(f"mod(({a})::numeric, ({b})::numeric)::float8", "number")
        return Typed(f"(({a})::float8 {_ARITH[expr.op]} ({b})::float8)", "number")
    if isinstance(expr, Call):
        return _call(expr, es, alias, ctx)
    if isinstance(expr, (BinOp, Not)):
        return Typed(predicate(expr, es, alias, ctx), "bool")
    raise ctx.bad("unsupported expression")


def _args(call: Call, n: int | tuple[int, ...], ctx: Ctx) -> None:
    allowed = (n,) if isinstance(n, int) else n
    if len(call.args) not in allowed:
        raise ctx.bad(f"{call.name}() takes {' or '.join(map(str, allowed))} arguments")


def _call(call: Call, es: EntitySet, alias: str, ctx: Ctx) -> Typed:
    name = call.name

    def v(i: int) -> Typed:
        return value(call.args[i], es, alias, ctx)

    if name in ("substringof", "startswith", "endswith", "contains", "indexof", "concat"):
        _args(call, 2, ctx)
        a, b = _as_text(v(0), ctx), _as_text(v(1), ctx)
        if name == "substringof":
            return Typed(f"(strpos({b}, {a}) > 0)", "bool")
        if name == "startswith":
            return Typed(f"starts_with({a}, {b})", "bool")
        if name == "endswith":
            return Typed(f"(right({a}, length({b})) = {b})", "bool")
        if name == "contains":
            return Typed(f"(strpos({a}, {b}) > 0)", "bool")
        if name == "indexof":
            return Typed(f"(strpos({a}, {b}) - 1)", "number")
        return Typed(f"({a} || {b})", "text")
    if name in ("length", "tolower", "toupper", "trim"):
        _args(call, 1, ctx)
        a = _as_text(v(0), ctx)
        fn = {"length": "length", "tolower": "lower", "toupper": "upper", "trim": "btrim"}[name]
        return Typed(f"{fn}({a})", "number" if name == "length" else "text")
    if name == "substring":
        _args(call, (2, 3), ctx)
        a, i = _as_text(v(0), ctx), _as_number(v(1), ctx)
        if len(call.args) == 3:
            n = _as_number(v(2), ctx)
            return Typed(f"substr({a}, ({i})::int + 1, greatest(({n})::int, 0))", "text")
        return Typed(f"substr({a}, ({i})::int + 1)", "text")
    if name in ("round", "floor", "ceiling"):
        _args(call, 1, ctx)
        fn = {"round": "round", "floor": "floor", "ceiling": "ceil"}[name]
        return Typed(f"{fn}(({_as_number(v(0), ctx)})::numeric)::float8", "number")
    if name in _TIME_PARTS:
        _args(call, 1, ctx)
        return Typed(f"extract({_TIME_PARTS[name]} FROM ({_as_time(v(0), ctx)}) AT TIME ZONE 'UTC')::float8",
                     "number")
    if name == "now":
        _args(call, 0, ctx)
        return Typed("now()", "time")
    if name in _SPATIAL_BOOL:
        _args(call, 2, ctx)
        return Typed(f"{_SPATIAL_BOOL[name]}({_as_geom(v(0), ctx)}, {_as_geom(v(1), ctx)})", "bool")
    if name == "st_relate":
        _args(call, 3, ctx)
        pattern = call.args[2]
        if not (isinstance(pattern, Literal) and pattern.kind == "text"
                and len(pattern.value) == 9 and set(pattern.value) <= set("TF*012")):
            raise ctx.bad("st_relate() takes a DE-9IM pattern of 9 characters T F * 0 1 2")
        return Typed(f"ST_Relate({_as_geom(v(0), ctx)}, {_as_geom(v(1), ctx)}, "
                     f"{ctx.params.add(pattern.value, 'text')})", "bool")
    if name == "geo.distance":
        _args(call, 2, ctx)
        return Typed(f"ST_Distance({_as_geom(v(0), ctx)}, {_as_geom(v(1), ctx)})", "number")
    if name == "geo.length":
        _args(call, 1, ctx)
        return Typed(f"ST_Length({_as_geom(v(0), ctx)})", "number")
    if name in ("before", "after", "during", "meets", "overlaps", "starts", "finishes"):
        _args(call, 2, ctx)
        return Typed(_temporal(name, v(0), v(1), ctx), "bool")
    raise ctx.bad(f"unknown function {name}()")


def _bounds(t: Typed, ctx: Ctx) -> tuple[str, str]:
    if t.kind == "time":
        return t.sql, t.sql
    if t.kind == "interval":
        return t.start, f"coalesce({t.end}, {t.start})"
    raise ctx.bad(f"a time or interval was expected, not a {t.kind} value")


def _temporal(name: str, a: Typed, b: Typed, ctx: Ctx) -> str:
    (s1, e1), (s2, e2) = _bounds(a, ctx), _bounds(b, ctx)
    return {
        "before": f"({e1} < {s2})", "after": f"({s1} > {e2})",
        "during": f"({s1} >= {s2} AND {e1} <= {e2})", "meets": f"({e1} = {s2} OR {e2} = {s1})",
        "overlaps": f"({s1} <= {e2} AND {e1} >= {s2})", "starts": f"({s1} = {s2})", "finishes": f"({e1} = {e2})",
    }[name]


def _compare(op: str, a: Typed, b: Typed, ctx: Ctx) -> str:
    sym = _CMP[op]
    if a.kind == "null" or b.kind == "null":
        other = b if a.kind == "null" else a
        if op not in ("eq", "ne"):
            raise ctx.bad("null can only be compared with eq or ne")
        if other.kind == "null":
            return "TRUE" if op == "eq" else "FALSE"
        target = other.start if other.kind == "interval" and other.start else other.sql
        return f"({target} IS {'NOT ' if op == 'ne' else ''}NULL)"
    kinds = {a.kind, b.kind}
    if kinds <= {"time", "interval"}:
        return _compare_time(op, a, b, ctx)
    if "number" in kinds and kinds <= {"number", "json"}:
        return f"({_as_number(a, ctx)} {sym} {_as_number(b, ctx)})"
    if "text" in kinds and kinds <= {"text", "json"}:
        return f"({_as_text(a, ctx)} {sym} {_as_text(b, ctx)})"
    if kinds == {"json"}:
        return f"({a.sql} {sym} {b.sql})"
    if kinds == {"bool"} or kinds == {"bool", "json"}:
        if op not in ("eq", "ne"):
            raise ctx.bad("booleans can only be compared with eq or ne")
        def as_bool(t: Typed) -> str:
            return t.sql if t.kind == "bool" else f"(CASE WHEN jsonb_typeof({t.sql}) = 'boolean' " \
                                                   f"THEN ({t.sql})::boolean END)"
        return f"({as_bool(a)} {sym} {as_bool(b)})"
    raise ctx.bad(f"cannot compare a {a.kind} value with a {b.kind} value")


def _compare_time(op: str, a: Typed, b: Typed, ctx: Ctx) -> str:
    """Times and intervals: an instant against an interval [s, e) is before it (lt), inside (eq) or after (gt)."""
    (s1, e1), (s2, e2) = _bounds(a, ctx), _bounds(b, ctx)
    if a.kind == "time" and b.kind == "time":
        return f"({a.sql} {_CMP[op]} {b.sql})"
    return {
        "eq": f"({s1} >= {s2} AND {e1} <= {e2})" if b.kind == "interval" else f"({s2} >= {s1} AND {e2} <= {e1})",
        "ne": f"NOT ({s1} >= {s2} AND {e1} <= {e2})" if b.kind == "interval" else
              f"NOT ({s2} >= {s1} AND {e2} <= {e1})",
        "lt": f"({e1} < {s2})", "le": f"({e1} <= {s2})" if a.kind == "interval" else f"({s1} < {e2})",
        "gt": f"({s1} > {e2})", "ge": f"({s1} >= {e2})" if b.kind == "time" else f"({s1} >= {s2})",
    }[op]


def predicate(expr: Any, es: EntitySet, alias: str, ctx: Ctx) -> str:
    """Compile a boolean expression; navigation paths inside a leaf become an ``EXISTS`` around it."""
    if isinstance(expr, BinOp) and expr.op in ("and", "or"):
        return (f"({predicate(expr.left, es, alias, ctx)} {expr.op.upper()} "
                f"{predicate(expr.right, es, alias, ctx)})")
    if isinstance(expr, Not):
        return f"(NOT coalesce({predicate(expr.operand, es, alias, ctx)}, false))"
    saved, ctx.joins = ctx.joins, []
    try:
        if isinstance(expr, BinOp) and expr.op in _CMP:
            sql = _compare(expr.op, value(expr.left, es, alias, ctx), value(expr.right, es, alias, ctx), ctx)
        else:
            t = value(expr, es, alias, ctx)
            if t.kind == "json":
                sql = f"(({t.sql}) = 'true'::jsonb)"
            elif t.kind != "bool":
                raise ctx.bad(f"the expression is a {t.kind} value, not a condition")
            else:
                sql = t.sql
        joins = ctx.joins
    finally:
        ctx.joins = saved
    for target, dst, pred in reversed(joins):
        sql = f"EXISTS (SELECT 1 {source(target, dst, ctx, pred, sql)})"
    return sql


def order_by(opts: Options, es: EntitySet, alias: str, ctx: Ctx) -> str:
    """The ``ORDER BY`` list: the ``$orderby`` keys, then the id (a stable order for paging)."""
    ctx.option, ctx.scalar_nav = "$orderby", True
    keys = []
    for item in opts.orderby:
        t = value(item.expr, es, alias, ctx)
        sql = t.start if t.kind == "interval" and t.start else t.sql
        if t.kind == "geom":
            raise ctx.bad("cannot order by a geometry")
        keys.append(f"{sql} {'DESC' if item.descending else 'ASC'} NULLS LAST")
    ctx.scalar_nav = False
    if es.name == "Observations":
        keys += [f"{alias}.datastream_id", f"{alias}.phenomenon_time"]
    else:
        keys.append(f"{alias}.id")
    return ", ".join(keys)


# -- entity JSON ---------------------------------------------------------------------------------------------------
def _merge_expands(expands: list[Expand]) -> list[Expand]:
    """``Datastreams/Observations`` is ``Datastreams($expand=Observations)``; repeated heads are merged."""
    out: dict[str, Expand] = {}
    for e in expands:
        head = e.path[0]
        if len(e.path) > 1:
            inner = Expand(e.path[1:], e.options)
            item = out.setdefault(head, Expand((head,), Options(top=e.options.top)))
            item.options.expand.append(inner)
        elif head in out:
            out[head].options.filter = e.options.filter
            out[head].options.select = e.options.select
            out[head].options.orderby = e.options.orderby
            out[head].options.top, out[head].options.skip = e.options.top, e.options.skip
            out[head].options.count = e.options.count
        else:
            out[head] = Expand(e.path, e.options)
    for item in out.values():
        item.options.expand = _merge_expands(item.options.expand)
    return list(out.values())


def entity_json(es: EntitySet, alias: str, opts: Options, ctx: Ctx, base: str) -> str:
    """``json_build_object(...)`` of one ``es`` row: id, selfLink, the selected properties, links, expansions."""
    expands = _merge_expands(opts.expand)
    expanded = {e.path[0] for e in expands}
    for name in expanded:
        if es.nav(name) is None:
            raise InvalidParameter(f"parameter '$expand': {es.name} have no navigation property {name!r}")
    selected = opts.select
    if selected is not None:
        for s in selected:
            if s not in ("@iot.id", "id", "@iot.selfLink") and es.prop(s) is None and es.nav(s) is None:
                raise InvalidParameter(f"parameter '$select': {es.name} have no property {s!r}")
    want = (lambda n: True) if selected is None else (lambda n: n in selected)
    link: list[str] = []

    def self_link() -> str:  # bound only when used: an unused parameter has no type for PostgreSQL
        if not link:
            link.append(f"{ctx.params.add(base, 'text')} || '/{es.name}(' || ({es.id_sql.format(t=alias)}) || ')'")
        return link[0]

    pairs: list[str] = []
    if want("@iot.id") or want("id"):
        pairs.append(f"'@iot.id', {es.id_sql.format(t=alias)}")
    if want("@iot.selfLink"):
        pairs.append(f"'@iot.selfLink', {self_link()}")
    for p in es.props:
        if want(p.name):
            pairs.append(f"'{p.name}', {(p.out or p.sql).format(t=alias)}")
    for nav in es.navs:
        if nav.name in expanded:
            continue
        if selected is None or nav.name in selected:
            pairs.append(f"'{nav.name}@iot.navigationLink', {self_link()} || '/{nav.name}'")
    for e in expands:
        nav = es.nav(e.path[0])
        pairs += _expansion(nav, alias, e.options, ctx, base)
    chunks = [pairs[i:i + 40] for i in range(0, len(pairs), 40)]  # json_build_object takes at most 100 arguments
    if len(chunks) == 1:
        return f"json_build_object({', '.join(chunks[0])})"
    return "(" + " || ".join(f"jsonb_build_object({', '.join(c)})" for c in chunks) + ")::json"


def _expansion(nav: Nav, alias: str, opts: Options, ctx: Ctx, base: str) -> list[str]:
    target = model.ENTITY_SETS[nav.target]
    dst = ctx.alias()
    join = nav_pred(nav, alias, dst)
    where = None
    if opts.filter is not None:
        ctx.option = f"$expand({nav.name})/$filter"
        where = predicate(opts.filter, target, dst, ctx)
    body = entity_json(target, dst, opts, ctx, base)
    if not nav.many:
        return [f"'{nav.name}', (SELECT {body} {source(target, dst, ctx, join, where)} LIMIT 1)"]
    order = order_by(opts, target, dst, ctx)
    out = [f"'{nav.name}', (SELECT coalesce(json_agg(x.j ORDER BY x.n), '[]'::json) FROM "
           f"(SELECT {body} AS j, row_number() OVER (ORDER BY {order}) AS n "
           f"{source(target, dst, ctx, join, where)} ORDER BY {order} "
           f"LIMIT {int(opts.top or 0)} OFFSET {int(opts.skip)}) x)"]
    if opts.count:
        cnt = ctx.alias()
        cwhere = None
        if opts.filter is not None:
            cwhere = predicate(opts.filter, target, cnt, ctx)
        out.append(f"'{nav.name}@iot.count', (SELECT count(*) "
                   f"{source(target, cnt, ctx, nav_pred(nav, alias, cnt), cwhere)})")
    return out


# -- statements ----------------------------------------------------------------------------------------------------
@dataclass
class Scope:
    """Where the requested entities are: the set and conditions of its alias from the resource path."""

    es: EntitySet
    alias: str
    conds: list[str]


def collection_sql(scope: Scope, opts: Options, ctx: Ctx, base: str) -> str:
    """SELECT of one page (``top + 1`` rows, to know whether there is a next page)."""
    es, alias = scope.es, scope.alias
    conds = list(scope.conds)
    if opts.filter is not None:
        ctx.option = "$filter"
        conds.append(predicate(opts.filter, es, alias, ctx))
    body = entity_json(es, alias, opts, ctx, base)
    order = order_by(opts, es, alias, ctx)
    return (f"SELECT {body} AS j {source(es, alias, ctx, *conds)} ORDER BY {order} "
            f"LIMIT {int(opts.top or 0) + 1} OFFSET {int(opts.skip)}")


def count_sql(scope: Scope, opts: Options, ctx: Ctx) -> str:
    """SELECT of ``@iot.count``: the entities of the scope matching ``$filter`` (a statement of its own)."""
    conds = list(scope.conds)
    if opts.filter is not None:
        ctx.option = "$filter"
        conds.append(predicate(opts.filter, scope.es, scope.alias, ctx))
    return f"SELECT count(*) {source(scope.es, scope.alias, ctx, *conds)}"


def entity_sql(scope: Scope, opts: Options, ctx: Ctx, base: str) -> str:
    """SELECT of one entity (the first row of the scope)."""
    body = entity_json(scope.es, scope.alias, opts, ctx, base)
    return f"SELECT {body} AS j {source(scope.es, scope.alias, ctx, *scope.conds)} LIMIT 1"


def property_sql(scope: Scope, prop: str, ctx: Ctx) -> str:
    """SELECT of one property of one entity (``/Things(1)/name``)."""
    es = scope.es
    p = es.prop(prop)
    if prop in ("@iot.id", "id"):
        out = es.id_sql.format(t=scope.alias)
    elif p is None:
        raise InvalidParameter(f"{es.name} have no property {prop!r}")
    else:
        out = (p.out or p.sql).format(t=scope.alias)
    return f"SELECT to_json({out}) AS j, true AS found {source(es, scope.alias, ctx, *scope.conds)} LIMIT 1"


def ref_sql(scope: Scope, opts: Options, ctx: Ctx, base: str, single: bool) -> str:
    """SELECT of the selfLinks only (``/$ref``)."""
    es, alias = scope.es, scope.alias
    conds = list(scope.conds)
    if opts.filter is not None:
        ctx.option = "$filter"
        conds.append(predicate(opts.filter, es, alias, ctx))
    link = f"{ctx.params.add(base, 'text')} || '/{es.name}(' || ({es.id_sql.format(t=alias)}) || ')'"
    order = order_by(opts, es, alias, ctx)
    limit = 1 if single else int(opts.top or 0) + 1
    return (f"SELECT json_build_object('@iot.selfLink', {link}) AS j {source(es, alias, ctx, *conds)} "
            f"ORDER BY {order} LIMIT {limit} OFFSET {0 if single else int(opts.skip)}")


def id_condition(es: EntitySet, alias: str, entity_id: int, ctx: Ctx) -> str:
    """The condition selecting the entity ``entity_id`` of ``es`` (an Observation's id is split)."""
    if es.name == "Observations":
        from cim_service.store.observations import split_observation_id
        ds, t = split_observation_id(entity_id)
        return (f"({alias}.datastream_id = {ctx.params.add(ds, 'int4')} AND "
                f"{alias}.phenomenon_time = {ctx.params.add(t, 'timestamptz')})")
    return f"{alias}.id = {ctx.params.add(entity_id, 'int8')}"


def scope_for(segments: list[tuple[str, int | None]], ctx: Ctx) -> tuple[Scope, bool]:
    """The scope of a resource path ``[(Things, 1), (Datastreams, None)]``; True when it names one entity.

    The last segment is the scope; every previous one becomes an ``EXISTS`` joining it to its successor.
    """
    name, ident = segments[0]
    es = model.entity_set(name)
    if es is None:
        raise NotFoundPath(f"no entity set {name!r}")
    alias = ctx.alias()
    conds = [id_condition(es, alias, ident, ctx)] if ident is not None else []
    single = ident is not None
    for nav_name, ident in segments[1:]:
        nav = es.nav(nav_name)
        if nav is None or not single:
            raise NotFoundPath(f"{es.name} have no navigation property {nav_name!r}")
        target = model.ENTITY_SETS[nav.target]
        dst = ctx.alias()
        outer = f"EXISTS (SELECT 1 {source(es, alias, ctx, *conds, nav_pred(nav, alias, dst))})"
        es, alias, conds = target, dst, [outer]
        if ident is not None:
            if not nav.many:
                raise NotFoundPath(f"{nav_name} is a single entity; it takes no id")
            conds.append(id_condition(es, alias, ident, ctx))
        single = ident is not None or not nav.many
    return Scope(es, alias, conds), single


class NotFoundPath(Exception):
    """The resource path names no entity set or navigation property (404)."""


