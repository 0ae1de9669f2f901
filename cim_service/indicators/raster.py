"""Density rasters (``kind: density_raster``): a Cloud-Optimized GeoTIFF at ``<home>/rasters/<name>.tif``.

E.g. the camera density. Grid: EPSG:4549 (metres), ``pixel_m`` (100 m) pixels over the district's bounding
box. Value: features of a density indicator per km² within a disc of 1 km² around each pixel centre (radius
564 m: the count of the disc's pixels divided by their area), float32, nodata -1 outside the district.
The raster tiles are served from that folder; the file is replaced atomically (written beside it, then
renamed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from scipy.ndimage import convolve
from shapely import from_wkb

from cim_service.indicators.catalog import DerivedSpec
from cim_service.indicators.compute import counted
from cim_service.indicators.context import METRIC_SRID, Context

PIXEL_M = 100.0
NODATA = -1.0
#: radius of a 1 km² disc
WINDOW_RADIUS_M = (1e6 / np.pi) ** 0.5


def raster_path(ctx: Context, name: str) -> Path:
    """Where the COG ``name`` is written."""
    return Path(ctx.settings.home) / "rasters" / f"{name}.tif"


def density_grid(xy: np.ndarray, bounds: tuple[float, float, float, float],
                 pixel_m: float = PIXEL_M) -> tuple[np.ndarray, object]:
    """Points per km² within a 1 km² disc around every ``pixel_m`` pixel; return (array, affine transform)."""
    minx, miny, maxx, maxy = bounds
    width = int(np.ceil((maxx - minx) / pixel_m)) + 1
    height = int(np.ceil((maxy - miny) / pixel_m)) + 1
    transform = from_origin(minx, miny + height * pixel_m, pixel_m, pixel_m)
    counts = np.zeros((height, width), dtype=np.float64)
    if len(xy):
        col = np.floor((xy[:, 0] - minx) / pixel_m).astype(int)
        row = np.floor((miny + height * pixel_m - xy[:, 1]) / pixel_m).astype(int)
        ok = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        np.add.at(counts, (row[ok], col[ok]), 1.0)
    r = int(np.ceil(WINDOW_RADIUS_M / pixel_m))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    kernel = ((xx * pixel_m) ** 2 + (yy * pixel_m) ** 2 <= WINDOW_RADIUS_M ** 2).astype(np.float64)
    km2 = kernel.sum() * (pixel_m / 1000.0) ** 2
    return convolve(counts, kernel, mode="constant") / km2, transform


def write_density_raster(ctx: Context, out: DerivedSpec) -> dict[str, object]:
    """Write the COG of ``out``; return its path, size and the district-wide maximum density."""
    p = out.p
    ind = ctx.indicators.density_indicator(p.indicator)
    layer = ctx.spec(ind.p.layer)
    ctx.prepare_areas()
    row = ctx.rows("SELECT ST_AsBinary(geom) FROM _ind_district WHERE geom IS NOT NULL")
    if not row:
        return {"path": None, "reason": "no district outline or towns loaded"}
    outline = from_wkb(bytes(row[0][0]))
    cond, params = counted(ctx, ind)
    xy = ctx.array(f"SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(s.geom, {METRIC_SRID}) AS g "
                   f"FROM {layer.qualified_table} s WHERE NOT s.outside_district AND {cond}) q", 2, **params)
    grid, transform = density_grid(xy, outline.bounds, p.pixel_m)
    outside = geometry_mask([outline], out_shape=grid.shape, transform=transform, invert=False)
    grid = np.where(outside, NODATA, grid).astype(np.float32)
    path = raster_path(ctx, p.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.tif")
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "width": grid.shape[1], "height": grid.shape[0],
               "crs": f"EPSG:{METRIC_SRID}", "transform": transform, "nodata": NODATA}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(grid, 1)
            dst.update_tags(1, units=f"{ind.noun} per km2", window="1 km2 disc", source=f"cim.{layer.table}")
        with mem.open() as src:
            cog_translate(src, str(tmp), cog_profiles.get("deflate"), in_memory=True, quiet=True,
                          overview_resampling="average")
    os.replace(tmp, path)
    with rasterio.open(path) as src:
        shape = (src.height, src.width)
    valid = grid[grid != NODATA]
    return {"path": str(path), "width": shape[1], "height": shape[0], "pixel_m": p.pixel_m,
            "max_density": float(valid.max()) if valid.size else None}
