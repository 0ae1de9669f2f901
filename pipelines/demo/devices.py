"""Device layers: cameras, base stations, IoT nodes, charging stations, smart poles and lockers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from pipelines.demo.common import pick, points_frame, random_dates
from pipelines.demo.geo import rng_for
from pipelines.demo.roads import road_lines
from pipelines.demo.sampling import along_roads, context, sample_points
from pipelines.demo.scales import Scale

CAMERA_TYPES = ["bullet", "dome", "ptz", "checkpoint", "panoramic"]
_FOV = {"bullet": (60, 90), "dome": (80, 110), "ptz": (40, 65), "checkpoint": (25, 45), "panoramic": (180, 360)}
OPERATORS_5G = ["China Mobile", "China Telecom", "China Unicom", "China Broadnet"]
CHARGING_OPERATORS = ["特来电", "星星充电", "国家电网", "上汽安悦", "蔚来", "特斯拉"]
LOCKER_OPERATORS = ["丰巢", "中国邮政", "速递易", "京东", "菜鸟驿站"]
#: roads already equipped with smart poles (the others are the indicator's gap)
POLE_ROADS = ["CBR", "QXR", "HMR", "HMEI", "WZR", "GDR", "CSR", "LHNR"]
POLE_FUNCTIONS = ["照明", "视频监控", "5G微站", "环境监测", "交通信号", "公共广播", "信息发布"]


def cameras(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``cameras`` layer: GB/T 28181 ids, clustered on roads and centres."""
    rng = rng_for(seed, "cameras")
    n = scale.cameras
    lon, lat, town = sample_points(rng, n, road_share=0.45, centre_share=0.25, road_sd_m=15.0)
    kind = pick(rng, CAMERA_TYPES, [0.45, 0.28, 0.1, 0.1, 0.07], n)
    lo = np.array([_FOV[k][0] for k in kind])
    hi = np.array([_FOV[k][1] for k in kind])
    device_type = np.where(rng.random(n) < 0.85, "132", "131")  # IP camera / camera
    ids = [f"310112{t + 1:02d}00{d}1{i + 1:06d}" for i, (t, d) in enumerate(zip(town, device_type, strict=True))]
    town_names = np.asarray(context().names, dtype=object)[town]
    owner = np.where(rng.random(n) < 0.6, "闵行公安分局", np.char.add(town_names.astype(str), "综治中心"))
    return points_frame({
        "device_id": ids,
        "camera_type": kind,
        "direction_deg": np.round(rng.uniform(0, 360, n), 1),
        "fov_deg": np.round(rng.uniform(lo, hi), 1),
        "installed_at": random_dates(rng, n, "2012-01-01", scale.until),
        "owner": owner.astype(object),
    }, lon, lat)


def base_stations(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``base_stations`` layer: 5G then 4G stations (macro and small cells)."""
    parts = []
    for tech, n, start, end in (("5G", scale.base_5g, "2019-06-06", scale.until),
                                ("4G", scale.base_4g, "2013-12-18", "2019-12-31")):
        rng = rng_for(seed, f"base_stations:{tech}")
        lon, lat, _ = sample_points(rng, n, road_share=0.2, centre_share=0.35 if tech == "5G" else 0.2)
        small_share = 0.45 if tech == "5G" else 0.25
        parts.append(points_frame({
            "station_id": [f"MH{tech}{i + 1:05d}" for i in range(n)],
            "technology": tech,
            "operator": pick(rng, OPERATORS_5G, [0.45, 0.27, 0.25, 0.03], n),
            "cell_type": np.where(rng.random(n) < small_share, "small", "macro").astype(object),
            "built_at": random_dates(rng, n, start, end),
        }, lon, lat))
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326)


def iot_nodes(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``iot_nodes`` layer (城市神经元)."""
    rng = rng_for(seed, "iot_nodes")
    n = scale.iot_nodes
    lon, lat, _ = sample_points(rng, n, road_share=0.25, centre_share=0.3)
    kinds = ["environment", "building", "road", "water", "power", "gas", "fire", "other"]
    return points_frame({
        "node_id": [f"MHIOT{i + 1:06d}" for i in range(n)],
        "sensor_kind": pick(rng, kinds, [0.2, 0.18, 0.14, 0.1, 0.12, 0.08, 0.13, 0.05], n),
        "installed_at": random_dates(rng, n, "2019-01-01", scale.until),
    }, lon, lat)


def charging_stations(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``charging_stations`` layer, with real gaps in the rural south."""
    rng = rng_for(seed, "charging_stations")
    n = scale.charging_stations
    thin = rng_for(seed, "charging_stations:thin")

    def accept(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Keep a fifth of the candidates south of 31.05 N (浦江 south, 马桥, 吴泾)."""
        return (y > 31.05) | (thin.random(len(y)) < 0.2)

    lon, lat, town = sample_points(rng, n, road_share=0.35, centre_share=0.35, accept=accept)
    op = pick(rng, CHARGING_OPERATORS, [0.3, 0.25, 0.2, 0.12, 0.07, 0.06], n)
    names = np.asarray(context().names, dtype=object)[town]
    return points_frame({
        "station_id": [f"MHCD{i + 1:05d}" for i in range(n)],
        "name": [f"{o}{t}{i + 1}号充电站" for i, (o, t) in enumerate(zip(op, names, strict=True))],
        "operator": op,
        "connectors": rng.integers(2, 41, n).astype(np.int64),
        "fast": rng.random(n) < 0.6,
    }, lon, lat)


def smart_poles(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``smart_poles`` layer: evenly spaced along the equipped roads only."""
    rng = rng_for(seed, "smart_poles")
    n = scale.smart_poles
    lon, lat, road = along_roads(rng, n, POLE_ROADS)
    names = np.array([road_lines()[r][0] for r in road], dtype=object)
    k = rng.integers(2, 5, n)
    funcs = [",".join(sorted(rng.choice(POLE_FUNCTIONS, size=j, replace=False), key=POLE_FUNCTIONS.index))
             for j in k]
    return points_frame({
        "pole_id": [f"MHGZ{i + 1:05d}" for i in range(n)],
        "road_name": names,
        "functions": funcs,
    }, lon, lat)


def smart_lockers(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``smart_lockers`` layer, near homes and centres."""
    rng = rng_for(seed, "smart_lockers")
    n = scale.smart_lockers
    lon, lat, _ = sample_points(rng, n, road_share=0.1, centre_share=0.4, centre_sd_m=700.0)
    return points_frame({
        "locker_id": [f"MHZG{i + 1:05d}" for i in range(n)],
        "operator": pick(rng, LOCKER_OPERATORS, [0.5, 0.2, 0.12, 0.1, 0.08], n),
        "installed_at": random_dates(rng, n, "2015-06-01", scale.until),
    }, lon, lat)
