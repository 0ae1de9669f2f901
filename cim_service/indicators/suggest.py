"""Site suggestions (``suggestions:`` in ``indicators.yaml``): greedy maximal coverage, until the gap closes.

- method ``coverage`` (e.g. ``charging``, ``g5``): demand = the points of the demand layer (e.g. residential
  addresses) outside the coverage, or, without such points, a 100 m grid (each point stands for 0.01 km²)
  over the uncovered district; candidates = that demand snapped to ``candidate_m`` cells; a demand point is
  covered by a candidate within ``radius_m`` or else its own zone's radius (0.9 km inside the S20, 1.5 km
  elsewhere, for charging).
- method ``deficit`` (e.g. ``camera``): not a coverage problem: each cell of a ``hex_deficit`` layer with a
  deficit gets that many devices at its centre, largest deficits first.

Greedy: repeatedly take the candidate covering the most still-uncovered demand (the classic (1-1/e)
approximation of maximal coverage), recording what each adds, until nothing is left or ``max_sites``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from scipy import sparse
from scipy.spatial import cKDTree
from sqlalchemy.engine import Engine

from cim_service.indicators import coverage as cov
from cim_service.indicators.catalog import DerivedSpec, SuggestionSpec
from cim_service.indicators.compute import counted
from cim_service.indicators.context import METRIC_SRID, Context
from cim_service.indicators.gaps import replace_rows
from cim_service.indicators.kinds import number

GRID_M = 100.0


@dataclass
class Suggestion:
    """The ranked sites of one kind and whether they close the gap."""

    kind: str
    radius_m: float | None
    unit: str
    base_value: float
    total: float
    sites: list[dict[str, Any]] = field(default_factory=list)
    closes_gap: bool = True
    method: str = ""


def greedy(cand: np.ndarray, demand: np.ndarray, radius: np.ndarray | float, weight: np.ndarray,
           max_sites: int) -> tuple[list[int], list[float]]:
    """Greedy maximal coverage: candidate indices in pick order and the demand weight each newly covers."""
    if len(demand) == 0 or len(cand) == 0:
        return [], []
    hits = cKDTree(cand).query_ball_point(demand, r=radius)
    rows = np.repeat(np.arange(len(demand)), [len(h) for h in hits])
    cols = np.fromiter((c for h in hits for c in h), dtype=np.int64, count=len(rows))
    d2c = sparse.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(demand), len(cand)))
    c2d = d2c.tocsc()
    gain = np.asarray(d2c.T @ weight, dtype=float).ravel()
    covered = np.zeros(len(demand), dtype=bool)
    picks: list[int] = []
    adds: list[float] = []
    while len(picks) < max_sites:
        best = int(np.argmax(gain))
        if gain[best] <= 1e-9:
            break
        new = c2d.indices[c2d.indptr[best]:c2d.indptr[best + 1]]
        new = new[~covered[new]]
        covered[new] = True
        for j in new:
            gain[d2c.indices[d2c.indptr[j]:d2c.indptr[j + 1]]] -= weight[j]
        picks.append(best)
        adds.append(float(weight[new].sum()))
    return picks, adds


def snap(xy: np.ndarray, step: float, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate points to ``step`` cells: (weighted mean location, total weight, cell index of each point)."""
    weight = np.ones(len(xy)) if weight is None else weight
    cells = np.floor(xy / step).astype(np.int64)
    _, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    w = np.bincount(inverse, weights=weight)
    x = np.bincount(inverse, weights=xy[:, 0] * weight) / w
    y = np.bincount(inverse, weights=xy[:, 1] * weight) / w
    return np.column_stack([x, y]), w, inverse


def to_lonlat(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:4549 metres to WGS84 lon/lat."""
    inv = Transformer.from_crs(METRIC_SRID, 4326, always_xy=True)
    lon, lat = inv.transform(xy[:, 0], xy[:, 1])
    return np.asarray(lon), np.asarray(lat)


def _polygons(ctx: Context, sql: str) -> list[tuple[object, shapely.Geometry]]:
    """(label, shapely geometry) rows of a query returning (label, WKB in 4549)."""
    return [(label, shapely.from_wkb(bytes(wkb))) for label, wkb in ctx.rows(sql) if wkb is not None]


def _radius_at(ctx: Context, zones_table: str | None, xy: np.ndarray, default: float) -> np.ndarray:
    """Service radius at each point: its zone's own radius (when zones have one), else ``default``."""
    radius = np.full(len(xy), default, dtype=float)
    if zones_table is None or not len(xy):
        return radius
    for r, geom in _polygons(ctx, f"SELECT radius_m, ST_AsBinary(geom) FROM {zones_table}"):
        if r is not None:
            shapely.prepare(geom)
            radius[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])] = float(r)
    return radius


def _grid(ctx: Context, step: float, cov_table: str, zones_table: str | None, default: float) -> np.ndarray:
    """Rows (x, y, radius, covered) of the ``step`` grid centres inside the district (4549), in numpy/shapely."""
    outline = _polygons(ctx, "SELECT 1, ST_AsBinary(geom) FROM _ind_district WHERE geom IS NOT NULL")
    if not outline:
        return np.empty((0, 4))
    district = outline[0][1]
    shapely.prepare(district)
    minx, miny, maxx, maxy = district.bounds
    xs = np.arange(np.floor(minx / step) * step + step / 2, maxx, step)
    ys = np.arange(np.floor(miny / step) * step + step / 2, maxy, step)
    gx, gy = np.meshgrid(xs, ys)
    xy = np.column_stack([gx.ravel(), gy.ravel()])
    xy = xy[shapely.contains_xy(district, xy[:, 0], xy[:, 1])]
    pieces = [g for _, g in _polygons(ctx, f"SELECT 1, ST_AsBinary(geom) FROM {cov_table}")]
    covered = np.zeros(len(xy), dtype=bool)
    if pieces:
        hit = shapely.STRtree(pieces).query(shapely.points(xy), predicate="intersects")[0]
        covered[np.unique(hit)] = True
    return np.column_stack([xy, _radius_at(ctx, zones_table, xy, default), covered])


def _demand_points(ctx: Context, kind: SuggestionSpec, cov_table: str, zones_table: str | None,
                   default: float) -> np.ndarray:
    """Rows (x, y, radius, covered) of the demand layer's (filtered) points inside the district (4549)."""
    layer = kind.demand.layer
    covered = cov.covered_points(ctx, cov_table, layer)
    cond, params = ctx.where(layer, kind.demand)
    arr = ctx.array(
        f"""
        SELECT ST_X(s.geom), ST_Y(s.geom), c.id IS NOT NULL
          FROM {ctx.table(layer)} s LEFT JOIN {covered} c ON c.id = s.id
         WHERE {cond} AND NOT s.outside_district
        """, 3, **params,
    )
    if not len(arr):
        return np.empty((0, 4))
    x, y = Transformer.from_crs(4326, METRIC_SRID, always_xy=True).transform(arr[:, 0], arr[:, 1])
    xy = np.column_stack([x, y])
    return np.column_stack([xy, _radius_at(ctx, zones_table, xy, default), arr[:, 2]])


def _coverage_sites(kind: str, pts: np.ndarray, cell_w: float, cand_step: float, unit: str,
                    max_sites: int) -> Suggestion:
    """Greedy over ``pts`` rows (x, y, radius, covered), each weighing ``cell_w``; candidates snapped."""
    total = len(pts) * cell_w
    base = float(pts[:, 3].sum()) * cell_w if len(pts) else 0.0
    todo = pts[pts[:, 3] == 0] if len(pts) else pts
    demand, weight, inverse = snap(todo[:, :2], GRID_M) if len(todo) else (np.empty((0, 2)), np.empty(0), None)
    radius = (np.bincount(inverse, weights=todo[:, 2]) / np.bincount(inverse)) if len(todo) else np.empty(0)
    cand = snap(demand, cand_step, weight)[0] if len(demand) else np.empty((0, 2))
    picks, adds = greedy(cand, demand, radius, weight * cell_w, max_sites)
    sug = Suggestion(kind, float(np.nanmax(pts[:, 2])) if len(pts) else None, unit, base, total,
                     closes_gap=bool(np.isclose(base + sum(adds), total)) if total else True)
    if picks:
        lon, lat = to_lonlat(cand[picks])
        cum = base
        for rank, (i, add) in enumerate(zip(picks, adds, strict=True), start=1):
            cum += add
            near = np.hypot(*(demand - cand[i]).T).argmin()
            sug.sites.append({"kind": kind, "rank": rank, "lon": float(lon[rank - 1]), "lat": float(lat[rank - 1]),
                              "radius_m": float(radius[near]), "added": round(add, 4), "added_unit": unit,
                              "cumulative_value": round(100 * cum / total, 4), "devices": 1})
    return sug


def suggest_coverage(ctx: Context, kind: SuggestionSpec, max_sites: int) -> Suggestion:
    """Sites that close a coverage gap: of the demand layer's points, or (without any) of the area."""
    table = cov.coverage(ctx, kind.coverage)
    fixed = None if kind.radius_m is None else number(kind.radius_m, ctx.settings)
    zones = cov.zones(ctx, kind.coverage) if fixed is None else None
    default = fixed if fixed is not None else number(ctx.indicators.coverage(kind.coverage).radius_m, ctx.settings)
    pts = _demand_points(ctx, kind, table, zones, default) if kind.demand else np.empty((0, 4))
    if len(pts):
        sug = _coverage_sites(kind.id, pts, 1.0, kind.candidate_m, kind.demand.unit, max_sites)
        sug.method = kind.describe or ""
    else:
        grid = _grid(ctx, GRID_M, table, zones, default)
        sug = _coverage_sites(kind.id, grid, 0.01, kind.candidate_m, "km²", max_sites)
        sug.method = kind.describe_grid or ""
    if fixed is not None:
        sug.radius_m = fixed
    return sug


def suggest_deficit(ctx: Context, kind: SuggestionSpec) -> Suggestion:
    """Devices per cell with a deficit (read from the hex layer, written earlier in the run)."""
    hexes = ctx.indicators.get_derived(kind.hexes)
    ind = ctx.indicators.density_indicator(hexes.p.indicator)
    rows = ctx.rows(
        f"SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)), deficit FROM {ctx.table(hexes.id)} "
        f"WHERE deficit > 0 ORDER BY deficit DESC, h3_index"
    )
    area = ctx.district_area_km2 or 0.0
    cond, params = counted(ctx, ind)
    base = float(ctx.scalar(f"SELECT count(*) FROM {ctx.table(ind.p.layer)} s WHERE NOT s.outside_district "
                            f"AND {cond}", **params) or 0)
    sug = Suggestion(kind.id, None, ind.noun, base, ind.target * area, method=kind.describe or "")
    cum = base
    for rank, (lon, lat, deficit) in enumerate(rows, start=1):
        cum += deficit
        sug.sites.append({"kind": kind.id, "rank": rank, "lon": lon, "lat": lat, "radius_m": None,
                          "added": float(deficit), "added_unit": ind.noun,
                          "cumulative_value": round(cum / area, 4) if area else None, "devices": int(deficit)})
    return sug


def write_suggestions(ctx: Context, out: DerivedSpec) -> dict[str, Any]:
    """Compute every suggestion kind, replace the suggestions layer ``out`` and return a summary per kind.

    A kind with ``requires_any`` is left out when all those layers are empty.
    """
    empty = ctx.empty_layers
    sugs = []
    for kind in ctx.indicators.suggestions:
        if kind.requires_any and all(layer in empty for layer in kind.requires_any):
            continue
        sugs.append(suggest_coverage(ctx, kind, out.p.max_sites) if kind.method == "coverage"
                    else suggest_deficit(ctx, kind))
    sites = [s for sug in sugs for s in sug.sites]
    keys = [f"{s['kind']}:{s['rank']}" for s in sites]
    replace_rows(
        ctx, out.id,
        """
        INSERT INTO {table} (feature_key, site_key, kind, rank, radius_m, added, added_unit, cumulative_value,
                             devices, geom)
        SELECT k, k, kind, rank, radius, added, unit, cum, devices, ST_SetSRID(ST_MakePoint(lon, lat), 4326)
          FROM unnest(CAST(:k AS text[]), CAST(:kind AS text[]), CAST(:rank AS int[]), CAST(:radius AS float8[]),
                      CAST(:added AS float8[]), CAST(:unit AS text[]), CAST(:cum AS float8[]),
                      CAST(:devices AS int[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]))
               AS u(k, kind, rank, radius, added, unit, cum, devices, lon, lat)
        """,
        k=keys, kind=[s["kind"] for s in sites], rank=[s["rank"] for s in sites],
        radius=[s["radius_m"] for s in sites], added=[s["added"] for s in sites],
        unit=[s["added_unit"] for s in sites], cum=[s["cumulative_value"] for s in sites],
        devices=[s["devices"] for s in sites], lon=[s["lon"] for s in sites], lat=[s["lat"] for s in sites],
    )
    ctx.execute(
        f"UPDATE {ctx.table(out.id)} s SET town = (SELECT t.name FROM _ind_town_sub t "
        f"WHERE ST_Intersects(t.geom, s.geom) LIMIT 1)"
    )
    return {s.kind: {"sites": len(s.sites), "devices": sum(x["devices"] for x in s.sites),
                     "closes_gap": s.closes_gap, "unit": s.unit, "base": round(s.base_value, 4),
                     "total": round(s.total, 4), "radius_m": s.radius_m, "method": s.method} for s in sugs}


def read_suggestions(engine: Engine, table: str, kind: str, n: int) -> list[dict[str, Any]]:
    """The ``n`` best stored sites of ``kind``: rank, town, lon, lat, radius, added (and unit), cumulative, devices.

    The one reader of the suggestions layer (``table``: its qualified name), for the API and the CLI alike.
    """
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT rank, town, ST_X(geom) AS lon, ST_Y(geom) AS lat, radius_m, added, added_unit, "
            f"cumulative_value, devices FROM {table} WHERE kind = :k ORDER BY rank LIMIT :n"), {"k": kind, "n": n})
        return [dict(r) for r in rows.mappings()]
