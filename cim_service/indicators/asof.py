"""Layers as of a past date, for indicators over time: which rows of a layer existed at the end of a day.

A feature counts as of day ``at`` when its own date (the layer's declared ``time_field``, e.g. ``installed_at``
or ``built_at``) is on or before ``at``; a feature without a date is taken to have existed before the data
(the plan's 2020 baseline counts it). A layer without a declared date is read as it is now.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cim_service.core.catalog import LayerSpec


def asof_source(spec: LayerSpec, at: date) -> tuple[str, dict[str, Any]] | None:
    """SQL (and its bound values) selecting the layer's rows as of the end of day ``at``; None: the table as is."""
    if not spec.time_field:
        return None
    spec.field(spec.time_field)  # declared (the catalog checks it too); quoted below
    col = f's."{spec.time_field}"'
    return (f"SELECT s.* FROM {spec.qualified_table} s WHERE {col} IS NULL OR {col} < CAST(:asof_end AS date)",
            {"asof_end": date.fromordinal(at.toordinal() + 1).isoformat()})
