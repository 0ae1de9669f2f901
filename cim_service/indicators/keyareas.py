"""Coverage of key areas (e.g. 虹桥商务区, 莘庄商务区 for 5G) against targets of their own, when declared and loaded."""

from __future__ import annotations

from typing import Any

from cim_service.indicators import coverage as cov
from cim_service.indicators.catalog import IndicatorSpec
from cim_service.indicators.context import Context
from cim_service.indicators.results import area_result


def key_area_results(ctx: Context, spec: IndicatorSpec) -> list[dict[str, Any]]:
    """Coverage of each key area against its own target (its ``target_field`` share, default the indicator's)."""
    keys = spec.p.key_areas
    table = cov.coverage(ctx, spec.p.coverage)
    out = []
    for name, km2, covered, target_share in cov.covered_area_of(ctx, table, keys.layer, keys.target_field):
        target = 100.0 * float(target_share) if target_share is not None else spec.target
        out.append({"name": name, "area_km2": round(km2, 4), "baseline": keys.baselines.get(name),
                    **area_result(spec, name, covered, km2, target, None)})
    return out
