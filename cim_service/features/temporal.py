"""Temporal semantics shared by the ``datetime`` parameter and CQL2 temporal operators.

Every operand is an interval ``[start, end]`` in SQL (an instant has start = end; open ends are
``-infinity`` / ``infinity``); the CQL2 operators are the Allen relations between two such intervals.
Instants without a time zone are taken as UTC (RFC 3339 requires one; we are lenient).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cim_service.core.catalog import FieldSpec, FieldType
from cim_service.errors import InvalidParameter
from cim_service.features.sql import Params, quote_ident


@dataclass(frozen=True)
class TemporalOperand:
    """SQL expressions of an interval's start and end."""

    start: str
    end: str


_RELATIONS = {
    "t_after": "({a.start} > {b.end})",
    "t_before": "({a.end} < {b.start})",
    "t_during": "({a.start} > {b.start} AND {a.end} < {b.end})",
    "t_intersects": "({a.start} <= {b.end} AND {a.end} >= {b.start})",
    "t_disjoint": "NOT ({a.start} <= {b.end} AND {a.end} >= {b.start})",
    "t_equals": "({a.start} = {b.start} AND {a.end} = {b.end})",
    "t_contains": "({a.start} < {b.start} AND {a.end} > {b.end})",
    "t_begins": "({a.start} = {b.start} AND {a.end} < {b.end})",
    "t_begunby": "({a.start} = {b.start} AND {a.end} > {b.end})",
    "t_ends": "({a.end} = {b.end} AND {a.start} > {b.start})",
    "t_endedby": "({a.end} = {b.end} AND {a.start} < {b.start})",
    "t_meets": "({a.end} = {b.start})",
    "t_metby": "({a.start} = {b.end})",
    "t_overlaps": "({a.start} < {b.start} AND {a.end} > {b.start} AND {a.end} < {b.end})",
    "t_overlappedby": "({a.start} > {b.start} AND {a.start} < {b.end} AND {a.end} > {b.end})",
}
TEMPORAL_OPERATORS = tuple(_RELATIONS)


def temporal_sql(name: str, a: TemporalOperand, b: TemporalOperand) -> str:
    """SQL of the Allen relation ``name`` (``t_after`` ...) between two intervals; KeyError when unknown."""
    return _RELATIONS[name].format(a=a, b=b)


def parse_instant(value: object, parameter: str) -> datetime | date:
    """Parse an RFC 3339 date-time (UTC when no zone) or a full date."""
    text = str(value).strip()
    try:
        if "T" in text.upper() or " " in text:
            dt = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(f"parameter {parameter!r}: {text!r} is not an RFC 3339 date or date-time") from None


def datetime_condition(value: str, field: FieldSpec, params: Params) -> str:
    """SQL for the ``datetime`` parameter (instant, ``start/end``, ``../end``, ``start/..``) on ``field``."""
    parts = value.split("/")
    if len(parts) > 2 or not value.strip():
        raise InvalidParameter("parameter 'datetime': expected an instant or an interval 'start/end'")
    bounds = [None if p.strip() in ("..", "") else parse_instant(p, "datetime") for p in parts]
    if len(bounds) == 1:
        if bounds[0] is None:
            raise InvalidParameter("parameter 'datetime': an instant cannot be open")
        start = end = bounds[0]
        if not isinstance(start, datetime):  # a whole day
            if field.type is FieldType.timestamp:
                start = datetime(start.year, start.month, start.day, tzinfo=UTC)
                end = start + timedelta(days=1) - timedelta(microseconds=1)
    else:
        start, end = bounds
        if start is None and end is None:
            return "TRUE"
        if end is not None and not isinstance(end, datetime) and field.type is FieldType.timestamp:
            end = _as_dt(end) + timedelta(days=1) - timedelta(microseconds=1)  # a date end includes its day
    if start is not None and end is not None and _as_dt(start) > _as_dt(end):
        raise InvalidParameter("parameter 'datetime': the interval start is after its end")
    col = quote_ident(field.name)
    cast = "date" if field.type is FieldType.date else "timestamptz"
    clauses = []
    if start is not None:
        clauses.append(f"{col} >= {params.bind(_to(start, cast), cast)}")
    if end is not None:
        clauses.append(f"{col} <= {params.bind(_to(end, cast), cast)}")
    return " AND ".join(clauses)


def _as_dt(v: date | datetime) -> datetime:
    if isinstance(v, datetime):
        return v
    return datetime(v.year, v.month, v.day, tzinfo=UTC)


def _to(v: date | datetime, cast: str) -> date | datetime:
    if cast == "date":
        return v.date() if isinstance(v, datetime) else v
    return _as_dt(v)
