"""The buildings (白模, white models) of the demo: one footprint per building address, as its group's kind.

Each building (号/幢) address gets a footprint around its point. The addresses come in groups packed side by
side into the land (:mod:`pipelines.demo.addresses`, :mod:`pipelines.demo.blocks`): residential compounds of
walk-ups, slabs, towers or village houses, rows of shops, offices and industrial sheds, each group of one kind
of the town's urban form (:mod:`pipelines.demo.urbanform`), which gives its buildings' uses, storeys and
footprints and the compound's rotation. Footprints that would overlap a neighbour are shrunk (three rounds,
then to a small core; two at one point keep one), and a building standing in the water or a park is left out
(its address keeps no building). Heights are storeys × the storey height of the use plus a parapet. Everything
is drawn from the seed, so the same scale and seed give the same city.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from pipelines.demo.addresses import building_addresses, compound_angle, street_angle
from pipelines.demo.common import pick
from pipelines.demo.geo import M_PER_DEG_LAT, M_PER_DEG_LON, rng_for
from pipelines.demo.urbanform import KINDS, STOREY_M, Kind, compound_kind, street_kind

#: rounds of shrinking overlapping footprints, and the factor of each round
SHRINK_ROUNDS, SHRINK = 3, 0.75


def _lanes_and_numbers(b: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The 弄 (-1 for a street front) and the door number of each building address."""
    lane = pd.to_numeric(b["lane"], errors="coerce").fillna(-1).astype(int).to_numpy()
    number = pd.to_numeric(b["number"], errors="coerce").fillna(1).astype(int).to_numpy()
    return lane, number


def _kinds(b: gpd.GeoDataFrame) -> list[Kind]:
    """The kind of each building's group: its compound's (a 弄) or its street-front block's."""
    town, road = b["town"].to_numpy(), b["road"].fillna("").to_numpy()
    lane, number = _lanes_and_numbers(b)
    return [compound_kind(t, r, int(ln)) if ln >= 0 else street_kind(t, r, int(n))
            for t, r, ln, n in zip(town, road, lane, number, strict=True)]


def _angles(b: gpd.GeoDataFrame) -> np.ndarray:
    """The rotation of each building's group (compounds face south, street fronts follow their block)."""
    town, road = b["town"].to_numpy(), b["road"].fillna("").to_numpy()
    lane, number = _lanes_and_numbers(b)
    return np.array([compound_angle(t, r, int(ln)) if ln >= 0 else street_angle(t, r, int(n))
                     for t, r, ln, n in zip(town, road, lane, number, strict=True)])


def _sizes(rng: np.random.Generator, kinds: list[Kind], residential: np.ndarray) -> tuple[np.ndarray, ...]:
    """Use, storeys, length and depth (metres) of each building from its group's kind."""
    n = len(kinds)
    use = np.empty(n, dtype=object)
    floors = np.ones(n, dtype=np.int64)
    length, depth = np.zeros(n), np.zeros(n)
    name = np.array([k.name for k in kinds], dtype=object)
    for kind in KINDS.values():
        m = name == kind.name
        uses = [u for u, _w in kind.uses]
        use[m] = pick(rng, uses, [w for _u, w in kind.uses], int(m.sum()))
        floors[m] = rng.integers(kind.floors[0], kind.floors[1] + 1, m.sum())
        length[m] = rng.uniform(*kind.length_m, m.sum())
        depth[m] = rng.uniform(*kind.depth_m, m.sum())
    # an address's residential flag wins over its kind (a home is residential or mixed, never a shed)
    home = np.isin(use, ["residential", "mixed"])
    use[residential & ~home] = "mixed"
    use[~residential & (use == "residential")] = "mixed"
    return use, floors, length, depth


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
    use, floors, length, depth = _sizes(rng, _kinds(b), res)
    angle = _angles(b)
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
