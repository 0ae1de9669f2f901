"""OGC API Features Part 3: CQL2 (text and JSON) parsed by pygeofilter, translated to SQL by our own visitor.

The SQL produced contains only catalog identifiers (double-quoted) and ``$n`` placeholders; every literal is
a bound parameter, coerced to the type of the property it is compared with (a bad value is a 400 naming
the property). Properties the caller may not see (personal fields without the scope) are "unknown".

Supported: ``AND/OR/NOT``, ``= <> < <= > >=``, ``LIKE`` (``%``/``_`` wildcards), ``IN``, ``BETWEEN``,
``IS [NOT] NULL``, ``CASEI``, arithmetic ``+ - * /``, spatial ``S_INTERSECTS S_DISJOINT S_CONTAINS S_WITHIN
S_TOUCHES S_CROSSES S_OVERLAPS S_EQUALS`` and ``S_DWITHIN(geom, literal, distance, meters|kilometers)``,
temporal ``T_AFTER T_BEFORE T_DURING T_INTERSECTS T_DISJOINT T_EQUALS T_CONTAINS T_BEGINS T_BEGUNBY T_ENDS
T_ENDEDBY T_MEETS T_METBY T_OVERLAPS T_OVERLAPPEDBY`` with ``DATE``, ``TIMESTAMP`` and ``INTERVAL`` (open
ends ``'..'``). Geometry literals are WKT/GeoJSON/``BBOX(minx,miny,maxx,maxy)`` in ``filter-crs``.

pygeofilter's CQL2-text grammar only knows the infix form of temporal predicates and no ``S_DWITHIN``; the
standard functional forms are rewritten before parsing (:func:`_normalise_text`), and ``INTERVAL`` with
dates or open ends is parsed by us.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import lark
import shapely
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from cim_service.core.catalog import FieldSpec, FieldType
from cim_service.errors import InvalidParameter
from cim_service.features.crs import OutputCrs, literal_to_wgs84_sql
from cim_service.features.sql import Params, field_cast, quote_ident
from cim_service.features.temporal import TemporalOperand, parse_instant, temporal_sql

GEOMETRY_NAMES = ("geometry", "geom")
_FUNCTIONAL = re.compile(r"\b(T_[A-Za-z]+|S_DWITHIN|S_BEYOND)\s*\(", re.IGNORECASE)
#: pygeofilter's infix temporal form ``prop T_X literal`` (its T_INTERSECTS would become T_OVERLAPS): made functional
_INFIX = re.compile(r"""([A-Za-z_][\w.:]*|"[^"]*")\s+(T_[A-Za-z]+)\s+((?:DATE|TIMESTAMP|INTERVAL)\s*\([^)]*\)"""
                    r"""|[A-Za-z_][\w.:]*|"[^"]*")""", re.IGNORECASE)
_SPATIAL = {
    ast.GeometryIntersects: "ST_Intersects", ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryContains: "ST_Contains", ast.GeometryWithin: "ST_Within", ast.GeometryTouches: "ST_Touches",
    ast.GeometryCrosses: "ST_Crosses", ast.GeometryOverlaps: "ST_Overlaps", ast.GeometryEquals: "ST_Equals",
}
_TEMPORAL_CLASSES = {
    ast.TimeAfter: "t_after", ast.TimeBefore: "t_before", ast.TimeDuring: "t_during",
    ast.TimeDisjoint: "t_disjoint", ast.TimeEquals: "t_equals", ast.TimeContains: "t_contains",
    ast.TimeBegins: "t_begins", ast.TimeBegunBy: "t_begunby", ast.TimeEnds: "t_ends",
    ast.TimeEndedBy: "t_endedby", ast.TimeMeets: "t_meets", ast.TimeMetBy: "t_metby",
    ast.TimeOverlaps: "t_overlaps", ast.TimeOverlappedBy: "t_overlappedby",
}
_COMPARISON = {ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
               ast.GreaterThan: ">", ast.GreaterEqual: ">="}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mul: "*", ast.Div: "/"}
_UNITS = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
          "km": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "kilometre": 1000.0, "kilometres": 1000.0}


# -- parsing -----------------------------------------------------------------------------------

MAX_FILTER_CHARS = 20_000


def parse_filter(text: str, lang: str | None) -> ast.Node:
    """Parse a ``filter`` parameter in ``filter-lang`` (cql2-text by default) into a pygeofilter AST."""
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidParameter(f"parameter 'filter': longer than {MAX_FILTER_CHARS} characters")
    try:
        return _parse(text, lang)
    except RecursionError:
        raise InvalidParameter("parameter 'filter': nested too deeply") from None


def _parse(text: str, lang: str | None) -> ast.Node:
    lang = (lang or "cql2-text").strip().lower()
    if lang == "cql2-text":
        try:
            return parse_cql2_text(_normalise_text(text))
        except lark.exceptions.LarkError as exc:
            where = f" at column {exc.column}" if getattr(exc, "column", None) else ""
            raise InvalidParameter(f"parameter 'filter': malformed CQL2 text{where}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidParameter(f"parameter 'filter': invalid CQL2 text ({_short(exc)})") from None
    if lang == "cql2-json":
        try:
            return parse_cql2_json(_normalise_json(json.loads(text)))
        except json.JSONDecodeError as exc:
            raise InvalidParameter(f"parameter 'filter': not valid JSON ({exc.msg})") from None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise InvalidParameter(f"parameter 'filter': invalid CQL2 JSON ({_short(exc)})") from None
    raise InvalidParameter(f"parameter 'filter-lang': unsupported {lang!r}; supported: cql2-text, cql2-json")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _normalise_text(text: str) -> str:
    """Rewrite standard functional predicates pygeofilter cannot parse into ``F(...) = true`` calls."""
    literals: list[str] = []

    def mask(m: re.Match) -> str:
        literals.append(m.group(0))
        return f"'\x00{len(literals) - 1}\x00'"

    text = re.sub(r"'(?:[^']|'')*'", mask, text)  # keep string literals out of the rewrites
    text = _INFIX.sub(r"\2(\1, \3)", text)
    text = re.sub(r"\bINTERVAL\s*\(", "cim_interval(", text, flags=re.IGNORECASE)
    text = re.sub("'\x00(\\d+)\x00'", lambda m: literals[int(m.group(1))], text)
    out: list[str] = []
    closers: list[int] = []  # depths at which a rewritten call closes
    depth, i, quote = 0, 0, None
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
            i += 1
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            out.append(ch)
            if closers and closers[-1] == depth:
                closers.pop()
                out.append(" = true")
            depth -= 1
            i += 1
            continue
        else:
            m = _FUNCTIONAL.match(text, i)
            if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                out.append(text[i:m.end()])
                depth += 1
                closers.append(depth)
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _normalise_json(node: Any) -> Any:
    """Turn temporal and distance ops of CQL2 JSON into function calls compared with ``true``."""
    if isinstance(node, list):
        return [_normalise_json(n) for n in node]
    if not isinstance(node, dict):
        return node
    op = node.get("op")
    if isinstance(op, str) and (op.lower().startswith("t_") or op.lower() in ("s_dwithin", "s_beyond")):
        args = [_json_temporal_arg(a) for a in _normalise_json(node.get("args", []))]
        return {"op": "=", "args": [{"function": {"name": op.lower(), "arguments": args}}, True]}
    return {k: _normalise_json(v) for k, v in node.items()}


def _json_temporal_arg(arg: Any) -> Any:
    if isinstance(arg, dict) and "interval" in arg:
        return {"function": {"name": "cim_interval", "arguments": [str(v) for v in arg["interval"]]}}
    return arg


# -- translation -------------------------------------------------------------------------------

@dataclass
class FilterContext:
    """What a translation needs: visible fields by name, the literal CRS and the parameter list.

    ``used`` collects the names of the properties the filter reads (for the access log: a filter on a personal
    field reads it, even when the field is not returned).
    """

    fields: dict[str, FieldSpec]
    filter_crs: OutputCrs
    params: Params
    used: set[str] = field(default_factory=set)


def to_sql(node: Any, ctx: FilterContext) -> str:
    """Translate a CQL2 AST into a SQL boolean expression over the layer table."""
    try:
        return _Translator(ctx).predicate(node)
    except RecursionError:
        raise InvalidParameter("parameter 'filter': nested too deeply (use IN for long lists)") from None


class _Translator:
    def __init__(self, ctx: FilterContext):
        self.ctx = ctx

    # predicates
    def predicate(self, node: Any) -> str:
        if isinstance(node, ast.And | ast.Or):
            op = "AND" if isinstance(node, ast.And) else "OR"
            return f"({self.predicate(node.lhs)} {op} {self.predicate(node.rhs)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self.predicate(node.sub_node)})"
        if isinstance(node, ast.Include):
            return "FALSE" if node.not_ else "TRUE"
        if type(node) in _COMPARISON:
            return self.comparison(node)
        if isinstance(node, ast.Like):
            return self.like(node)
        if isinstance(node, ast.In):
            return self.in_(node)
        if isinstance(node, ast.Between):
            return self.between(node)
        if isinstance(node, ast.IsNull):
            return f"({self.operand(node.lhs)} IS {'NOT ' if node.not_ else ''}NULL)"
        if type(node) in _SPATIAL:
            return f"{_SPATIAL[type(node)]}({self.spatial(node.lhs)}, {self.spatial(node.rhs)})"
        if isinstance(node, ast.BBox):
            env = self.envelope(node.minx, node.miny, node.maxx, node.maxy)
            return f"ST_Intersects({self.spatial(node.lhs)}, {env})"
        if type(node) in _TEMPORAL_CLASSES:
            return self.temporal(_TEMPORAL_CLASSES[type(node)], [node.lhs, node.rhs])
        if isinstance(node, ast.Attribute):
            field = self.field(node.name)
            if field.type is not FieldType.boolean:
                raise InvalidParameter(f"parameter 'filter': property {node.name!r} is not a boolean predicate")
            return quote_ident(field.name)
        if isinstance(node, bool):
            return "TRUE" if node else "FALSE"
        raise InvalidParameter(f"parameter 'filter': unsupported CQL2 construct {_describe(node)}")

    def comparison(self, node: Any) -> str:
        if isinstance(node, ast.Equal) and node.rhs is True and isinstance(node.lhs, ast.Function):
            name = node.lhs.name.lower()
            if name.startswith("t_"):
                return self.temporal(name, node.lhs.arguments)
            if name in ("s_dwithin", "s_beyond"):
                return self.dwithin(name, node.lhs.arguments)
        lhs, rhs = self.pair(node.lhs, node.rhs)
        return f"({lhs} {_COMPARISON[type(node)]} {rhs})"

    def like(self, node: ast.Like) -> str:
        if not isinstance(node.pattern, str):
            raise InvalidParameter("parameter 'filter': LIKE needs a text pattern")
        lhs = self.operand(node.lhs)
        if not (isinstance(node.lhs, ast.Attribute) and self.field(node.lhs.name).type is FieldType.text):
            lhs = f"({lhs})::text"
        op = ("NOT " if node.not_ else "") + ("ILIKE" if node.nocase else "LIKE")
        return f"({lhs} {op} {self.ctx.params.bind(node.pattern, 'text')})"

    def in_(self, node: ast.In) -> str:
        field = self.attribute_field(node.lhs)
        lhs = self.operand(node.lhs)
        items = ", ".join(self.literal(v, field) for v in node.sub_nodes)
        return f"({lhs} {'NOT ' if node.not_ else ''}IN ({items}))"

    def between(self, node: ast.Between) -> str:
        field = self.attribute_field(node.lhs)
        lhs = self.operand(node.lhs)
        low, high = self.literal(node.low, field), self.literal(node.high, field)
        return f"({lhs} {'NOT ' if node.not_ else ''}BETWEEN {low} AND {high})"

    # scalar expressions
    def pair(self, a: Any, b: Any) -> tuple[str, str]:
        fa, fb = self.attribute_field(a), self.attribute_field(b)
        return self.operand(a, fb), self.operand(b, fa)

    def operand(self, node: Any, like: FieldSpec | None = None) -> str:
        if isinstance(node, ast.Attribute):
            field = self.field(node.name)
            if field.type is FieldType.json:
                raise InvalidParameter(f"parameter 'filter': property {node.name!r} (json) cannot be compared")
            return quote_ident(field.name)
        if isinstance(node, ast.Function):
            return self.function(node)
        if type(node) in _ARITHMETIC:
            return f"({self.operand(node.lhs)} {_ARITHMETIC[type(node)]} {self.operand(node.rhs)})"
        if isinstance(node, values.Geometry | values.Envelope):
            raise InvalidParameter("parameter 'filter': geometries can only be used in spatial predicates")
        return self.literal(node, like)

    def function(self, node: ast.Function) -> str:
        name = node.name.lower()
        if name in ("lower", "casei") and len(node.arguments) == 1:
            return f"lower({self.operand(node.arguments[0])}::text)"
        if name == "upper" and len(node.arguments) == 1:
            return f"upper({self.operand(node.arguments[0])}::text)"
        raise InvalidParameter(f"parameter 'filter': unsupported function {node.name!r}")

    def literal(self, value: Any, field: FieldSpec | None) -> str:
        if isinstance(value, ast.Node | values.Geometry | values.Envelope | values.Interval):
            return self.operand(value, field)
        if field is None:
            return self.ctx.params.bind(value)
        return self.ctx.params.bind(coerce(value, field), field_cast(field))

    def attribute_field(self, node: Any) -> FieldSpec | None:
        if isinstance(node, ast.Attribute):
            return self.field(node.name)
        if isinstance(node, ast.Function) and node.arguments and isinstance(node.arguments[0], ast.Attribute):
            self.field(node.arguments[0].name)
        return None

    def field(self, name: str) -> FieldSpec:
        field = self.ctx.fields.get(name)
        if field is None:
            known = ", ".join(sorted(self.ctx.fields))
            raise InvalidParameter(f"parameter 'filter': unknown property {name!r}; queryables: {known}, geometry")
        self.ctx.used.add(name)
        return field

    # spatial
    def spatial(self, node: Any) -> str:
        if isinstance(node, ast.Attribute):
            if node.name in GEOMETRY_NAMES:
                return '"geom"'
            self.field(node.name)
            raise InvalidParameter(f"parameter 'filter': property {node.name!r} is not a geometry")
        if isinstance(node, values.Envelope):
            return self.envelope(node.x1, node.x2, node.y1, node.y2)
        if isinstance(node, ast.Function) and node.name.lower() == "bbox" and len(node.arguments) in (4, 6):
            a = node.arguments
            box = (a[0], a[1], a[2], a[3]) if len(a) == 4 else (a[0], a[1], a[3], a[4])
            return self.envelope(*box)
        if isinstance(node, values.Geometry):
            return self.geometry_literal(node.geometry)
        raise InvalidParameter(f"parameter 'filter': expected the geometry property or a geometry, "
                               f"got {_describe(node)}")

    def geometry_literal(self, geojson: dict) -> str:
        geojson = {k: v for k, v in geojson.items() if k != "crs"}
        try:
            geom = shapely.from_geojson(json.dumps(geojson))
        except (shapely.errors.GEOSException, ValueError, TypeError):
            raise InvalidParameter("parameter 'filter': invalid geometry literal") from None
        if geom is None or geom.is_empty:
            raise InvalidParameter("parameter 'filter': empty geometry literal")
        crs = self.ctx.filter_crs
        if crs.python_crs:
            from cim_service.core.crs import transform_geometry

            geom = transform_geometry(geom, crs.python_crs, "EPSG:4326")
            return f"ST_GeomFromWKB({self.ctx.params.bind(shapely.to_wkb(geom), 'bytea')}, 4326)"
        placeholder = f"ST_GeomFromWKB({self.ctx.params.bind(shapely.to_wkb(geom), 'bytea')})"
        return literal_to_wgs84_sql(crs, placeholder)

    def envelope(self, minx: Any, miny: Any, maxx: Any, maxy: Any) -> str:
        try:
            x1, y1, x2, y2 = (float(v) for v in (minx, miny, maxx, maxy))
        except (TypeError, ValueError):
            raise InvalidParameter("parameter 'filter': BBOX needs four numbers") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x1 > x2 or y1 > y2:
            raise InvalidParameter("parameter 'filter': BBOX must be finite with min <= max")
        box = shapely.box(x1, y1, x2, y2)
        return self.geometry_literal(json.loads(shapely.to_geojson(box)))

    def dwithin(self, name: str, args: list[Any]) -> str:
        if len(args) != 4 or not isinstance(args[2], int | float):
            raise InvalidParameter(f"parameter 'filter': {name.upper()}(geometry, geometry, distance, units)")
        unit = args[3].name if isinstance(args[3], ast.Attribute) else str(args[3])
        factor = _UNITS.get(unit.lower())
        if factor is None:
            raise InvalidParameter(f"parameter 'filter': unsupported distance unit {unit!r}; use meters or km")
        metres = float(args[2]) * factor
        if not math.isfinite(metres) or metres < 0:
            raise InvalidParameter("parameter 'filter': distance must be a non-negative number")
        a, b = self.spatial(args[0]), self.spatial(args[1])
        d = self.ctx.params.bind(metres, "double precision")
        deg = self.ctx.params.bind(metres / 111_320.0 / math.cos(math.radians(60.0)), "double precision")
        within = f"(ST_DWithin({a}, {b}, {deg}) AND ST_DWithin({a}::geography, {b}::geography, {d}))"
        return within if name == "s_dwithin" else f"(NOT {within})"

    # temporal
    def temporal(self, name: str, args: list[Any]) -> str:
        if len(args) != 2:
            raise InvalidParameter(f"parameter 'filter': {name.upper()} takes two arguments")
        a, b = self.temporal_operand(args[0]), self.temporal_operand(args[1])
        try:
            return temporal_sql(name, a, b)
        except KeyError:
            raise InvalidParameter(f"parameter 'filter': unsupported temporal operator {name.upper()}") from None

    def temporal_operand(self, node: Any) -> TemporalOperand:
        params = self.ctx.params
        if isinstance(node, ast.Attribute):
            field = self.field(node.name)
            if field.type not in (FieldType.date, FieldType.timestamp):
                raise InvalidParameter(f"parameter 'filter': property {node.name!r} is not temporal")
            col = quote_ident(field.name)
            return TemporalOperand(col, col)
        if isinstance(node, ast.Function) and node.name.lower() == "cim_interval" and len(node.arguments) == 2:
            start, end = (None if v in ("..", "") else parse_instant(str(v), "filter") for v in node.arguments)
            return TemporalOperand(_bound(params, start, "-infinity"), _bound(params, end, "infinity"))
        if isinstance(node, values.Interval):
            return TemporalOperand(_bound(params, node.start, "-infinity"), _bound(params, node.end, "infinity"))
        if isinstance(node, datetime | date):
            ph = _bound(params, node, "")
            return TemporalOperand(ph, ph)
        raise InvalidParameter(f"parameter 'filter': expected a temporal property or literal, got {_describe(node)}")


def _bound(params: Params, value: Any, infinite: str) -> str:
    if value is None:
        return f"'{infinite}'::timestamptz"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return params.bind(value, "timestamptz")
    if isinstance(value, date):
        return params.bind(value, "date")
    raise InvalidParameter("parameter 'filter': invalid temporal literal")


def coerce(value: Any, field: FieldSpec, parameter: str = "filter") -> Any:
    """Convert a CQL2 literal to the Python type of ``field``; 400 naming the field when impossible."""
    try:
        t = field.type
        if t is FieldType.text:
            if isinstance(value, bool | dict | list):
                raise ValueError
            return value if isinstance(value, str) else str(value)
        if t in (FieldType.integer, FieldType.bigint):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if t is FieldType.float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if t is FieldType.boolean:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError
        if t is FieldType.date:
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if t is FieldType.timestamp:
            return parse_instant(value, parameter) if not isinstance(value, datetime) else value
    except (ValueError, TypeError, OverflowError):
        pass
    raise InvalidParameter(f"parameter {parameter!r}: value {value!r} is not a valid {field.type.value} "
                           f"for property {field.name!r}")


def _describe(node: Any) -> str:
    if isinstance(node, ast.Node):
        return type(node).__name__
    return f"{type(node).__name__} {str(node)[:40]!r}"
