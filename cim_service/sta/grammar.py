"""The query language of SensorThings (an OData subset): ``$filter`` expressions and the other query options.

``$filter`` is parsed by a lark LALR grammar (:data:`FILTER_GRAMMAR`) into the small AST of this module
(:class:`Path`, :class:`Literal`, :class:`Call`, :class:`BinOp`, :class:`Not`); :mod:`cim_service.sta.sql`
compiles it to SQL. ``$expand`` (nested, with options in parentheses separated by ``;``), ``$select``,
``$orderby``, ``$top``, ``$skip`` and ``$count`` are parsed by :func:`parse_options`. Every fault is an
:class:`InvalidParameter` naming the option. Nothing here knows the database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import lark

from cim_service.errors import InvalidParameter

MAX_FILTER_LENGTH = 8_000
MAX_DEPTH = 40
MAX_EXPAND_DEPTH = 5
MAX_EXPANDS = 25  # navigation properties expanded in one request, all levels together

_DTX = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?"
FILTER_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*            -> or_
?and_expr: not_expr (_AND not_expr)*          -> and_
?not_expr: _NOT not_expr                      -> not_
         | comparison
?comparison: additive (COMPOP additive)?      -> compare
?additive: multiplicative (ADDOP multiplicative)* -> arith
?multiplicative: unary (MULOP unary)*         -> arith
?unary: "-" unary                             -> neg
      | primary
?primary: literal
        | call
        | path
        | "(" or_expr ")"
call: FUNC "(" [or_expr ("," or_expr)*] ")"
path: NAME ("/" NAME)*
literal: STRING                               -> string
       | INTERVAL                             -> interval
       | DATETIME                             -> datetime
       | NUMBER                               -> number
       | GEO                                  -> geo
       | _TRUE                                -> true
       | _FALSE                               -> false
       | _NULL                                -> null

_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
_TRUE.2: /true\b/i
_FALSE.2: /false\b/i
_NULL.2: /null\b/i
COMPOP.2: /(eq|ne|gt|ge|lt|le)\b/i
ADDOP.2: /(add|sub)\b/i
MULOP.2: /(mul|div|mod)\b/i
FUNC.3: /[A-Za-z][A-Za-z0-9_.]*(?=\s*\()/
GEO.3: /(geography|geometry)'[^']*'/i
INTERVAL.4: /DTX\/DTX/
DATETIME.3: /DTX/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
STRING: /'([^']|'')*'/
NAME: /@?[A-Za-z_][A-Za-z0-9_.]*/
%ignore /[ \t\r\n]+/
""".replace("DTX", _DTX)


# -- the AST ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Path:
    """A property path: ``name``, ``properties/depth``, ``Datastream/Thing/name``."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class Literal:
    """A literal value; ``kind`` is ``text``, ``number``, ``bool``, ``null``, ``time``, ``interval`` or ``geom``."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Call:
    """A function call: ``startswith(name, 'A')``, ``geo.intersects(location, geography'...')``."""

    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class BinOp:
    """A binary operator: comparison (eq...), logical (and, or) or arithmetic (add...)."""

    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Neg:
    """Arithmetic negation."""

    operand: Any


@dataclass(frozen=True)
class Not:
    """Logical negation."""

    operand: Any


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant (a date alone is its UTC midnight; no offset means UTC); ValueError otherwise."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    m = re.match(r"^(.*[T ]\d{2}:\d{2}(?::\d{2})?)(\.\d+)?([+-]\d{2}:?\d{2})?$", t)
    if m and m.group(2) and len(m.group(2)) > 7:  # Python takes at most microseconds
        t = m.group(1) + m.group(2)[:7] + (m.group(3) or "")
    value = datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not 1 <= value.year <= 9999:
        raise ValueError("year out of range")
    return value.astimezone(UTC)


class _ToAst(lark.Transformer):
    def __init__(self, option: str):
        super().__init__()
        self.option = option

    def _bad(self, msg: str) -> InvalidParameter:
        return InvalidParameter(f"parameter '{self.option}': {msg}")

    def or_(self, items):
        out = items[0]
        for right in items[1:]:
            out = BinOp("or", out, right)
        return out

    def and_(self, items):
        out = items[0]
        for right in items[1:]:
            out = BinOp("and", out, right)
        return out

    def not_(self, items):
        return Not(items[0])

    def compare(self, items):
        if len(items) == 1:
            return items[0]
        return BinOp(str(items[1]).lower(), items[0], items[2])

    def arith(self, items):
        out = items[0]
        for i in range(1, len(items), 2):
            out = BinOp(str(items[i]).lower(), out, items[i + 1])
        return out

    def neg(self, items):
        (operand,) = items
        if isinstance(operand, Literal) and operand.kind == "number":
            return Literal("number", -operand.value)
        return Neg(operand)

    def call(self, items):
        name = str(items[0]).lower()
        args = tuple(a for a in items[1:] if a is not None)
        if name == "not" and len(args) == 1:  # ``not (x)`` reads like a call to the lexer
            return Not(args[0])
        return Call(name, args)

    def path(self, items):
        return Path(tuple(str(t) for t in items))

    def string(self, items):
        text = str(items[0])[1:-1].replace("''", "'")
        if "\x00" in text:
            raise self._bad("NUL in a string literal")
        return Literal("text", text)

    def number(self, items):
        text = str(items[0])
        if re.fullmatch(r"\d+", text):
            value: Any = int(text)
            if value > 2**63 - 1:
                raise self._bad(f"integer {text[:30]} out of range")
        else:
            value = float(text)
            if not math.isfinite(value):
                raise self._bad(f"number {text[:30]} is not finite")
        return Literal("number", value)

    def datetime(self, items):
        try:
            return Literal("time", parse_instant(str(items[0])))
        except ValueError:
            raise self._bad(f"invalid time {str(items[0])[:40]!r}") from None

    def interval(self, items):
        start, _, end = str(items[0]).partition("/")
        try:
            a, b = parse_instant(start), parse_instant(end)
        except ValueError:
            raise self._bad(f"invalid interval {str(items[0])[:80]!r}") from None
        if b < a:
            raise self._bad("an interval's end is before its start")
        return Literal("interval", (a, b))

    def geo(self, items):
        text = str(items[0])
        return Literal("geom", text[text.index("'") + 1:-1])

    def true(self, items):
        return Literal("bool", True)

    def false(self, items):
        return Literal("bool", False)

    def null(self, items):
        return Literal("null", None)


_PARSER = lark.Lark(FILTER_GRAMMAR, parser="lalr", maybe_placeholders=True)


def parse_filter(text: str, option: str = "$filter") -> Any:
    """Parse a ``$filter`` expression into the AST; :class:`InvalidParameter` naming ``option`` on any fault."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidParameter(f"parameter '{option}': longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise InvalidParameter(f"parameter '{option}': empty expression")
    depth = max_depth = 0
    for ch in text:  # bound nesting before the parser recurses (the transformer is recursive)
        if ch == "(":
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch == ")":
            depth -= 1
    if max_depth > MAX_DEPTH:
        raise InvalidParameter(f"parameter '{option}': nested deeper than {MAX_DEPTH}")
    try:
        tree = _PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        col = getattr(exc, "column", "?")
        raise InvalidParameter(f"parameter '{option}': syntax error at column {col}") from None
    except lark.exceptions.LarkError:
        raise InvalidParameter(f"parameter '{option}': syntax error") from None
    try:
        return _ToAst(option).transform(tree)
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, InvalidParameter):
            raise exc.orig_exc from None
        raise InvalidParameter(f"parameter '{option}': invalid expression") from None
    except RecursionError:
        raise InvalidParameter(f"parameter '{option}': too complex") from None


# -- the other query options ----------------------------------------------------------------------------------------
@dataclass
class OrderItem:
    """One ``$orderby`` key."""

    expr: Any
    descending: bool = False


@dataclass
class Options:
    """The query options of one (possibly expanded) entity set."""

    filter: Any = None
    select: list[str] | None = None
    orderby: list[OrderItem] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False
    expand: list[Expand] = field(default_factory=list)
    result_format: str | None = None


@dataclass
class Expand:
    """One ``$expand`` item: a navigation path and the options applying to its (last) target."""

    path: tuple[str, ...]
    options: Options


KNOWN = ("$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$resultFormat")
_NAV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SELECT_NAME = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_.]*(/[A-Za-z_][A-Za-z0-9_.]*)*$")


def _split_top_level(text: str, sep: str, option: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise InvalidParameter(f"parameter '{option}': unbalanced parentheses")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quoted:
        raise InvalidParameter(f"parameter '{option}': unbalanced parentheses or quotes")
    parts.append(text[start:])
    return parts


def _int_option(name: str, text: str, *, maximum: int | None = None) -> int:
    if not re.fullmatch(r"\d{1,12}", text.strip()):
        raise InvalidParameter(f"parameter '{name}': must be a non-negative integer")
    value = int(text)
    if maximum is not None:
        value = min(value, maximum)
    return value


def parse_options(params: dict[str, str], *, max_top: int, default_top: int, prefix: str = "",
                  depth: int = 0) -> Options:
    """Parse the query options ``params`` (name -> raw value) of one entity set.

    ``$top`` above ``max_top`` is clamped to it (FROST does the same), absent it is ``default_top``.
    Unknown ``$`` options are a 400; ``prefix`` names the enclosing ``$expand`` in messages.
    """
    opts = Options(top=default_top)
    for raw_name, value in params.items():
        name = raw_name.strip()
        shown = f"{prefix}{name}"
        if name not in KNOWN:
            raise InvalidParameter(f"unknown query option '{shown}'")
        if name == "$filter":
            opts.filter = parse_filter(value, shown)
        elif name == "$select":
            items = [s.strip() for s in value.split(",")]
            if not items or any(not _SELECT_NAME.match(s) for s in items):
                raise InvalidParameter(f"parameter '{shown}': a comma-separated list of property names")
            opts.select = items
        elif name == "$orderby":
            opts.orderby = []
            for part in _split_top_level(value, ",", shown):
                part = part.strip()
                desc = False
                m = re.match(r"^(.*?)\s+(asc|desc)$", part, flags=re.I)
                if m:
                    part, desc = m.group(1), m.group(2).lower() == "desc"
                opts.orderby.append(OrderItem(parse_filter(part, shown), desc))
        elif name == "$top":
            opts.top = _int_option(shown, value, maximum=max_top)
        elif name == "$skip":
            opts.skip = _int_option(shown, value, maximum=10**9)
        elif name == "$count":
            v = value.strip().lower()
            if v not in ("true", "false"):
                raise InvalidParameter(f"parameter '{shown}': true or false")
            opts.count = v == "true"
        elif name == "$resultFormat":
            if value.strip() != "default":
                raise InvalidParameter(f"parameter '{shown}': only 'default' is served (dataArray responses are "
                                       "not implemented; dataArray is accepted for writes)")
            opts.result_format = value.strip()
        elif name == "$expand":
            opts.expand = parse_expand(value, max_top=max_top, default_top=default_top, prefix=prefix,
                                       depth=depth)
    if depth == 0 and _count_expands(opts.expand) > MAX_EXPANDS:
        raise InvalidParameter(f"parameter '$expand': at most {MAX_EXPANDS} navigation properties in one request")
    return opts


def _count_expands(expands: list[Expand]) -> int:
    return sum(len(e.path) + _count_expands(e.options.expand) for e in expands)


def parse_expand(text: str, *, max_top: int, default_top: int, prefix: str = "", depth: int = 0) -> list[Expand]:
    """Parse ``$expand``: ``Datastreams($expand=Observations($top=3;$orderby=phenomenonTime desc)),Locations``."""
    shown = f"{prefix}$expand"
    if depth >= MAX_EXPAND_DEPTH:
        raise InvalidParameter(f"parameter '{shown}': nested deeper than {MAX_EXPAND_DEPTH}")
    out = []
    for item in _split_top_level(text, ",", shown):
        item = item.strip()
        inner = ""
        if "(" in item:
            if not item.endswith(")"):
                raise InvalidParameter(f"parameter '{shown}': options of {item[:40]!r} must end with ')'")
            item, inner = item[:item.index("(")].strip(), item[item.index("(") + 1:-1]
        path = tuple(p.strip() for p in item.split("/"))
        if not path or any(not _NAV_NAME.match(p) for p in path):
            raise InvalidParameter(f"parameter '{shown}': {item[:40]!r} is not a navigation path")
        params: dict[str, str] = {}
        if inner.strip():
            for opt in _split_top_level(inner, ";", shown):
                key, eq, val = opt.partition("=")
                if not eq:
                    raise InvalidParameter(f"parameter '{shown}': option {opt.strip()[:40]!r} has no '='")
                key = key.strip()
                if key in params:
                    raise InvalidParameter(f"parameter '{shown}': option {key} given twice")
                params[key] = val
        sub = parse_options(params, max_top=max_top, default_top=default_top,
                            prefix=f"{shown}({'/'.join(path)})/", depth=depth + 1)
        out.append(Expand(path, sub))
    return out
