"""Layers as of a past day, for indicators over time: which rows of a layer existed at the end of that day.

Two sources, both applied:

- the layer's history (``cim_hist``, :mod:`cim_service.store.history`): the version of every feature valid at
  the end of the day (in the plan's time zone, Asia/Shanghai); a day before the history begins reads every
  feature the history knows of (its first version), dated by its own date alone;
- the features' own dates: a feature counts only when its declared ``time_field`` (e.g. ``installed_at``,
  ``built_at``) is on or before the day (a timestamp field, e.g. an alert's ``raised_at``: at or before the
  day's last instant in Asia/Shanghai). A feature without a date is taken to have existed before the data
  (the plan's 2020 baseline counts it). So where the history starts later than the data (a first load in 2023
  of devices installed since 2012), the years before it come from the devices' own dates.

A layer with neither (no history rows, no date) is read as it is now, and so is a layer whose history shows no
change since the day (or, before the history begins, none ever): its current rows are that state.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from cim_service.core.catalog import LayerSpec
from cim_service.core.fieldtypes import FieldType
from cim_service.store import history

#: the time zone whose days ``at`` names (Minhang's)
PLAN_TZ = ZoneInfo("Asia/Shanghai")


def day_end(at: date) -> datetime:
    """The last instant of day ``at`` in the plan's time zone (one microsecond before the next midnight)."""
    return datetime.combine(at + timedelta(days=1), time(0), tzinfo=PLAN_TZ) - timedelta(microseconds=1)


def asof_source(conn: Connection, spec: LayerSpec, at: date) -> tuple[str, dict[str, Any]] | None:
    """SQL (and its bound values) selecting the layer's rows as of the end of day ``at``; None: the table as is."""
    source, params, cond = spec.qualified_table, {}, "TRUE"
    if history.has_history(spec):
        begins = history.begins(conn, spec)
        if begins is not None and day_end(at) >= begins:
            if not history.unchanged_since(conn, spec, day_end(at)):
                source = history.as_of_source(spec, "CAST(:asof_t AS timestamptz)")
                params["asof_t"] = day_end(at)
        elif begins is not None and not history.unchanged_since(conn, spec, None):
            source = history.first_versions_source(spec)
    if spec.time_field:
        field = spec.field(spec.time_field)  # declared (the catalog checks it too); quoted below
        col = f's."{spec.time_field}"'
        if field.type is FieldType.timestamp:  # an instant: before the day's end in Asia/Shanghai, whatever the
            # session's TimeZone (a date cast to timestamptz would be the session's midnight)
            cond = f"({col} IS NULL OR {col} <= CAST(:asof_end AS timestamptz))"
            params["asof_end"] = day_end(at)
        else:
            cond = f"({col} IS NULL OR {col} < CAST(:asof_next AS date))"
            params["asof_next"] = (at + timedelta(days=1)).isoformat()
    if source == spec.qualified_table and not params:
        return None
    return f"SELECT s.* FROM {source} s WHERE {cond}", params
