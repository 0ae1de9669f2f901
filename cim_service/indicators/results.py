"""Turn measures into indicator results: value, target per area, status (met / not_met / no_data) and gap text."""

from __future__ import annotations

import math
from typing import Any

from cim_service.indicators.catalog import IndicatorSpec, Kind
from cim_service.indicators.compute import Measure
from cim_service.indicators.context import DISTRICT

#: layers an indicator can do without (a missing key area or zone layer only narrows the result)
OPTIONAL_INPUTS = {"key_areas", "planning_zones"}
#: met when value >= target - TOLERANCE (float noise of polygon overlays at 100 %)
TOLERANCE = 1e-6

METHODS = {
    Kind.count: "count of features (district: not flagged outside the district; towns: inside the town polygon)",
    Kind.density: "features / area in km² (EPSG:4549)",
    Kind.area_coverage: ("area within the service radius of a station / area; 64-gon buffers in EPSG:4549, "
                         "unioned per zone and overlaid with the towns (polygon area 99.84 % of the true discs)"),
    Kind.address_coverage: "addresses inside the same coverage polygons as the area coverage / all addresses",
    Kind.site_coverage: "sites with a waterlogging sensor within sensor_site_radius_m (spheroid) / all sites",
    Kind.line_coverage: "main-road length within radius_m of a smart pole / main-road length (EPSG:4549)",
    Kind.flag_share: "features whose flag is true / all features",
}


def _value(spec: IndicatorSpec, num: float, den: float | None) -> float | None:
    if spec.kind is Kind.count:
        return num
    if not den:
        return None
    if spec.kind is Kind.density:
        return num / den
    return 100.0 * num / den


def area_target(spec: IndicatorSpec, town_km2: float | None, district_km2: float | None) -> float | None:
    """Target of a town: the district's (as_is) or its area share of a count target (by_area)."""
    if town_km2 is None or spec.town_target == "as_is":
        return spec.target
    if not district_km2:
        return None
    return round(spec.target * town_km2 / district_km2)


def _gap(spec: IndicatorSpec, area: str, num: float, den: float | None, target: float) -> tuple[float, str, str]:
    """Gap amount (in the natural unit of the kind) and a human sentence, in English and in Chinese."""
    den_f = float(den or 0)
    zh = spec.noun_zh
    if spec.kind is Kind.count:
        n = math.ceil(target - num)
        return (n, f"{area} needs {n:,} more {spec.noun} (target {target:,.0f})",
                f"{area}还需新增{zh}{n:,}{spec.unit}(目标{target:,.0f})")
    if spec.kind is Kind.density:
        n = math.ceil(target * den_f - num - 1e-9)
        return (n, f"{area} needs {n:,} more {spec.noun} to reach {target:g}/km²",
                f"{area}还需新增{zh}{n:,}个,方可达到每平方公里{target:g}个")
    share = target / 100.0
    if spec.kind is Kind.area_coverage:
        km2 = den_f * share - num
        pct = 100 * km2 / (den_f or 1)
        return (round(km2, 3), f"{area}: {km2:,.2f} km² ({pct:.1f} % of its area) lacks {spec.noun} coverage",
                f"{area}有{km2:,.2f}平方公里(占{pct:.1f}%)未被{zh}覆盖")
    if spec.kind is Kind.line_coverage:
        km = den_f * share - num
        return (round(km, 3), f"{area}: {km:,.2f} of {den_f:,.2f} km of main roads lack a smart pole nearby",
                f"{area}主要道路{den_f:,.2f}公里中有{km:,.2f}公里附近缺少智能综合杆")
    n = math.ceil(den_f * share - num - 1e-9)
    if spec.kind is Kind.flag_share:
        return (n, f"{area} needs {n:,} more {spec.noun} with an electronic sign (target {target:g} %)",
                f"{area}还需为{n:,}个{zh}安装电子站牌(目标{target:g}%)")
    if spec.kind is Kind.address_coverage:
        return (n, f"{area}: {n:,} of {den_f:,.0f} addresses lack {spec.noun} coverage",
                f"{area}{den_f:,.0f}个地址中有{n:,}个未被{zh}覆盖")
    return (n, f"{area}: {n:,} of {den_f:,.0f} {spec.noun} lack a waterlogging sensor nearby",
            f"{area}{den_f:,.0f}个{zh}中有{n:,}个附近未布设积水监测设备")


def area_result(spec: IndicatorSpec, area: str, num: float | None, den: float | None,
                target: float | None, missing: str | None) -> dict[str, Any]:
    """Value, target, status and gap of one area (district or town)."""
    value = None if missing or num is None else _value(spec, num, den)
    out: dict[str, Any] = {"value": None if value is None else round(value, 4), "target": target,
                           "numerator": num, "denominator": den}
    if value is None or target is None:
        reason = missing or f"no {spec.noun} to measure in {area}"
        out.update(status="no_data", gap=f"no data: {reason}", gap_zh=f"{area}暂无数据", gap_value=None)
    elif value >= target - TOLERANCE * max(1.0, abs(target)):
        out.update(status="met", gap=f"{area} meets the target", gap_zh=f"{area}已达标", gap_value=0)
    else:
        gap_value, text, text_zh = _gap(spec, area, float(num or 0), den, target)
        out.update(status="not_met", gap=text, gap_zh=text_zh, gap_value=gap_value)
    return out


def assemble(spec: IndicatorSpec, measure: Measure, *, towns: list[tuple[str, str | None, float]],
             district_km2: float | None, empty: list[str]) -> dict[str, Any]:
    """The full result of one indicator: district fields, then ``towns`` with the same fields per town."""
    missing = f"layer(s) {', '.join(empty)} empty" if empty else None
    num, den = measure.get(None, (None, None))
    result: dict[str, Any] = {
        "id": spec.id, "name_zh": spec.name_zh, "name_en": spec.name_en, "unit": spec.unit,
        "binding": spec.binding.value, "binding_zh": spec.binding.zh, "baseline": spec.baseline,
        "kind": spec.kind.value, "method": METHODS[spec.kind], "town_target_rule": spec.town_target,
        **area_result(spec, DISTRICT, num, den, spec.target, missing),
    }
    result["target"] = spec.target
    result["towns"] = []
    for name, name_en, km2 in towns:
        t_num, t_den = measure.get(name, (0.0, km2 if spec.kind in (Kind.density, Kind.area_coverage) else 0.0))
        target = area_target(spec, km2, district_km2)
        result["towns"].append({"town": name, "name_en": name_en, "area_km2": round(km2, 4),
                                **area_result(spec, name, t_num, t_den, target, missing)})
    return result
