"""Sites of the waterlogging plan: bus stops, underground spaces, and the sensors placed at some of them."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from pipelines.demo.addresses import TOWN_ROADS
from pipelines.demo.common import pick, points_frame, random_dates, weighted_subset
from pipelines.demo.geo import offset, rng_for
from pipelines.demo.outline import district_outline
from pipelines.demo.roads import road_lines
from pipelines.demo.sampling import context, sample_points, town_index
from pipelines.demo.scales import Scale

SITE_KINDS = ("地铁出入口", "公交站点", "地下空间", "小区道路")
#: share of the sensors at each kind of site
SITE_SHARES = (0.25, 0.3, 0.2, 0.25)


def _cross_name(rng: np.random.Generator, town: str, road: str) -> str:
    roads = [r for r in TOWN_ROADS[town] if r != road]
    return roads[rng.integers(0, len(roads))]


def bus_stops(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``bus_stops`` layer: most on main roads, the rest on local roads; some with e-signs."""
    rng = rng_for(seed, "bus_stops")
    n = scale.bus_stops
    lon, lat, town = sample_points(rng, n, road_share=0.65, centre_share=0.1, road_sd_m=12.0)
    names = np.asarray(context().names, dtype=object)[town]
    road_names = [v[0] for v in road_lines().values() if v[1] != "expressway"]
    stop_names = []
    for t in names:
        road = road_names[rng.integers(0, len(road_names))] if rng.random() < 0.5 else \
            TOWN_ROADS[t][rng.integers(0, len(TOWN_ROADS[t]))]
        stop_names.append(f"{road}{_cross_name(rng, t, road)}")
    dense = context().density[town]
    esign = np.zeros(n, dtype=bool)
    esign[weighted_subset(rng, dense, scale.bus_esign)] = True
    return points_frame({
        "stop_id": [f"MHGJ{i + 1:05d}" for i in range(n)],
        "name": stop_names,
        "has_esign": esign,
    }, lon, lat)


def underground_spaces(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``underground_spaces`` layer: garages, malls, passages and civil-defence works near centres."""
    rng = rng_for(seed, "underground_spaces")
    n = scale.underground_spaces
    lon, lat, town = sample_points(rng, n, road_share=0.1, centre_share=0.6, centre_sd_m=350.0)
    kind = pick(rng, ["garage", "mall", "passage", "civil_defence", "other"], [0.5, 0.15, 0.1, 0.2, 0.05], n)
    names = np.asarray(context().names, dtype=object)[town]
    label = {"garage": "地下车库", "mall": "地下商场", "passage": "地下通道", "civil_defence": "人防工程",
             "other": "地下空间"}
    return points_frame({
        "space_id": [f"MHDX{i + 1:04d}" for i in range(n)],
        "name": [f"{t}{label[k]}{i + 1}号" for i, (t, k) in enumerate(zip(names, kind, strict=True))],
        "space_kind": kind,
    }, lon, lat)


def waterlogging_sensors(
    scale: Scale, seed: int, sites: dict[str, gpd.GeoDataFrame]
) -> gpd.GeoDataFrame:
    """Return the ``waterlogging_sensors`` layer: at some of the sites of each kind (the rest are gaps).

    ``sites`` maps each site kind to its candidate points (metro entrances, bus stops, underground
    spaces, residential addresses); sites in dense towns are preferred.
    """
    rng = rng_for(seed, "waterlogging_sensors")
    counts = np.floor(np.array(SITE_SHARES) * scale.waterlogging).astype(int)
    counts[-1] += scale.waterlogging - counts.sum()
    for i, kind in enumerate(SITE_KINDS[:-1]):  # fewer sites than sensors: the rest go to residential roads
        spare = max(0, counts[i] - len(sites[kind]))
        counts[i] -= spare
        counts[-1] += spare
    parts = []
    for kind, k in zip(SITE_KINDS, counts, strict=True):
        cand = sites[kind]
        x, y = cand.geometry.x.to_numpy(), cand.geometry.y.to_numpy()
        chosen = weighted_subset(rng, context().density[town_index(x, y)] + 0.05, int(k))
        dist, ang = rng.uniform(3, 15, len(chosen)), rng.uniform(0, 2 * np.pi, len(chosen))
        lon, lat = offset(x[chosen], y[chosen], dist * np.cos(ang), dist * np.sin(ang))
        inside = shapely.contains_xy(district_outline(), lon, lat)
        lon, lat = np.where(inside, lon, x[chosen]), np.where(inside, lat, y[chosen])
        parts.append(pd.DataFrame({"site_kind": kind, "lon": lon, "lat": lat}))
    frame = pd.concat(parts, ignore_index=True)
    n = len(frame)
    return points_frame({
        "sensor_id": [f"MHJS{i + 1:04d}" for i in range(n)],
        "site_kind": frame["site_kind"].to_numpy(dtype=object),
        "installed_at": random_dates(rng, n, "2018-04-01", scale.until),
    }, frame["lon"].to_numpy(), frame["lat"].to_numpy())
