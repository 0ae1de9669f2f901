"""Vectorised placement of points where they would really be: built-up towns, main roads, centres.

A point set is a mixture of three components, each drawn with numpy and kept only inside the
district (rejection sampling with shapely 2's vectorised ``contains_xy``):

- *area*: uniform inside a town polygon, towns chosen in proportion to ``area × density`` (or
  given weights), so dense towns get more points per km²;
- *road*: along the main roads (position uniform by length, normal offset ``road_sd_m``), roads
  weighted by the density of the towns they cross;
- *centre*: Gaussian clusters (``centre_sd_m``) around town centres and metro stations, weighted
  by town density.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

from pipelines.demo.geo import area_km2, offset
from pipelines.demo.metro import STATIONS
from pipelines.demo.outline import district_outline
from pipelines.demo.roads import road_lines
from pipelines.demo.towns import TOWNS, town_polygons

Accept = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Context:
    """Pre-computed geometry used by the samplers."""

    names: tuple[str, ...]
    polygons: tuple[shapely.Geometry, ...]
    areas_km2: np.ndarray
    density: np.ndarray
    segments: np.ndarray  # (n, 4) lon0, lat0, lon1, lat1 of road segments
    segment_weight: np.ndarray  # length x density at the midpoint
    segment_road: np.ndarray  # road id of each segment
    centres: np.ndarray  # (n, 2)
    centre_weight: np.ndarray


@functools.cache
def context() -> Context:
    """Build (once) the sampling context from the towns, roads and metro stations."""
    polys = town_polygons()
    names = tuple(t.name for t in TOWNS)
    for g in polys.values():
        shapely.prepare(g)
    density = np.array([t.density for t in TOWNS])
    segs, road = [], []
    for rid, (_name, _grade, geom) in road_lines().items():
        for line in geom.geoms:
            c = np.asarray(line.coords)
            segs.append(np.hstack([c[:-1], c[1:]]))
            road += [rid] * (len(c) - 1)
    segments = np.vstack(segs)
    mid_x, mid_y = (segments[:, 0] + segments[:, 2]) / 2, (segments[:, 1] + segments[:, 3]) / 2
    length = np.hypot((segments[:, 2] - segments[:, 0]) * 0.857, segments[:, 3] - segments[:, 1])
    seg_density = density[town_index(mid_x, mid_y, polygons=tuple(polys.values()))]
    stations = np.array([(s[3], s[4]) for s in STATIONS])
    centres = np.vstack([[(t.lon, t.lat) for t in TOWNS], stations])
    station_town = town_index(stations[:, 0], stations[:, 1], polygons=tuple(polys.values()))
    centre_w = np.concatenate([density * 2.0, np.where(station_town >= 0, density[station_town], 0.0)])
    return Context(
        names=names, polygons=tuple(polys.values()), areas_km2=np.array([area_km2(g) for g in polys.values()]),
        density=density, segments=segments, segment_weight=length * seg_density, segment_road=np.array(road),
        centres=centres, centre_weight=centre_w,
    )


def town_index(lon: np.ndarray, lat: np.ndarray, polygons: tuple[shapely.Geometry, ...] | None = None) -> np.ndarray:
    """Index (in TOWNS order) of the town containing each point; -1 outside every town."""
    polygons = context().polygons if polygons is None else polygons
    out = np.full(len(lon), -1, dtype=np.int64)
    for i, poly in enumerate(polygons):
        hit = (out < 0) & shapely.contains_xy(poly, lon, lat)
        out[hit] = i
    return out


def _area_points(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    ctx = context()
    counts = rng.multinomial(n, weights / weights.sum())
    out = []
    for poly, k in zip(ctx.polygons, counts, strict=True):
        minx, miny, maxx, maxy = poly.bounds
        got: list[np.ndarray] = []
        have = 0
        while have < k:
            m = max(16, int((k - have) * 2.5))
            x, y = rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)
            keep = shapely.contains_xy(poly, x, y)
            got.append(np.column_stack([x[keep], y[keep]]))
            have += int(keep.sum())
        out.append(np.vstack(got)[:k] if got else np.empty((0, 2)))
    return np.vstack(out)


def _road_points(rng: np.random.Generator, n: int, sd_m: float) -> np.ndarray:
    ctx = context()
    seg = rng.choice(len(ctx.segments), size=n, p=ctx.segment_weight / ctx.segment_weight.sum())
    t = rng.uniform(0, 1, n)
    s = ctx.segments[seg]
    x, y = s[:, 0] + t * (s[:, 2] - s[:, 0]), s[:, 1] + t * (s[:, 3] - s[:, 1])
    x, y = offset(x, y, rng.normal(0, sd_m, n), rng.normal(0, sd_m, n))
    return np.column_stack([x, y])


def _centre_points(rng: np.random.Generator, n: int, sd_m: float) -> np.ndarray:
    ctx = context()
    c = rng.choice(len(ctx.centres), size=n, p=ctx.centre_weight / ctx.centre_weight.sum())
    x, y = offset(ctx.centres[c, 0], ctx.centres[c, 1], rng.normal(0, sd_m, n), rng.normal(0, sd_m, n))
    return np.column_stack([x, y])


def sample_points(
    rng: np.random.Generator,
    n: int,
    *,
    road_share: float = 0.3,
    centre_share: float = 0.2,
    road_sd_m: float = 25.0,
    centre_sd_m: float = 500.0,
    town_weights: np.ndarray | None = None,
    accept: Accept | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` points inside the district; return (lon, lat, town index).

    ``town_weights`` replaces ``area × density`` for the area component; ``accept(lon, lat)``
    may thin the candidates further (e.g. to leave a service gap).
    """
    ctx = context()
    weights = ctx.areas_km2 * ctx.density if town_weights is None else np.asarray(town_weights, float)
    outline = district_outline()
    got: list[np.ndarray] = []
    have = 0
    while have < n:
        m = int((n - have) * 1.3) + 8
        k_road, k_centre = int(m * road_share), int(m * centre_share)
        pts = np.vstack([
            _road_points(rng, k_road, road_sd_m),
            _centre_points(rng, k_centre, centre_sd_m),
            _area_points(rng, m - k_road - k_centre, weights),
        ])
        pts = pts[rng.permutation(len(pts))]
        keep = shapely.contains_xy(outline, pts[:, 0], pts[:, 1])
        if accept is not None:
            keep &= accept(pts[:, 0], pts[:, 1])
        got.append(pts[keep])
        have += int(keep.sum())
    pts = np.vstack(got)[:n]
    return pts[:, 0], pts[:, 1], town_index(pts[:, 0], pts[:, 1])


def along_roads(
    rng: np.random.Generator, n: int, road_ids: list[str], spacing_jitter_m: float = 10.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place ``n`` points evenly along the given roads (by length); return (lon, lat, road id)."""
    ctx = context()
    sel = np.isin(ctx.segment_road, road_ids)
    segs, roads = ctx.segments[sel], ctx.segment_road[sel]
    length = np.hypot((segs[:, 2] - segs[:, 0]) * 0.857, segs[:, 3] - segs[:, 1])
    cum = np.concatenate([[0], np.cumsum(length)])
    pos = (np.arange(n) + rng.uniform(0.2, 0.8, n)) / max(n, 1) * cum[-1]
    seg = np.clip(np.searchsorted(cum, pos, side="right") - 1, 0, len(segs) - 1)
    t = (pos - cum[seg]) / np.where(length[seg] > 0, length[seg], 1)
    s = segs[seg]
    x, y = s[:, 0] + t * (s[:, 2] - s[:, 0]), s[:, 1] + t * (s[:, 3] - s[:, 1])
    x, y = offset(x, y, rng.normal(0, spacing_jitter_m, n), rng.normal(0, spacing_jitter_m, n))
    inside = shapely.contains_xy(district_outline(), x, y)
    x, y = np.where(inside, x, s[:, 0]), np.where(inside, y, s[:, 1])
    return x, y, roads[seg]
