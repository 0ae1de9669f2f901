"""Small geometry helpers of the demo generator: metric projection, areas, random generators."""

from __future__ import annotations

import functools
import zlib

import numpy as np
import shapely
from pyproj import Transformer

#: metric CRS used for areas, partitions and offsets (UTM zone 51N covers Shanghai)
METRIC_CRS = "EPSG:32651"
#: metres per degree at Minhang's latitude (31.1 N), for small offsets
M_PER_DEG_LAT = 110_860.0
M_PER_DEG_LON = 95_370.0


@functools.cache
def _transformer(inverse: bool) -> Transformer:
    src, dst = ("EPSG:4326", METRIC_CRS) if not inverse else (METRIC_CRS, "EPSG:4326")
    return Transformer.from_crs(src, dst, always_xy=True)


def to_metric(geom: shapely.Geometry) -> shapely.Geometry:
    """Project a WGS84 geometry to UTM 51N metres."""
    return shapely.transform(geom, lambda c: np.column_stack(_transformer(False).transform(c[:, 0], c[:, 1])))


def to_wgs84(geom: shapely.Geometry) -> shapely.Geometry:
    """Project a UTM 51N geometry back to WGS84 degrees."""
    return shapely.transform(geom, lambda c: np.column_stack(_transformer(True).transform(c[:, 0], c[:, 1])))


def area_km2(geom: shapely.Geometry) -> float:
    """Area of a WGS84 geometry in km², measured in UTM 51N."""
    return float(shapely.area(to_metric(geom))) / 1e6


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A generator for one part of the dataset: independent of the order parts are built in."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def offset(
    lon: np.ndarray, lat: np.ndarray, dx_m: np.ndarray, dy_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move points by metric offsets (east, north)."""
    return lon + dx_m / M_PER_DEG_LON, lat + dy_m / M_PER_DEG_LAT
