"""Trajectories: an indicator's yearly values from the plan's baseline to a day, the pace and a projection.

Pure arithmetic over indicator results as of several days (``engine.indicator_key(id, day)``); no database.

For one area (the district or a town), with ``v0`` its value at the end of the baseline year (2020),
``T`` its target (the town's share for counts, see ``results.area_target``) for the end of the target year
(2025), ``v`` its value on the last day measured and ``t`` years counted from the baseline's end (a year's end
is a whole number; a day inside a year a fraction by its day of the year):

- ``pace_needed``: ``(T - v0) / (target year - baseline year)``, the even yearly progress that meets the target;
- ``pace_needed_from_now``: ``(T - v) / (t_target - t)``, what is needed per year from the last day on
  (``more_per_year`` rounds it up for counts: how many more features per year);
- ``pace_achieved``: the slope (per year) of the least-squares line through the last ``last_n`` values;
- ``projection``: that line evaluated at the target year's end (``method`` says so); once the target day is
  measured, the measured value;
- ``on_track``: projection >= target;
- ``behind_pace``: how far the area is behind the even path, as a share of the planned progress:
  ``(v0 + pace_needed * t - v) / (T - v0)`` (0 or less: on or ahead of the path); towns are ranked by it,
  furthest behind first.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from cim_service.indicators.catalog import IndicatorSpec
from cim_service.indicators.context import DISTRICT
from cim_service.indicators.kinds import Kind
from cim_service.indicators.results import TOLERANCE, TOWNS_KEY
from cim_service.indicators.tables import UnknownTownError

#: key of the district's trajectory in a trajectory (the towns' are under ``results.TOWNS_KEY``)
OVERALL_KEY = "overall"
#: default number of yearly values the projection's line is fitted on
DEFAULT_LAST_N = 3


def year_end(year: int) -> date:
    """31 December of ``year``."""
    return date(year, 12, 31)


def years_since(day: date, base_year: int) -> float:
    """Years from the end of ``base_year`` to the end of ``day`` (whole at year ends)."""
    days_in_year = 366 if calendar.isleap(day.year) else 365
    return (day.year - base_year) + (day - year_end(day.year)).days / days_in_year


def trajectory_days(spec: IndicatorSpec, until: date) -> list[date]:
    """The days a trajectory is measured on: each year's end from the baseline year's to ``until``
    (at most the target year's), then ``until`` itself when it falls inside a year before the target's end."""
    last = min(until.year, spec.target_year)
    days = [year_end(y) for y in range(spec.baseline_year, last + 1) if year_end(y) <= until]
    if until < year_end(spec.target_year) and (not days or days[-1] != until) and until > year_end(spec.baseline_year):
        days.append(until)
    if not days:  # before the baseline year's end: the one value there is
        days.append(until)
    return days


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through ``(t, value)`` points (two or more, distinct t)."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    stt = sum((t - mt) ** 2 for t, _ in points)
    slope = sum((t - mt) * (v - mv) for t, v in points) / stt
    return mv - slope * mt, slope


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def area_trajectory(spec: IndicatorSpec, values: list[tuple[date, float | None]], target: float | None,
                    last_n: int = DEFAULT_LAST_N) -> dict[str, Any]:
    """Trajectory of one area from its ``(day, value)`` points (in day order; None: no data that day)."""
    base, goal = spec.baseline_year, spec.target_year
    target_day = year_end(goal)
    t_target = float(goal - base)
    known = [(d, v) for d, v in values if v is not None]
    out: dict[str, Any] = {
        "target": target, "target_year": goal, "target_date": target_day.isoformat(),
        "values": [{"date": d.isoformat(), "year": d.year, "value": _r(v)} for d, v in values],
        "baseline": None, "baseline_date": year_end(base).isoformat(), "current": None, "current_date": None,
        "pace_needed": None, "pace_needed_from_now": None, "pace_achieved": None, "expected_now": None,
        "projection": None, "on_track": None, "behind_pace": None,
    }
    if spec.kind is Kind.count:
        out["more_per_year"] = None
    if not known or target is None:
        return out
    first_day, v0 = known[0]
    day, v = known[-1]
    t = years_since(day, base)
    out.update(baseline=_r(v0), baseline_date=first_day.isoformat(), current=_r(v), current_date=day.isoformat())
    span = t_target - years_since(first_day, base)
    pace_needed = (target - v0) / span if span > 0 else None
    out["pace_needed"] = _r(pace_needed)
    if pace_needed is not None:
        expected = v0 + pace_needed * (t - years_since(first_day, base))
        out["expected_now"] = _r(expected)
        planned = target - v0
        if planned > 0:
            out["behind_pace"] = _r((expected - v) / planned)
        else:  # met at the baseline: behind only when it fell below the target since
            out["behind_pace"] = _r(max(0.0, target - v) / max(abs(target), 1.0))
    remaining = t_target - t
    met = v >= target - TOLERANCE * max(1.0, abs(target))
    if remaining > 0:
        need = max(0.0, (target - v) / remaining)
        out["pace_needed_from_now"] = _r(need)
        if spec.kind is Kind.count:
            out["more_per_year"] = math.ceil(need - 1e-9)
    elif spec.kind is Kind.count:
        out["more_per_year"] = 0
    tail = [(years_since(d, base), float(x)) for d, x in known[-max(2, last_n):]]
    if day >= target_day:
        measured = next(x for d, x in known if d >= target_day)
        out["projection"] = {"value": _r(measured), "date": target_day.isoformat(), "method": "measured"}
        if len(tail) >= 2:
            out["pace_achieved"] = _r(fit_line(tail)[1])
        out["on_track"] = measured >= target - TOLERANCE * max(1.0, abs(target))
        return out
    if len(tail) >= 2:
        a, b = fit_line(tail)
        projected = a + b * t_target
        if spec.unit == "%":
            projected = min(projected, 100.0)
        out["pace_achieved"] = _r(b)
        first, last = known[-len(tail)][0], day
        out["projection"] = {
            "value": _r(projected), "date": target_day.isoformat(), "last_n": len(tail),
            "method": (f"linear: least-squares line through the last {len(tail)} values "
                       f"({first.isoformat()} to {last.isoformat()}), evaluated at {target_day.isoformat()}"
                       + (", capped at 100 %" if spec.unit == "%" else "")),
        }
        out["on_track"] = met or projected >= target - TOLERANCE * max(1.0, abs(target))
    else:
        out["on_track"] = met
    return out


def _area_values(results: Mapping[date, dict[str, Any]], town: str | None
                 ) -> tuple[list[tuple[date, float | None]], float | None, str | None]:
    """The ``(day, value)`` points, the target and the English name of the district (None) or a town."""
    points: list[tuple[date, float | None]] = []
    target, name_en = None, None
    for day in sorted(results):
        r = results[day]
        if town is None:
            points.append((day, r.get("value")))
            target = r.get("target")
            continue
        row = next((t for t in r.get(TOWNS_KEY, []) if t["town"] == town), None)
        points.append((day, None if row is None else row.get("value")))
        if row is not None:
            target, name_en = row.get("target"), row.get("name_en")
    return points, target, name_en


def _rank_key(area: dict[str, Any]) -> tuple[int, float]:
    behind = area.get("behind_pace")
    return (1, 0.0) if behind is None else (0, -behind)


def trajectory(spec: IndicatorSpec, results: Mapping[date, dict[str, Any]], *, last_n: int = DEFAULT_LAST_N,
               until: date) -> dict[str, Any]:
    """The trajectory of the district and of every town (ranked by ``behind_pace``, furthest behind first)."""
    days = sorted(results)
    towns = sorted({t["town"] for r in results.values() for t in r.get(TOWNS_KEY, [])})
    district_points, district_target, _ = _area_values(results, None)
    rows = []
    for name in towns:
        points, target, name_en = _area_values(results, name)
        rows.append({"town": name, "name_en": name_en, **area_trajectory(spec, points, target, last_n)})
    rows.sort(key=_rank_key)
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    district = {"town": DISTRICT, **area_trajectory(spec, district_points, district_target, last_n)}
    return {
        "id": spec.id, "name_zh": spec.name_zh, "name_en": spec.name_en, "unit": spec.unit, "kind": spec.kind.value,
        "binding": spec.binding.value, "target": spec.target, "target_year": spec.target_year,
        "baseline_year": spec.baseline_year, "declared_baseline": spec.baseline, "until": until.isoformat(),
        "last_n": last_n, "days": [d.isoformat() for d in days], "town_target_rule": spec.town_target,
        "ranking": "towns by behind_pace, furthest behind the even path from baseline to target first",
        OVERALL_KEY: district, TOWNS_KEY: rows,
        "on_track_towns": sum(1 for r in rows if r["on_track"]),
        "behind_towns": sum(1 for r in rows if r["on_track"] is False),
    }


def select_town(traj: dict[str, Any], town: str) -> dict[str, Any]:
    """The trajectory with only ``town`` among the towns (its ``rank`` kept); UnknownTownError otherwise."""
    rows = [t for t in traj[TOWNS_KEY] if t["town"] == town]
    if not rows:
        raise UnknownTownError(town, sorted(t["town"] for t in traj[TOWNS_KEY]))
    return {**traj, TOWNS_KEY: rows}


CSV_COLUMNS = ["rank", "town", "name_en", "target", "target_year", "baseline", "current", "current_date",
               "pace_needed", "pace_needed_from_now", "pace_achieved", "projection", "on_track", "behind_pace",
               "more_per_year"]


def _cell(value: Any) -> Any:
    """A whole float as an int (counts read 20, not 20.0)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def flat_rows(traj: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row per area (the district first, then the towns by rank), a ``value_<day>`` per day."""
    columns = [*CSV_COLUMNS[:3], *(f"value_{d}" for d in traj["days"]), *CSV_COLUMNS[3:], "method"]
    rows = []
    for area in [traj[OVERALL_KEY], *traj[TOWNS_KEY]]:
        row = {c: area.get(c) for c in CSV_COLUMNS}
        proj = area.get("projection") or {}
        row["projection"] = proj.get("value")
        row["method"] = proj.get("method")
        for v in area["values"]:
            row[f"value_{v['date']}"] = v["value"]
        rows.append({k: _cell(v) for k, v in row.items()})
    return columns, rows
