"""Main roads of Minhang (approximate real alignments, WGS84), the S20 ring, planning zones and key areas."""

from __future__ import annotations

import functools

import geopandas as gpd
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon, box

from pipelines.demo.outline import district_outline

#: the S20 outer ring (外环高速) through Minhang, from north (华漕 east edge) to the Huangpu crossing (徐浦大桥)
S20 = (
    (121.334, 31.270), (121.333, 31.215), (121.335, 31.195), (121.345, 31.180), (121.358, 31.165),
    (121.368, 31.148), (121.382, 31.130), (121.395, 31.120), (121.420, 31.111), (121.445, 31.108),
    (121.470, 31.112), (121.490, 31.125), (121.530, 31.140),
)

#: (road id, name, grade, vertices) — approximate alignments through real points
ROADS: tuple[tuple[str, str, str, tuple[tuple[float, float], ...]], ...] = (
    ("S20", "外环高速(S20)", "expressway", S20),
    ("G60", "沪昆高速(G60)", "expressway", ((121.388, 31.116), (121.340, 31.095), (121.280, 31.070))),
    ("S4", "沪金高速(S4)", "expressway", ((121.400, 31.122), (121.395, 31.060), (121.385, 30.980))),
    ("JMGJ", "嘉闵高架路", "expressway", ((121.305, 31.265), (121.318, 31.205), (121.330, 31.150))),
    ("HMR", "沪闵路", "arterial", ((121.432, 31.160), (121.415, 31.140), (121.395, 31.118), (121.392, 31.100),
                                 (121.405, 31.068), (121.410, 31.045), (121.420, 31.028), (121.405, 31.015),
                                 (121.380, 31.012))),
    ("HMEI", "虹梅路", "arterial", ((121.403, 31.195), (121.405, 31.140), (121.410, 31.118))),
    ("HMNR", "虹梅南路", "arterial", ((121.425, 31.115), (121.430, 31.060), (121.440, 31.020))),
    ("LHNR", "莲花南路", "arterial", ((121.415, 31.150), (121.418, 31.125), (121.420, 31.050))),
    ("CBR", "漕宝路", "arterial", ((121.420, 31.168), (121.370, 31.163), (121.330, 31.153), (121.300, 31.145))),
    ("QXR", "七莘路", "arterial", ((121.360, 31.200), (121.357, 31.160), (121.360, 31.120), (121.365, 31.100))),
    ("DSR", "都市路", "arterial", ((121.382, 31.110), (121.370, 31.080), (121.360, 31.050))),
    ("JCR", "剑川路", "arterial", ((121.400, 31.025), (121.460, 31.020))),
    ("PXGL", "浦星公路", "arterial", ((121.512, 31.130), (121.505, 31.080), (121.500, 31.040), (121.500, 30.995))),
    ("WZR", "吴中路", "arterial", ((121.420, 31.176), (121.370, 31.175), (121.340, 31.170))),
    ("BZR", "北翟路", "arterial", ((121.340, 31.225), (121.270, 31.235))),
    ("GDR", "顾戴路", "secondary", ((121.350, 31.135), (121.420, 31.140))),
    ("CSR", "春申路", "secondary", ((121.380, 31.100), (121.440, 31.100))),
    ("ZCR", "中春路", "secondary", ((121.345, 31.180), (121.348, 31.100))),
    ("YJR", "元江路", "secondary", ((121.330, 31.062), (121.460, 31.062))),
    ("DCR", "东川路", "secondary", ((121.410, 31.022), (121.465, 31.024))),
    ("JCLR", "江川路", "secondary", ((121.350, 31.010), (121.400, 31.012), (121.440, 31.012))),
    ("LWR", "龙吴路", "secondary", ((121.465, 31.112), (121.470, 31.070), (121.462, 31.030))),
    ("CHGL", "陈行公路", "secondary", ((121.480, 31.060), (121.560, 31.052))),
    ("SDGL", "沈杜公路", "secondary", ((121.480, 31.046), (121.550, 31.040))),
    ("SLGL", "三鲁公路", "secondary", ((121.512, 31.100), (121.530, 31.030), (121.540, 30.995))),
    ("SCR", "申长路", "secondary", ((121.318, 31.215), (121.320, 31.175))),
    ("BSGL", "北松公路", "secondary", ((121.280, 31.040), (121.330, 31.030), (121.380, 31.030))),
)

#: English road names (the map's EN labels)
ROAD_NAMES_EN: dict[str, str] = {
    "S20": "Outer Ring Expressway (S20)",
    "G60": "Shanghai–Kunming Expressway (G60)",
    "S4": "Shanghai–Jinshan Expressway (S4)",
    "JMGJ": "Jiamin Elevated Road",
    "HMR": "Humin Road",
    "HMEI": "Hongmei Road",
    "HMNR": "South Hongmei Road",
    "LHNR": "South Lianhua Road",
    "CBR": "Caobao Road",
    "QXR": "Qixin Road",
    "DSR": "Dushi Road",
    "JCR": "Jianchuan Road",
    "PXGL": "Puxing Highway",
    "WZR": "Wuzhong Road",
    "BZR": "Beizhai Road",
    "GDR": "Gudai Road",
    "CSR": "Chunshen Road",
    "ZCR": "Zhongchun Road",
    "YJR": "Yuanjiang Road",
    "DCR": "Dongchuan Road",
    "JCLR": "Jiangchuan Road",
    "LWR": "Longwu Road",
    "CHGL": "Chenhang Highway",
    "SDGL": "Shendu Highway",
    "SLGL": "Sanlu Highway",
    "SCR": "Shenchang Road",
    "BSGL": "Beisong Highway",
}

#: key areas: (name, English name, 5G coverage target, rough extent lon/lat box)
KEY_AREAS = (
    ("虹桥商务区", "Hongqiao Business District (Minhang part)", 0.99, (121.295, 31.175, 121.335, 31.215)),
    ("莘庄商务区", "Xinzhuang Business District", 0.99, (121.375, 31.103, 121.397, 31.119)),
)


@functools.cache
def road_lines() -> dict[str, tuple[str, str, MultiLineString]]:
    """Return road id -> (name, grade, geometry clipped to the district)."""
    outline = district_outline()
    out: dict[str, tuple[str, str, MultiLineString]] = {}
    for rid, name, grade, coords in ROADS:
        clipped = LineString(coords).intersection(outline)
        parts = [g for g in shapely.get_parts(shapely.line_merge(clipped)) if g.geom_type == "LineString"]
        if parts:
            out[rid] = (name, grade, MultiLineString(parts))
    return out


def roads_frame() -> gpd.GeoDataFrame:
    """Return the ``main_roads`` layer."""
    lines = road_lines()
    return gpd.GeoDataFrame(
        {"road_id": list(lines), "name": [v[0] for v in lines.values()],
         "name_en": [ROAD_NAMES_EN.get(rid) for rid in lines], "grade": [v[1] for v in lines.values()]},
        geometry=[v[2] for v in lines.values()],
        crs=4326,
    )


@functools.cache
def inside_s20() -> shapely.Geometry:
    """Return the part of the district inside the S20 ring (the ring closed to the north-east)."""
    ring = Polygon([*S20, (121.70, 31.140), (121.70, 31.400), (121.334, 31.400)])
    return district_outline().intersection(ring)


def _multi(geom: shapely.Geometry) -> MultiPolygon:
    return MultiPolygon([g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and g.area > 0])


def zones_frame() -> gpd.GeoDataFrame:
    """Return the ``planning_zones`` layer: inside the S20 (900 m charging radius) and outside (1,500 m)."""
    inside = inside_s20()
    outside = district_outline().difference(inside)
    return gpd.GeoDataFrame(
        {
            "zone": ["inside_s20", "outside_s20"],
            "name": ["外环(S20)以内", "外环(S20)以外"],
            "charging_radius_m": [900.0, 1500.0],
        },
        geometry=[_multi(inside), _multi(outside)],
        crs=4326,
    )


def key_areas_frame() -> gpd.GeoDataFrame:
    """Return the ``key_areas`` layer (clipped to the district)."""
    outline = district_outline()
    return gpd.GeoDataFrame(
        {
            "name": [k[0] for k in KEY_AREAS],
            "name_en": [k[1] for k in KEY_AREAS],
            "g5_target_coverage": [k[2] for k in KEY_AREAS],
        },
        geometry=[_multi(box(*k[3]).intersection(outline)) for k in KEY_AREAS],
        crs=4326,
    )
