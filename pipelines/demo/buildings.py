"""The buildings (白模, white models) of the demo: one footprint per building address, as tall as its town.

Each building (号/幢) address gets a footprint around its point: residential slabs and towers rotated with
their compound (the rows that :mod:`pipelines.demo.addresses` lays out), shops and offices, and industrial
sheds, sized and storeyed by the town's urban form (:mod:`pipelines.demo.urbanform`). Footprints that would
overlap a neighbour are shrunk (three rounds, then to a small core; two at one point keep one), and a building
standing in the water or a park is left out (its address keeps no building). Heights are storeys × the storey
height of the use plus a parapet. Everything is drawn from the seed, so the same scale and seed give the same city.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from pipelines.demo.addresses import building_addresses, compound_angle
from pipelines.demo.common import pick
from pipelines.demo.geo import M_PER_DEG_LAT, M_PER_DEG_LON, rng_for
from pipelines.demo.urbanform import FORMS, STOREY_M, TOWN_FORM

_LANE = re.compile(r"(\d+)弄")
#: rounds of shrinking overlapping footprints, and the factor of each round
SHRINK_ROUNDS, SHRINK = 3, 0.75


def _angles(b: gpd.GeoDataFrame, rng: np.random.Generator) -> np.ndarray:
    """Compound rotation for buildings of a 弄, a small random one for street fronts."""
    angle = rng.uniform(-0.25, 0.25, len(b))
    lanes = b["lane"].fillna("").astype(str).str.extract(_LANE, expand=False)
    has = lanes.notna().to_numpy()
    town, road = b["town"].to_numpy(), b["road"].fillna("").to_numpy()
    for k in np.flatnonzero(has):
        angle[k] = compound_angle(town[k], road[k], int(lanes.iloc[k]))
    return angle


def _sizes(rng: np.random.Generator, forms: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, ...]:
    """Storeys, length and depth (metres) of each building from its form and use."""
    n = len(use)
    floors = np.ones(n, dtype=np.int64)
    length, depth = np.zeros(n), np.zeros(n)
    res = np.isin(use, ["residential", "mixed"])
    industrial = use == "industrial"
    for name, form in FORMS.items():
        m = forms == name
        r, o, i = m & res, m & ~res & ~industrial, m & industrial
        p = np.asarray(form.res_weights) / sum(form.res_weights)
        floors[r] = rng.choice(form.res_floors, size=r.sum(), p=p)
        length[r] = rng.uniform(*form.res_length_m, r.sum())
        depth[r] = rng.uniform(*form.res_depth_m, r.sum())
        floors[o] = rng.integers(form.other_floors[0], form.other_floors[1] + 1, o.sum())
        length[o] = rng.uniform(22.0, 55.0, o.sum())
        depth[o] = rng.uniform(16.0, 36.0, o.sum())
        floors[i] = rng.integers(1, 5, i.sum())
        length[i] = rng.uniform(45.0, 110.0, i.sum())
        depth[i] = rng.uniform(24.0, 55.0, i.sum())
    tower = res & (floors >= 24)  # towers are squarer than slabs
    length[tower] = np.minimum(length[tower], rng.uniform(30.0, 42.0, tower.sum()))
    depth[tower] = np.maximum(depth[tower], rng.uniform(16.0, 22.0, tower.sum()))
    return floors, length, depth


def footprints(lon: np.ndarray, lat: np.ndarray, length: np.ndarray, depth: np.ndarray,
               angle: np.ndarray) -> np.ndarray:
    """Rotated rectangles (WGS84) of ``length`` × ``depth`` metres centred on the points."""
    ux = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    uy = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    x = ux[None, :] * length[:, None]
    y = uy[None, :] * depth[:, None]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    dx, dy = x * c - y * s, x * s + y * c
    coords = np.stack([lon[:, None] + dx / M_PER_DEG_LON, lat[:, None] + dy / M_PER_DEG_LAT], axis=-1)
    return shapely.polygons(coords)


def _resolve_overlaps(lon, lat, length, depth, angle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shrink footprints that overlap another until none do (the last resort: an 8 m core)."""
    polys = footprints(lon, lat, length, depth, angle)
    for round_ in range(SHRINK_ROUNDS + 1):
        tree = shapely.STRtree(polys)
        i, j = tree.query(polys, predicate="intersects")
        hit = np.unique(np.concatenate([i[i != j], j[i != j]]))
        if not len(hit):
            break
        factor = SHRINK if round_ < SHRINK_ROUNDS else None
        if factor is None:
            length[hit] = np.minimum(length[hit], 8.0)
            depth[hit] = np.minimum(depth[hit], 8.0)
        else:
            length[hit] *= factor
            depth[hit] *= factor
        polys[hit] = footprints(lon[hit], lat[hit], length[hit], depth[hit], angle[hit])
    return polys, length, depth


def _still_overlapping(polys: np.ndarray) -> np.ndarray:
    """The later building of every pair that still overlaps (two addresses at one point)."""
    i, j = shapely.STRtree(polys).query(polys, predicate="intersects")
    later = np.zeros(len(polys), dtype=bool)
    later[np.maximum(i, j)[i != j]] = True
    return later


def buildings(addresses: gpd.GeoDataFrame, seed: int, keep_out: shapely.Geometry | None = None) -> gpd.GeoDataFrame:
    """Return the ``buildings`` layer: a footprint per building address, except where ``keep_out`` (water, parks)."""
    rng = rng_for(seed, "buildings")
    b = building_addresses(addresses)
    n = len(b)
    town = b["town"].to_numpy()
    res = b["residential"].to_numpy(dtype=bool)
    use = np.where(res, pick(rng, ["residential", "mixed"], [0.93, 0.07], n),
                   pick(rng, ["commercial", "industrial", "public", "mixed"], [0.45, 0.3, 0.15, 0.1], n))
    forms = np.array([TOWN_FORM.get(t, "midrise") for t in town], dtype=object)
    floors, length, depth = _sizes(rng, forms, use)
    angle = _angles(b, rng)
    lon, lat = b.geometry.x.to_numpy(), b.geometry.y.to_numpy()
    polys, length, depth = _resolve_overlaps(lon, lat, length, depth, angle)
    storey = np.array([STOREY_M[u] for u in use])
    height = np.round(floors * storey + rng.uniform(0.3, 1.8, n), 1)
    keep = ~_still_overlapping(polys)
    if keep_out is not None:
        shapely.prepare(keep_out)
        keep &= ~shapely.intersects(keep_out, polys)
    frame = pd.DataFrame({
        "building_id": [f"MHJZ{i + 1:07d}" for i in range(n)],
        "address_code": b["address_code"].to_numpy(),
        "name": [f"{p}{bld if isinstance(bld, str) else num}" if isinstance(p, str) else None
                 for p, num, bld in zip(b["poi"], b["number"], b["building"], strict=True)],
        "use": use,
        "floors": floors,
        "height_m": height,
        "town": town,
        "footprint_m2": np.round(length * depth, 1),
    })
    out = gpd.GeoDataFrame(frame, geometry=shapely.multipolygons(polys, indices=np.arange(n)), crs=4326)
    return out[keep].reset_index(drop=True)


def link_addresses(addresses: gpd.GeoDataFrame, bldgs: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Add ``building_id`` to every address: its building's, rooms through the point they share with it."""
    by_code = dict(zip(bldgs["address_code"], bldgs["building_id"], strict=True))
    b = building_addresses(addresses)
    at = pd.DataFrame({"x": b.geometry.x.to_numpy(), "y": b.geometry.y.to_numpy(),
                       "building_id": b["address_code"].map(by_code).to_numpy()}).dropna()
    point_building = at.drop_duplicates(["x", "y"]).set_index(["x", "y"])["building_id"]
    keys = pd.MultiIndex.from_arrays([addresses.geometry.x.to_numpy(), addresses.geometry.y.to_numpy()])
    ids = point_building.reindex(keys).to_numpy()
    own = addresses["address_code"].map(by_code).to_numpy()
    return addresses.assign(building_id=np.where(pd.notna(own), own, ids))
