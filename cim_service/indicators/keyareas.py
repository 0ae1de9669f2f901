"""5G coverage of the plan's key areas (虹桥商务区, 莘庄商务区) when the ``key_areas`` layer is loaded."""

from __future__ import annotations

from typing import Any

from cim_service.indicators import coverage as cov
from cim_service.indicators.catalog import IndicatorSpec
from cim_service.indicators.context import Context
from cim_service.indicators.results import area_result


def key_area_results(ctx: Context, spec: IndicatorSpec) -> list[dict[str, Any]]:
    """Coverage of each key area against its own target (``g5_target_coverage``, default full coverage)."""
    table = cov.coverage(ctx, spec.inputs[0], spec.params["radius"], spec.params.get("where", {}))
    out = []
    for name, km2, covered, target_share in cov.covered_area_of_key_areas(ctx, table):
        target = 100.0 * float(target_share) if target_share is not None else spec.target
        out.append({"name": name, "area_km2": round(km2, 4), "baseline": spec.key_area_baselines.get(name),
                    **area_result(spec, name, covered, km2, target, None)})
    return out
