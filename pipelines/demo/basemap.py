"""The basemap of the demo: water, parks and built-up areas (approximate geometry, declared as demo data).

Water and parks are drawn from public knowledge of Minhang, not surveyed: the Huangpu (黄浦江) along the
polyline that also splits the towns (:data:`pipelines.demo.towns.HUANGPU`), ~400 m wide, and the main rivers
as centre lines through approximate real points with their usual widths; the large parks as ellipses of
about their real area at about their real place. Built-up areas are derived from the demo's own buildings:
250 m cells holding buildings, merged per town and graded by how many they hold.
"""

from __future__ import annotations

import functools

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from shapely.geometry import LineString, MultiPolygon, Point

from pipelines.demo.geo import M_PER_DEG_LAT, M_PER_DEG_LON, to_metric, to_wgs84
from pipelines.demo.outline import district_outline
from pipelines.demo.towns import HUANGPU

#: (id, name, English name, kind, width m, centre line) — approximate
RIVERS: tuple[tuple[str, str, str, str, float, tuple[tuple[float, float], ...]], ...] = (
    ("HPJ", "黄浦江", "Huangpu River", "river", 400.0, tuple(HUANGPU.coords)),
    ("DPH", "淀浦河", "Dianpu River", "river", 70.0,
     ((121.262, 31.168), (121.300, 31.170), (121.340, 31.172), (121.380, 31.174), (121.420, 31.172))),
    ("CST", "春申塘", "Chunshen Creek", "river", 40.0,
     ((121.330, 31.098), (121.380, 31.099), (121.420, 31.101), (121.460, 31.104), (121.488, 31.106))),
    ("BHJ", "北横泾", "Beihengjing Creek", "river", 35.0,
     ((121.320, 31.082), (121.370, 31.081), (121.420, 31.080), (121.478, 31.078))),
    ("YT", "俞塘", "Yutang Creek", "river", 35.0,
     ((121.300, 31.046), (121.350, 31.048), (121.400, 31.050), (121.468, 31.050))),
    ("NEJ", "女儿泾", "Nü'erjing Creek", "river", 30.0,
     ((121.432, 31.132), (121.437, 31.100), (121.442, 31.070), (121.450, 31.040), (121.466, 31.030))),
    ("XJG", "新泾港", "Xinjing Canal", "canal", 40.0,
     ((121.305, 31.262), (121.308, 31.230), (121.312, 31.200), (121.318, 31.172))),
    ("ZG", "竹港", "Zhugang Canal", "canal", 30.0,
     ((121.344, 31.172), (121.348, 31.140), (121.352, 31.110), (121.356, 31.070), (121.360, 31.020))),
    ("DWH", "大治河(闵行段)", "Dazhi River (Minhang part)", "river", 90.0,
     ((121.486, 31.020), (121.520, 31.012), (121.560, 31.005))),
)

#: (id, name, English name, kind, lon, lat, area km², aspect east/north)
PARKS: tuple[tuple[str, str, str, str, float, float, float, float], ...] = (
    ("MHTY", "闵行体育公园", "Minhang Sports Park", "park", 121.368, 31.140, 0.84, 1.4),
    ("XZGY", "莘庄公园", "Xinzhuang Park", "park", 121.378, 31.112, 0.12, 1.2),
    ("MHWH", "闵行文化公园", "Minhang Cultural Park", "park", 121.354, 31.150, 0.48, 1.3),
    ("GMGY", "古美公园", "Gumei Park", "park", 121.396, 31.150, 0.06, 1.0),
    ("LAGY", "黎安公园", "Li'an Park", "park", 121.404, 31.145, 0.10, 1.1),
    ("HHGY", "航华公园", "Hanghua Park", "park", 121.352, 31.181, 0.09, 1.5),
    ("MHGY", "闵行公园", "Minhang Park", "park", 121.420, 31.015, 0.36, 1.3),
    ("PJJY", "浦江郊野公园", "Pujiang Country Park", "country_park", 121.520, 31.040, 15.3, 0.8),
    ("QZSL", "旗忠森林体育城", "Qizhong Forest Sports City", "green", 121.345, 31.032, 1.6, 1.2),
    ("HCLD", "华漕生态绿地", "Huacao Green Belt", "green", 121.282, 31.215, 1.2, 1.6),
)


@functools.cache
def water_polygons() -> dict[str, shapely.Geometry]:
    """River id -> WGS84 polygon (buffered centre line, clipped to a margin around the district)."""
    margin = to_wgs84(to_metric(district_outline()).buffer(1500.0))
    out = {}
    for wid, _name, _en, _kind, width, coords in RIVERS:
        poly = to_wgs84(to_metric(LineString(coords)).buffer(width / 2, cap_style="flat"))
        out[wid] = poly.intersection(margin)
    return out


def _multi(geom: shapely.Geometry) -> MultiPolygon:
    return MultiPolygon([g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and g.area > 0])


def water_frame() -> gpd.GeoDataFrame:
    """Return the ``water`` layer."""
    polys = water_polygons()
    return gpd.GeoDataFrame(
        {"water_id": [r[0] for r in RIVERS], "name": [r[1] for r in RIVERS], "name_en": [r[2] for r in RIVERS],
         "kind": [r[3] for r in RIVERS], "width_m": [r[4] for r in RIVERS]},
        geometry=[_multi(polys[r[0]]) for r in RIVERS], crs=4326)


@functools.cache
def park_polygons() -> dict[str, shapely.Geometry]:
    """Park id -> WGS84 ellipse of the park's area, clipped to the district and cut by the water."""
    outline = district_outline()
    water = shapely.union_all(list(water_polygons().values()))
    out = {}
    for pid, _name, _en, _kind, lon, lat, km2, aspect in PARKS:
        r = np.sqrt(km2 * 1e6 / np.pi)
        ellipse = shapely.affinity.scale(to_metric(Point(lon, lat)).buffer(r, quad_segs=12),
                                         np.sqrt(aspect), 1 / np.sqrt(aspect))
        out[pid] = to_wgs84(ellipse).intersection(outline).difference(water)
    return out


def parks_frame() -> gpd.GeoDataFrame:
    """Return the ``parks`` layer."""
    polys = park_polygons()
    return gpd.GeoDataFrame(
        {"park_id": [p[0] for p in PARKS], "name": [p[1] for p in PARKS], "name_en": [p[2] for p in PARKS],
         "kind": [p[3] for p in PARKS]},
        geometry=[_multi(polys[p[0]]) for p in PARKS], crs=4326)


def keep_out() -> shapely.Geometry:
    """Where the demo puts no building: the water and the parks."""
    return shapely.union_all([*water_polygons().values(), *park_polygons().values()])


#: built-up cell size (metres) and buildings per cell of the grades
CELL_M = 250.0
GRADES = (("dense", 12), ("medium", 4), ("sparse", 1))


def built_up_frame(bldgs: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the ``built_up`` layer: 250 m cells with buildings, merged per town and grade."""
    c = shapely.centroid(np.asarray(bldgs.geometry.array, dtype=object))
    x0, y0 = 121.0, 30.8
    ix = np.floor((shapely.get_x(c) - x0) * M_PER_DEG_LON / CELL_M).astype(np.int64)
    iy = np.floor((shapely.get_y(c) - y0) * M_PER_DEG_LAT / CELL_M).astype(np.int64)
    cells = pd.DataFrame({"ix": ix, "iy": iy, "town": bldgs["town"].to_numpy()})
    counts = cells.groupby(["ix", "iy"]).agg(n=("town", "size"), town=("town", lambda t: t.mode().iat[0]))
    counts = counts.reset_index()
    grade = np.select([counts["n"] >= GRADES[0][1], counts["n"] >= GRADES[1][1]], [GRADES[0][0], GRADES[1][0]],
                      GRADES[2][0])
    counts["density"] = grade
    dx, dy = CELL_M / M_PER_DEG_LON, CELL_M / M_PER_DEG_LAT
    lon0 = x0 + counts["ix"].to_numpy() * dx
    lat0 = y0 + counts["iy"].to_numpy() * dy
    boxes = shapely.box(lon0, lat0, lon0 + dx * 1.0001, lat0 + dy * 1.0001)
    outline = district_outline()
    rows, geoms = [], []
    for (town, density), idx in counts.groupby(["town", "density"]).groups.items():
        merged = shapely.union_all(boxes[np.asarray(idx)]).intersection(outline)
        rows.append({"area_id": f"{town}-{density}", "town": town, "density": density,
                     "buildings": int(counts.loc[idx, "n"].sum())})
        geoms.append(_multi(merged))
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=4326)
