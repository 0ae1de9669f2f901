"""SQL measures per indicator kind: numerator and denominator for the district and every town.

Each ``measure_<kind>`` returns ``{area: (numerator, denominator)}`` where ``area`` is a town name or
``None`` for the district; :mod:`cim_service.indicators.results` turns them into values, targets, status
and gap texts. District rows count the features the loader did not flag ``outside_district``; town rows
join the features to the (subdivided) town polygons.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cim_service.indicators import coverage as cov
from cim_service.indicators.asof import PLAN_TZ, day_end
from cim_service.indicators.catalog import IndicatorSpec
from cim_service.indicators.context import METRIC_SRID, Context
from cim_service.indicators.kinds import Kind, number
from cim_service.store import observations

Measure = dict[str | None, tuple[float, float | None]]
#: degrees of longitude per metre at Minhang's latitude, rounded up (a bounding-box prefilter only)
DEG_PER_M = 1 / 90_000


def _per_point(ctx: Context, layer_id: str, ok_expr: str, cond: str = "TRUE", join: str = "",
               **params: Any) -> Measure:
    """Count features and those satisfying ``ok_expr`` per town and for the district.

    ``join`` (e.g. a LEFT JOIN on an indexed id table) may bring in what ``ok_expr`` tests: a join plans as
    a hash or merge join at any ``work_mem``, where ``id IN (SELECT ...)`` becomes a rescan per row once
    its hash table outgrows ``work_mem``.
    """
    towns = ctx.point_towns(layer_id)
    rows = ctx.rows(
        f"""
        WITH p AS MATERIALIZED (
          SELECT s.id, s.outside_district AS outside, ({ok_expr}) AS ok FROM {ctx.table(layer_id)} s {join}
           WHERE {cond}
        )
        SELECT t.town, count(*), count(*) FILTER (WHERE ok) FROM p JOIN {towns} t USING (id) GROUP BY t.town
        UNION ALL
        SELECT NULL, count(*), count(*) FILTER (WHERE ok) FROM p WHERE NOT outside
        """,
        **params,
    )
    return {town: (float(ok), float(n)) for town, n, ok in rows}


def counted(ctx: Context, spec: IndicatorSpec) -> tuple[str, dict[str, object]]:
    """SQL condition on ``s`` selecting the features a count or density indicator counts (filter, date)."""
    p = spec.p
    cond, params = ctx.where(p.layer, p)
    if p.since:
        ctx.spec(p.layer).field(p.date_field)
        cond += f' AND s."{p.date_field}" >= CAST(:since AS date)'
        params["since"] = p.since
    return cond, params


def measure_count(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Features (optionally filtered by field values or a date) per area; no denominator."""
    cond, params = counted(ctx, spec)
    m = _per_point(ctx, spec.p.layer, "TRUE", cond, **params)
    return {area: (num, None) for area, (num, _) in m.items()}


def measure_density(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Features per km² of town / district area."""
    counts = measure_count(ctx, spec)
    areas: dict[str | None, float | None] = {t: a for t, _, a in ctx.towns}
    areas[None] = ctx.district_area_km2
    return {area: (counts.get(area, (0.0, None))[0], areas[area]) for area in areas}


def measure_area_coverage(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Covered km² and area km² per area (service-radius discs; see ``coverage``)."""
    table = cov.coverage(ctx, spec.p.coverage)
    covered = cov.covered_area_by_town(ctx, table)
    out: Measure = {t: (covered.get(t, 0.0), a) for t, _, a in ctx.towns}
    out[None] = (covered[None], ctx.district_area_km2)
    return out


def measure_address_coverage(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Points (e.g. addresses; optionally filtered, e.g. residential ones) inside the coverage, of all."""
    p = spec.p
    table = cov.coverage(ctx, p.coverage)
    cond, params = ctx.where(p.points, p)
    covered = cov.covered_points(ctx, table, p.points)
    return _per_point(ctx, p.points, "c.id IS NOT NULL", cond, join=f"LEFT JOIN {covered} c ON c.id = s.id",
                      **params)


def measure_site_coverage(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Sites with a feature of the ``near`` layer (e.g. a waterlogging sensor) within ``radius_m`` (spheroid)."""
    p = spec.p
    r = number(p.radius_m, ctx.settings)
    ok = (f"EXISTS (SELECT 1 FROM {ctx.table(p.near)} w "
          f"WHERE w.geom && ST_Expand(s.geom, :deg) AND ST_DWithin(w.geom::geography, s.geom::geography, :r))")
    return _per_point(ctx, p.sites, ok, deg=r * DEG_PER_M, r=r)


def measure_flag_share(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Features whose boolean field is true, of all (filtered) features."""
    p = spec.p
    ctx.spec(p.layer).field(p.field)
    cond, params = ctx.where(p.layer, p)
    return _per_point(ctx, p.layer, f's."{p.field}" IS TRUE', cond, **params)


def measure_line_coverage(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Line km (e.g. main roads) within ``radius_m`` of a ``near`` feature (e.g. a smart pole), of all, per area."""
    p = spec.p
    ctx.prepare_areas()
    near = cov.near_coverage(ctx, p.near, number(p.radius_m, ctx.settings))
    lines = ctx.table(p.lines)
    out: Measure = {}
    for name, areas in (("a.name", "_ind_town_sub"), ("NULL::text", "_ind_district_sub")):  # towns, district
        rows = ctx.rows(
            f"""
            WITH r AS (
              SELECT {name} AS area, ST_Intersection(ST_Transform(m.geom, {METRIC_SRID}), a.geom_m) AS geom
                FROM {lines} m JOIN {areas} a ON ST_Intersects(ST_Transform(m.geom, {METRIC_SRID}), a.geom_m)
            )
            SELECT r.area, sum(ST_Length(r.geom)) / 1e3,
                   sum((SELECT COALESCE(sum(ST_Length(ST_Intersection(r.geom, c.geom))), 0)
                          FROM {near} c WHERE ST_Intersects(c.geom, r.geom))) / 1e3
              FROM r GROUP BY r.area
            """
        )
        for area, total, covered in rows:
            out[area] = (float(covered or 0.0), float(total or 0.0))
    out.setdefault(None, (0.0, 0.0))
    return out


def measure_events(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Features dated from 1 January of the day's year to the day's end (Asia/Shanghai) per area; no denominator."""
    p = spec.p
    ctx.spec(p.layer).field(p.date_field)
    day = ctx.at or datetime.now(PLAN_TZ).date()
    cond, params = ctx.where(p.layer, p)
    cond += f' AND s."{p.date_field}" >= :ev_start AND s."{p.date_field}" <= :ev_end'
    m = _per_point(ctx, p.layer, "TRUE", cond, ev_start=datetime.combine(date(day.year, 1, 1), time(0), PLAN_TZ),
                   ev_end=day_end(day), **params)
    return {area: (num, None) for area, (num, _) in m.items()}


def moment(ctx: Context) -> tuple[datetime, bool]:
    """The moment a live indicator measures: now, or the end of day ``at`` (now when that is still to come);
    and whether it is now."""
    now = datetime.now(UTC)
    if ctx.at is None or day_end(ctx.at) >= now:
        return now, True
    return day_end(ctx.at), False


def reported(ctx: Context, layer_id: str, window_s: float) -> str:
    """Create ``_ind_rep_<layer>`` (feature_key) of the sensing layer's features that reported within ``window_s``
    before the moment measured; return its name."""
    name = f"_ind_rep_{ctx.spec(layer_id).table}"
    if name in ctx.prepared:
        return name
    until, current = moment(ctx)
    ctx.execute(
        f"""
        CREATE TEMP TABLE {name} ON COMMIT DROP AS {observations.reported_features_sql(current=current)};
        ALTER TABLE {name} ADD PRIMARY KEY (feature_key);
        ANALYZE {name}
        """,
        rep_layer=layer_id, rep_since=until - timedelta(seconds=window_s), rep_until=until,
    )
    ctx.prepared.add(name)
    return name


def _before_readings(ctx: Context) -> bool:
    """Tell whether the moment measured (a past day's end) precedes every reading: no data then, not 0 %."""
    until, current = moment(ctx)
    return not current and not observations.any_reading_until(ctx.conn, until)


def measure_online_share(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Features of a sensing layer (e.g. the neuron nodes) that reported within ``window_s``, of all."""
    p = spec.p
    if _before_readings(ctx):
        return {}
    rep = reported(ctx, p.layer, number(p.window_s, ctx.settings))
    return _per_point(ctx, p.layer, "r.feature_key IS NOT NULL", join=f"LEFT JOIN {rep} r USING (feature_key)")


def measure_live_site_coverage(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Sites (of every site layer) with a feature of ``near`` within ``radius_m`` that reported within
    ``window_s``, of all sites."""
    p = spec.p
    if _before_readings(ctx):
        return {}
    r = number(p.radius_m, ctx.settings)
    rep = reported(ctx, p.near, number(p.window_s, ctx.settings))
    live = f"_ind_live_{ctx.spec(p.near).table}"
    if live not in ctx.prepared:
        ctx.execute(
            f"""
            CREATE TEMP TABLE {live} ON COMMIT DROP AS
            SELECT w.id, w.geom FROM {ctx.table(p.near)} w JOIN {rep} USING (feature_key);
            CREATE INDEX ON {live} USING gist (geom);
            ANALYZE {live}
            """
        )
        ctx.prepared.add(live)
    ok = (f"EXISTS (SELECT 1 FROM {live} w "
          f"WHERE w.geom && ST_Expand(s.geom, :deg) AND ST_DWithin(w.geom::geography, s.geom::geography, :r))")
    out: Measure = {}
    for layer in p.sites:
        if layer in ctx.empty_layers:
            continue
        for area, (num, den) in _per_point(ctx, layer, ok, deg=r * DEG_PER_M, r=r).items():
            n0, d0 = out.get(area, (0.0, 0.0))
            out[area] = (n0 + num, (d0 or 0.0) + (den or 0.0))
    return out


MEASURES: dict[Kind, Callable[[Context, IndicatorSpec], Measure]] = {
    Kind.count: measure_count,
    Kind.density: measure_density,
    Kind.area_coverage: measure_area_coverage,
    Kind.address_coverage: measure_address_coverage,
    Kind.site_coverage: measure_site_coverage,
    Kind.flag_share: measure_flag_share,
    Kind.line_coverage: measure_line_coverage,
    Kind.events: measure_events,
    Kind.online_share: measure_online_share,
    Kind.live_site_coverage: measure_live_site_coverage,
}


def measure(ctx: Context, spec: IndicatorSpec) -> Measure:
    """Numerators and denominators of one indicator."""
    return MEASURES[spec.kind](ctx, spec)
