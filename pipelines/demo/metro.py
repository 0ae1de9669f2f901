"""Metro stations of Minhang (real names, approximate WGS84 positions) and their entrances."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from pipelines.demo.geo import offset, rng_for
from pipelines.demo.outline import district_outline

#: (name, English name, lines, lon, lat)
STATIONS: tuple[tuple[str, str, str, float, float], ...] = (
    ("莘庄", "Xinzhuang", "1号线,5号线", 121.3855, 31.1110),
    ("外环路", "Waihuan Road", "1号线", 121.3935, 31.1205),
    ("莲花路", "Lianhua Road", "1号线", 121.4030, 31.1310),
    ("春申路", "Chunshen Road", "5号线", 121.3975, 31.0990),
    ("银都路", "Yindu Road", "5号线", 121.4040, 31.0865),
    ("颛桥", "Zhuanqiao", "5号线", 121.4060, 31.0680),
    ("北桥", "Beiqiao", "5号线", 121.4095, 31.0480),
    ("剑川路", "Jianchuan Road", "5号线", 121.4170, 31.0300),
    ("东川路", "Dongchuan Road", "5号线", 121.4240, 31.0225),
    ("金平路", "Jinping Road", "5号线", 121.4140, 31.0155),
    ("华宁路", "Huaning Road", "5号线", 121.4005, 31.0135),
    ("文井路", "Wenjing Road", "5号线", 121.3870, 31.0130),
    ("闵行开发区", "Minhang Development Zone", "5号线", 121.3760, 31.0165),
    ("江川路", "Jiangchuan Road", "5号线", 121.4300, 31.0110),
    ("中春路", "Zhongchun Road", "9号线", 121.3390, 31.1530),
    ("七宝", "Qibao", "9号线", 121.3520, 31.1570),
    ("星中路", "Xingzhong Road", "9号线", 121.3670, 31.1620),
    ("合川路", "Hechuan Road", "9号线", 121.3860, 31.1680),
    ("虹桥火车站", "Hongqiao Railway Station", "2号线,10号线,17号线", 121.3200, 31.1945),
    ("虹桥2号航站楼", "Hongqiao Airport Terminal 2", "2号线,10号线", 121.3275, 31.1960),
    ("航中路", "Hangzhong Road", "10号线", 121.3400, 31.1810),
    ("紫藤路", "Ziteng Road", "10号线", 121.3530, 31.1820),
    ("龙柏新村", "Longbai Xincun", "10号线", 121.3650, 31.1800),
    ("七莘路", "Qixin Road", "12号线", 121.3560, 31.1360),
    ("虹莘路", "Hongxin Road", "12号线", 121.3700, 31.1330),
    ("顾戴路", "Gudai Road", "12号线", 121.3870, 31.1380),
    ("东兰路", "Donglan Road", "12号线", 121.4040, 31.1450),
    ("紫竹高新区", "Zizhu Hi-tech Park", "15号线", 121.4530, 31.0210),
    ("永德路", "Yongde Road", "15号线", 121.4370, 31.0470),
    ("元江路", "Yuanjiang Road", "15号线", 121.4330, 31.0640),
    ("双柏路", "Shuangbai Road", "15号线", 121.4280, 31.0800),
    ("曙建路", "Shujian Road", "15号线", 121.4240, 31.0940),
    ("景洪路", "Jinghong Road", "15号线", 121.4190, 31.1080),
    ("朱梅路", "Zhumei Road", "15号线", 121.4140, 31.1210),
    ("联航路", "Lianhang Road", "8号线", 121.5160, 31.1050),
    ("江月路", "Jiangyue Road", "8号线", 121.5120, 31.0930),
    ("浦江镇", "Pujiang Town", "8号线", 121.5070, 31.0790),
    ("芦恒路", "Luheng Road", "8号线", 121.5030, 31.0620),
    ("沈杜公路", "Shendu Highway", "8号线,浦江线", 121.5000, 31.0470),
    ("三鲁公路", "Sanlu Highway", "浦江线", 121.5120, 31.0360),
    ("闵瑞路", "Minrui Road", "浦江线", 121.5200, 31.0300),
    ("浦航路", "Puhang Road", "浦江线", 121.5310, 31.0270),
    ("东城一路", "Dongcheng 1st Road", "浦江线", 121.5400, 31.0220),
    ("汇臻路", "Huizhen Road", "浦江线", 121.5480, 31.0180),
)


def stations_frame() -> gpd.GeoDataFrame:
    """Return the ``metro_stations`` layer (stations outside the shipped outline are left out)."""
    names, en, lines, lon, lat = zip(*STATIONS, strict=True)
    gdf = gpd.GeoDataFrame(
        {
            "name": list(names),
            "name_en": list(en),
            "lines": list(lines),
            "station_code": [f"MH{i + 1:03d}" for i in range(len(names))],
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs=4326,
    )
    inside = shapely.contains_xy(district_outline(), np.asarray(lon), np.asarray(lat))
    return gdf[inside].reset_index(drop=True)


def entrances_frame(stations: gpd.GeoDataFrame, seed: int) -> gpd.GeoDataFrame:
    """Return the ``metro_entrances`` layer: 2-4 entrances 60-180 m around each station."""
    rng = rng_for(seed, "metro_entrances")
    counts = rng.integers(2, 5, size=len(stations))
    idx = np.repeat(np.arange(len(stations)), counts)
    exit_no = np.concatenate([np.arange(1, c + 1) for c in counts])
    angle = rng.uniform(0, 2 * np.pi, len(idx)) + (exit_no - 1) * (2 * np.pi / counts[idx])
    dist = rng.uniform(60, 180, len(idx))
    lon, lat = offset(stations.geometry.x.to_numpy()[idx], stations.geometry.y.to_numpy()[idx],
                      dist * np.cos(angle), dist * np.sin(angle))
    outline = district_outline()
    inside = shapely.contains_xy(outline, lon, lat)
    lon = np.where(inside, lon, stations.geometry.x.to_numpy()[idx])
    lat = np.where(inside, lat, stations.geometry.y.to_numpy()[idx])
    names = stations["name"].to_numpy()[idx]
    codes = stations["station_code"].to_numpy()[idx]
    return gpd.GeoDataFrame(
        {
            "entrance_id": [f"{c}-{n}" for c, n in zip(codes, exit_no, strict=True)],
            "station_name": names,
            "exit_no": [f"{n}号口" for n in exit_no],
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs=4326,
    )
