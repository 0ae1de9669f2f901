"""Turn measures into indicator results: value, target per area, status (met / not_met / no_data) and gap text."""

from __future__ import annotations

import math
from typing import Any

from cim_service.indicators.catalog import GapText, IndicatorSpec
from cim_service.indicators.compute import Measure
from cim_service.indicators.context import DISTRICT, DISTRICT_EN
from cim_service.indicators.kinds import Kind

#: keys of a result holding the per-town rows and the key areas (the API's JSON, not layer ids)
TOWNS_KEY = "towns"
KEY_AREAS_KEY = "key_areas"
#: met when value >= target - TOLERANCE (float noise of polygon overlays at 100 %)
TOLERANCE = 1e-6

#: how each kind measures (an indicator's ``method`` overrides it)
METHODS = {
    Kind.count: "count of features (district: not flagged outside the district; towns: inside the town polygon)",
    Kind.density: "features / area in km² (EPSG:4549)",
    Kind.area_coverage: ("area within the service radius of a station / area; 64-gon buffers in EPSG:4549, "
                         "unioned per zone and overlaid with the towns (polygon area 99.84 % of the true discs)"),
    Kind.address_coverage: "addresses inside the same coverage polygons as the area coverage / all addresses",
    Kind.site_coverage: "sites with a feature of the covering layer within radius_m (spheroid) / all sites",
    Kind.line_coverage: "line length within radius_m of a feature of the covering layer / line length (EPSG:4549)",
    Kind.flag_share: "features whose flag is true / all features",
    Kind.events: ("features dated from 1 January of the day's year to its end, Asia/Shanghai (district: not flagged "
                  "outside the district; towns: inside the town polygon)"),
    Kind.online_share: ("features whose SensorThings Thing reported (any datastream, phenomenon time) within "
                        "window_s before the moment measured / all features"),
    Kind.live_site_coverage: ("sites with a sensor within radius_m (spheroid) that reported within window_s "
                              "before the moment measured / all sites"),
}
#: the gap sentence of each kind (an indicator's ``gap_text`` overrides it); placeholders: catalog.GAP_FIELDS
GAP_TEXTS = {
    Kind.count: GapText(en="{area} needs {gap:,} more {noun} (target {target:,.0f})",
                        zh="{area}还需新增{noun_zh}{gap:,}{unit}(目标{target:,.0f})"),
    Kind.density: GapText(en="{area} needs {gap:,} more {noun} to reach {target:g}/km²",
                          zh="{area}还需新增{noun_zh}{gap:,}个,方可达到每平方公里{target:g}个"),
    Kind.area_coverage: GapText(en="{area}: {gap:,.2f} km² ({pct:.1f} % of its area) lacks {noun} coverage",
                                zh="{area}有{gap:,.2f}平方公里(占{pct:.1f}%)未被{noun_zh}覆盖"),
    Kind.line_coverage: GapText(en="{area}: {gap:,.2f} of {den:,.2f} km of {noun} lack coverage",
                                zh="{area}{noun_zh}{den:,.2f}公里中有{gap:,.2f}公里未覆盖"),
    Kind.flag_share: GapText(en="{area} needs {gap:,} more {noun} with the flag set (target {target:g} %)",
                             zh="{area}还需{gap:,}个{noun_zh}达标(目标{target:g}%)"),
    Kind.address_coverage: GapText(en="{area}: {gap:,} of {den:,.0f} addresses lack {noun} coverage",
                                   zh="{area}{den:,.0f}个地址中有{gap:,}个未被{noun_zh}覆盖"),
    Kind.site_coverage: GapText(en="{area}: {gap:,} of {den:,.0f} {noun} lack coverage nearby",
                                zh="{area}{den:,.0f}个{noun_zh}中有{gap:,}个附近未覆盖"),
    Kind.events: GapText(en="{area}: {gap:,} {noun} more than the target of {target:,.0f} this year",
                         zh="{area}今年{noun_zh}比目标{target:,.0f}多{gap:,}{unit}"),
    Kind.online_share: GapText(en="{area}: {gap:,} more of {den:,.0f} {noun} must report to reach {target:g} %",
                               zh="{area}{den:,.0f}个{noun_zh}中还需{gap:,}个在线方可达到{target:g}%"),
    Kind.live_site_coverage: GapText(en="{area}: {gap:,} of {den:,.0f} {noun} lack a live sensor nearby",
                                     zh="{area}{den:,.0f}个{noun_zh}中有{gap:,}个附近无在线监测设备"),
}


def _value(spec: IndicatorSpec, num: float, den: float | None) -> float | None:
    if spec.kind in (Kind.count, Kind.events):
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


def _gap(spec: IndicatorSpec, area: str, num: float, den: float | None, target: float,
         area_en: str | None = None) -> tuple[float, str, str]:
    """Gap amount (in the natural unit of the kind) and a human sentence, in English (naming the area by its
    English name) and in Chinese."""
    den_f = float(den or 0)
    share = target / 100.0
    if spec.kind is Kind.events:  # fewer is better
        gap: float = math.ceil(num - target)
    elif spec.kind is Kind.count:
        gap = math.ceil(target - num)
    elif spec.kind is Kind.density:
        gap = math.ceil(target * den_f - num - 1e-9)
    elif spec.kind in (Kind.area_coverage, Kind.line_coverage):  # km² or km
        gap = den_f * share - num
    else:  # features
        gap = math.ceil(den_f * share - num - 1e-9)
    text = spec.gap_text or GAP_TEXTS[spec.kind]
    fields = {"area": area, "gap": gap, "den": den_f, "target": target, "pct": 100 * gap / (den_f or 1),
              "noun": spec.noun, "noun_zh": spec.noun_zh, "unit": spec.unit}
    amount = round(gap, 3) if isinstance(gap, float) else gap
    return amount, text.en.format(**{**fields, "area": area_en or area}), text.zh.format(**fields)


def area_result(spec: IndicatorSpec, area: str, num: float | None, den: float | None,
                target: float | None, missing: str | None, area_en: str | None = None) -> dict[str, Any]:
    """Value, target, status and gap of one area (district or town); ``gap`` names the area in English
    (``area_en``, else its name), ``gap_zh`` in Chinese."""
    name_en = area_en or area
    value = None if missing or num is None else _value(spec, num, den)
    out: dict[str, Any] = {"value": None if value is None else round(value, 4), "target": target,
                           "numerator": num, "denominator": den}
    if value is None or target is None:
        reason = missing or f"no {spec.noun} to measure in {name_en}"
        out.update(status="no_data", gap=f"no data: {reason}", gap_zh=f"{area}暂无数据", gap_value=None)
    elif (value <= target + TOLERANCE * max(1.0, abs(target)) if spec.lower_is_better
          else value >= target - TOLERANCE * max(1.0, abs(target))):
        out.update(status="met", gap=f"{name_en} meets the target", gap_zh=f"{area}已达标", gap_value=0)
    else:
        gap_value, text, text_zh = _gap(spec, area, float(num or 0), den, target, name_en)
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
        "kind": spec.kind.value, "method": spec.method or METHODS[spec.kind], "town_target_rule": spec.town_target,
        "lower_is_better": spec.lower_is_better,
        **area_result(spec, DISTRICT, num, den, spec.target, missing, DISTRICT_EN),
    }
    result["target"] = spec.target
    result[TOWNS_KEY] = []
    for name, name_en, km2 in towns:
        t_num, t_den = measure.get(name, (0.0, km2 if spec.kind.per_area else 0.0))
        target = area_target(spec, km2, district_km2)
        result[TOWNS_KEY].append({"town": name, "name_en": name_en, "area_km2": round(km2, 4),
                                **area_result(spec, name, t_num, t_den, target, missing, name_en)})
    return result
