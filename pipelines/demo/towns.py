"""The 14 towns (街镇) of Minhang as a partition of the real outline: a fitted power diagram.

The towns' real boundaries are not openly licensed, so the demo approximates them: each town has a
real approximate centre and its approximate real area; the Huangpu river (approximated by a
polyline through real points) separates the east-bank towns (浦江镇, 浦锦街道) from the rest, and on
each bank a power diagram (a Voronoi diagram with per-town weights) of the centres, in UTM metres,
is fitted so that every cell has about its town's share of the area. Cells are clipped to the
outline, so the towns partition the district exactly (up to floating-point noise).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon

from pipelines.demo.geo import area_km2, to_metric, to_wgs84
from pipelines.demo.outline import district_outline


@dataclass(frozen=True)
class Town:
    """A town (街镇): names, NBS code, centre (WGS84), area target and built-up density weight."""

    name: str
    code: str | None
    name_en: str
    lon: float
    lat: float
    area_km2: float
    density: float
    east_bank: bool = False


#: approximate town centres and areas (km²); density is the relative built-up weight used to place
#: devices, addresses and people (dense 1.0, medium ~0.45, sparse/farmland <= 0.2)
TOWNS: tuple[Town, ...] = (
    Town("江川路街道", "310112001", "Jiangchuan Road Subdistrict", 121.390, 31.012, 25.2, 0.45),
    Town("古美街道", "310112006", "Gumei Subdistrict", 121.392, 31.146, 6.2, 1.0),
    Town("新虹街道", "310112008", "Xinhong Subdistrict", 121.316, 31.196, 19.2, 0.8),
    Town("浦锦街道", "310112009", "Pujin Subdistrict", 121.503, 31.103, 16.0, 0.45, east_bank=True),
    Town("莘庄镇", "310112101", "Xinzhuang Town", 121.372, 31.115, 19.2, 1.0),
    Town("七宝镇", "310112102", "Qibao Town", 121.350, 31.158, 19.9, 1.0),
    Town("颛桥镇", "310112103", "Zhuanqiao Town", 121.407, 31.065, 25.3, 0.45),
    Town("华漕镇", "310112106", "Huacao Town", 121.285, 31.228, 28.3, 0.4),
    Town("虹桥镇", "310112107", "Hongqiao Town", 121.378, 31.176, 11.0, 1.0),
    Town("梅陇镇", "310112108", "Meilong Town", 121.425, 31.105, 28.7, 0.9),
    Town("吴泾镇", "310112110", "Wujing Town", 121.452, 31.055, 34.7, 0.2),
    Town("马桥镇", "310112112", "Maqiao Town", 121.355, 31.025, 38.8, 0.12),
    Town("浦江镇", "310112114", "Pujiang Town", 121.522, 31.050, 86.2, 0.15, east_bank=True),
    Town("莘庄工业区", "310112501", "Xinzhuang Industrial Zone", 121.365, 31.068, 15.1, 0.3),
)

#: the Huangpu river between the west bank and 浦江/浦锦, extended beyond the outline on both ends
HUANGPU = LineString([
    (121.500, 31.150), (121.490, 31.115), (121.486, 31.095), (121.479, 31.075), (121.471, 31.052),
    (121.467, 31.030), (121.472, 31.010), (121.481, 30.993), (121.485, 30.950),
])
_FAR = 1.0e6  # metres: "infinite" extent of half-planes


def town(name: str) -> Town:
    """Return the town called ``name``."""
    return next(t for t in TOWNS if t.name == name)


def _banks() -> tuple[shapely.Geometry, shapely.Geometry]:
    """Split the outline along the Huangpu: (west bank, east bank) in WGS84."""
    coords = list(HUANGPU.coords)
    east = Polygon([*coords, (121.8, 30.95), (121.8, 31.15)])
    outline = district_outline()
    return outline.difference(east), outline.intersection(east)


def _half_plane(pi: np.ndarray, pj: np.ndarray, wi: float, wj: float) -> Polygon:
    """The half-plane of points closer (in power distance) to ``pi`` than to ``pj``."""
    n = pj - pi
    c = (pj @ pj - pi @ pi - wj + wi) / 2.0  # n . x <= c
    norm = float(np.hypot(*n))
    unit = n / norm
    x0 = pi + unit * ((c - n @ pi) / norm)  # the foot of pi on the bisector
    d = np.array([-unit[1], unit[0]])
    return Polygon([x0 + _FAR * d, x0 - _FAR * d, x0 - _FAR * d - _FAR * unit, x0 + _FAR * d - _FAR * unit])


def _cells(part: shapely.Geometry, pts: np.ndarray, w: np.ndarray) -> list[shapely.Geometry]:
    cells = []
    for i in range(len(pts)):
        cell = part
        for j in range(len(pts)):
            if j != i:
                cell = cell.intersection(_half_plane(pts[i], pts[j], w[i], w[j]))
        cells.append(cell)
    return cells


def _fit_power_diagram(
    part_wgs: shapely.Geometry, towns: list[Town], iterations: int = 60
) -> list[shapely.Geometry]:
    """Fit weights so that each cell's area approaches its town's target; return metric cells.

    A weight change ``dw`` moves a bisector by ``dw / (2 d)`` (``d``: distance between the seeds), so
    each step moves a cell's boundary by about half its area deficit divided by its perimeter.
    """
    part = to_metric(part_wgs)
    pts = np.array([to_metric(shapely.Point(t.lon, t.lat)).coords[0] for t in towns])
    targets = np.array([t.area_km2 for t in towns])
    targets = targets / targets.sum() * part.area
    dist = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
    near = np.sort(dist, axis=1)[:, 1:4].mean(axis=1)
    w = np.zeros(len(towns))
    for _ in range(iterations):
        cells = _cells(part, pts, w)
        areas = np.array([c.area for c in cells])
        perim = np.array([max(c.length, 2 * np.sqrt(np.pi * t)) for c, t in zip(cells, targets, strict=True)])
        w += 0.5 * 2 * near * (targets - areas) / perim
    return _cells(part, pts, w)


def _as_multi(geom: shapely.Geometry) -> MultiPolygon:
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and g.area > 0]
    return MultiPolygon(polys)


@functools.cache
def town_polygons() -> dict[str, MultiPolygon]:
    """Return each town's polygon (WGS84), keyed by Chinese name, in :data:`TOWNS` order."""
    west, east = _banks()
    out: dict[str, MultiPolygon] = {}
    for part, bank in ((west, False), (east, True)):
        group = [t for t in TOWNS if t.east_bank == bank]
        for t, cell in zip(group, _fit_power_diagram(part, group), strict=True):
            out[t.name] = _as_multi(to_wgs84(cell).intersection(part))
    return {t.name: out[t.name] for t in TOWNS}


def towns_frame() -> gpd.GeoDataFrame:
    """Return the ``towns`` layer."""
    polys = town_polygons()
    return gpd.GeoDataFrame(
        {
            "name": [t.name for t in TOWNS],
            "code": [t.code for t in TOWNS],
            "name_en": [t.name_en for t in TOWNS],
        },
        geometry=[polys[t.name] for t in TOWNS],
        crs=4326,
    )


def town_areas_km2() -> dict[str, float]:
    """Return the area of each generated town in km²."""
    return {name: area_km2(geom) for name, geom in town_polygons().items()}
