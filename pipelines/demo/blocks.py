"""Packing the demo's building groups into the land: each group takes the free ground nearest its drawn point.

A group (a residential compound, a row of shops, a yard of sheds) is a box of land. The district is a grid of
:data:`CELL_M` cells; the water, the parks, the main roads' corridors and the land outside the district are
taken from the start, and every group placed takes its box. A group goes to the free box nearest the point drawn
for it (:mod:`pipelines.demo.sampling`), inside that point's town, so compounds stand side by side where the
points are many (the town centres, the metro stations, the roads) and the built-up blocks are full, instead of
scattered over the fields. The grid is in a local plane of :data:`~pipelines.demo.geo.M_PER_DEG_LON` ×
:data:`~pipelines.demo.geo.M_PER_DEG_LAT` metres per degree, the plane the footprints are drawn in.
"""

from __future__ import annotations

import functools

import numpy as np
import shapely

from pipelines.demo.basemap import keep_out
from pipelines.demo.geo import M_PER_DEG_LAT, M_PER_DEG_LON
from pipelines.demo.outline import district_outline
from pipelines.demo.roads import road_lines

#: grid cell (metres)
CELL_M = 15.0
#: width (metres) kept free along the main roads, by grade (carriageway and verges)
ROAD_WIDTH_M = {"expressway": 60.0, "arterial": 40.0, "secondary": 26.0}
#: how far (cells) a group may move from its point: a first window, then a wider one
SEARCH_CELLS = (60, 240)
#: how many of the nearest free boxes are tried for the town (near a town's edge the nearest are across it)
CANDIDATES = 4096


def _plane(geom: shapely.Geometry, lon0: float, lat0: float) -> shapely.Geometry:
    return shapely.transform(geom, lambda c: np.column_stack([(c[:, 0] - lon0) * M_PER_DEG_LON,
                                                              (c[:, 1] - lat0) * M_PER_DEG_LAT]))


def _rasterise(geom: shapely.Geometry, nx: int, ny: int) -> np.ndarray:
    """Cells (ny, nx) whose centre lies in ``geom`` (plane metres), one scan line per row."""
    out = np.zeros((ny, nx), dtype=bool)
    ys = (np.arange(ny) + 0.5) * CELL_M
    lines = shapely.linestrings(np.stack([np.stack([np.full(ny, -1.0), ys], 1),
                                          np.stack([np.full(ny, nx * CELL_M + 1.0), ys], 1)], 1))
    shapely.prepare(geom)
    for j, part in enumerate(shapely.intersection(lines, geom)):
        if part.is_empty:
            continue
        for seg in shapely.get_parts(part):
            if seg.geom_type != "LineString":
                continue
            x = shapely.get_coordinates(seg)[:, 0]
            i0, i1 = int(np.ceil(x.min() / CELL_M - 0.5)), int(np.floor(x.max() / CELL_M - 0.5))
            out[j, max(i0, 0):min(i1, nx - 1) + 1] = True
    return out


@functools.cache
def _base() -> tuple[float, float, np.ndarray]:
    """Origin (lon, lat) and the grid of taken cells before any group: outside, water, parks, main roads."""
    outline = district_outline()
    minx, miny, maxx, maxy = outline.bounds
    nx = int(np.ceil((maxx - minx) * M_PER_DEG_LON / CELL_M)) + 1
    ny = int(np.ceil((maxy - miny) * M_PER_DEG_LAT / CELL_M)) + 1
    roads = [_plane(g, minx, miny).buffer(ROAD_WIDTH_M.get(grade, 26.0) / 2, cap_style="flat")
             for _name, grade, g in road_lines().values()]
    taken = ~_rasterise(_plane(outline, minx, miny), nx, ny)
    taken |= _rasterise(shapely.union_all([_plane(keep_out(), minx, miny), *roads]), nx, ny)
    return minx, miny, taken


class Packer:
    """The land of the district, group after group (deterministic: the same groups, the same places)."""

    def __init__(self) -> None:
        self.lon0, self.lat0, base = _base()
        self.taken = base.copy()

    def place(self, lon: float, lat: float, width_m: float, height_m: float,
              within: shapely.Geometry) -> tuple[float, float] | None:
        """Take the free ``width_m`` × ``height_m`` box nearest (lon, lat) with its centre in ``within``.

        Returns the box centre (lon, lat), or None when no such box is free near the point.
        """
        wc, hc = max(1, int(np.ceil(width_m / CELL_M))), max(1, int(np.ceil(height_m / CELL_M)))
        ny, nx = self.taken.shape
        ci = (lon - self.lon0) * M_PER_DEG_LON / CELL_M
        cj = (lat - self.lat0) * M_PER_DEG_LAT / CELL_M
        for radius in SEARCH_CELLS:
            i0, i1 = max(0, int(ci) - radius - wc), min(nx, int(ci) + radius + wc)
            j0, j1 = max(0, int(cj) - radius - hc), min(ny, int(cj) + radius + hc)
            if i1 - i0 < wc or j1 - j0 < hc:
                continue
            s = np.zeros((j1 - j0 + 1, i1 - i0 + 1), dtype=np.int32)
            s[1:, 1:] = self.taken[j0:j1, i0:i1].cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)
            box = s[hc:, wc:] - s[:-hc, wc:] - s[hc:, :-wc] + s[:-hc, :-wc]
            rj, ri = np.nonzero(box == 0)
            if not len(ri):
                continue
            cx, cy = i0 + ri + wc / 2, j0 + rj + hc / 2  # box centres (cells)
            d = (cx - ci) ** 2 + (cy - cj) ** 2
            near = np.argpartition(d, min(CANDIDATES, len(d)) - 1)[:CANDIDATES]  # the nearest, nearest first
            order = near[np.lexsort((near, d[near]))]
            ok = order[shapely.contains_xy(within, self._lon(cx[order]), self._lat(cy[order]))]
            if not len(ok) and len(d) > CANDIDATES:  # all the nearest are across the town's edge: try them all
                inside = np.flatnonzero(shapely.contains_xy(within, self._lon(cx), self._lat(cy)))
                ok = inside[np.lexsort((inside, d[inside]))]
            if not len(ok):
                continue
            k = ok[0]
            self.taken[j0 + rj[k]:j0 + rj[k] + hc, i0 + ri[k]:i0 + ri[k] + wc] = True
            return float(self._lon(cx[k])), float(self._lat(cy[k]))
        return None

    def _lon(self, i: np.ndarray) -> np.ndarray:
        return self.lon0 + i * CELL_M / M_PER_DEG_LON

    def _lat(self, j: np.ndarray) -> np.ndarray:
        return self.lat0 + j * CELL_M / M_PER_DEG_LAT
