"""Raster tiles (PNG) of the Cloud-Optimized GeoTIFFs in ``<home>/rasters/<name>.tif`` through rio-tiler.

The indicator engine writes its rasters there (e.g. camera density). Rendering is blocking (rasterio), so
callers run it in a thread (plain ``def`` routes run in Starlette's threadpool).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rio_tiler.colormap import cmap
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from cim_service.core.catalog import IDENT
from cim_service.errors import InvalidParameter, NotFound
from cim_service.tiles.tms import get_tms

DEFAULT_COLORMAP = "viridis"


def raster_dir(home: Path) -> Path:
    """Folder of the served rasters."""
    return Path(home) / "rasters"


def list_rasters(home: Path) -> list[str]:
    """Names of the rasters available (``<name>.tif`` files with a valid name)."""
    folder = raster_dir(home)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.tif") if IDENT.match(p.stem))


def raster_path(home: Path, name: str) -> Path:
    """Path of raster ``name``; NotFound when the name is invalid or the file is absent (no path traversal)."""
    if not IDENT.match(name):
        raise NotFound(f"raster {name!r} not found")
    path = raster_dir(home) / f"{name}.tif"
    if not path.is_file():
        raise NotFound(f"raster {name!r} not found; available: {', '.join(list_rasters(home)) or 'none'}")
    return path


def parse_rescale(text: str | None) -> tuple[float, float] | None:
    """Parse ``rescale=min,max`` (None when absent); InvalidParameter when malformed."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidParameter("parameter 'rescale' must be two numbers 'min,max'") from None
    if not lo < hi:
        raise InvalidParameter("parameter 'rescale': min must be smaller than max")
    return lo, hi


def render_png(path: Path, tms_id: str, z: int, x: int, y: int, colormap: str = DEFAULT_COLORMAP,
               rescale: tuple[float, float] | None = None) -> bytes | None:
    """Render band 1 of ``path`` for tile z/x/y as a colour-mapped PNG; None when the tile misses the raster."""
    if colormap not in cmap.list():
        raise InvalidParameter(f"parameter 'colormap': unknown colormap {colormap!r} (e.g. viridis, magma, reds)")
    with Reader(str(path), tms=get_tms(tms_id)) as src:
        try:
            img = src.tile(x, y, z, indexes=1)
        except TileOutsideBounds:
            return None
    stats = rescale or _band_range(str(path), path.stat().st_mtime_ns)
    img.rescale(in_range=(stats,))
    return img.render(img_format="PNG", colormap=cmap.get(colormap))


@lru_cache(maxsize=64)
def _band_range(path: str, _mtime_ns: int) -> tuple[float, float]:
    """Min/max of band 1 (from a 512 px overview), cached per file version."""
    with Reader(path) as src:
        stats = src.statistics(indexes=1, max_size=512)
    band = next(iter(stats.values()))
    lo, hi = float(band.min), float(band.max)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def raster_tilejson(path: Path, name: str, base: str) -> dict:
    """TileJSON 3.0 of raster ``name`` (PNG tiles in WebMercatorQuad), bounds from the COG.

    ``minzoom`` is 0: a tile of any zoom that meets the raster is drawn (from the COG's overviews), so a client
    shows the raster at the district's and the city's scale too. ``maxzoom`` is the first zoom whose pixels are as
    fine as the raster's cells at its latitude (:func:`native_zoom`): past it a client over-zooms instead of asking
    for tiles that only repeat cells.
    """
    with Reader(str(path), tms=get_tms("WebMercatorQuad")) as src:
        bounds = [float(v) for v in src.get_geographic_bounds(src.tms.rasterio_geographic_crs)]
    maxzoom = native_zoom(path)
    return {
        "tilejson": "3.0.0", "name": name, "scheme": "xyz", "format": "png",
        "tiles": [f"{base}/rasters/{name}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"],
        "bounds": bounds, "minzoom": 0, "maxzoom": maxzoom,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, max(0, maxzoom - 2)],
    }


def native_zoom(path: Path) -> int:
    """The first WebMercatorQuad zoom whose pixel, on the ground at the raster's centre, is no larger than a cell."""
    import math

    import rasterio
    from rasterio.warp import transform as warp_points

    with rasterio.open(path) as src:
        cx, cy = (src.bounds.left + src.bounds.right) / 2, (src.bounds.bottom + src.bounds.top) / 2
        lat = warp_points(src.crs, "EPSG:4326", [cx], [cy])[1][0] if not src.crs.is_geographic else cy
        cell = min(abs(src.res[0]), abs(src.res[1]))
        if src.crs.is_geographic:  # degrees to metres along the parallel
            cell *= 6378137 * math.pi / 180 * math.cos(math.radians(lat))
        else:
            cell *= src.crs.linear_units_factor[1]
    tms = get_tms("WebMercatorQuad")
    for z in range(tms.minzoom, tms.maxzoom + 1):
        if tms.matrix(z).cellSize * math.cos(math.radians(lat)) <= cell:
            return z
    return tms.maxzoom


#: colour stops of the value legend (evenly spaced over the ramp)
LEGEND_STOPS = 6


def raster_legend(path: Path, colormap: str = DEFAULT_COLORMAP,
                  rescale: tuple[float, float] | None = None) -> dict:
    """Value legend of a raster's colour ramp: ``stops`` of value → ``#rrggbb`` as the PNG tiles draw them."""
    if colormap not in cmap.list():
        raise InvalidParameter(f"parameter 'colormap': unknown colormap {colormap!r} (e.g. viridis, magma, reds)")
    lo, hi = rescale or _band_range(str(path), path.stat().st_mtime_ns)
    ramp = cmap.get(colormap)
    stops = []
    for i in range(LEGEND_STOPS):
        k = round(i * 255 / (LEGEND_STOPS - 1))
        r, g, b, _ = ramp[k]
        stops.append({"value": lo + (hi - lo) * k / 255, "color": f"#{r:02x}{g:02x}{b:02x}"})
    return {"type": "continuous", "colormap": colormap, "min": lo, "max": hi, "stops": stops}


def raster_description(path: Path) -> dict:
    """What a coverage client needs to know of the file: CRS, size, resolution, data type, nodata, bounds."""
    with Reader(str(path)) as src:
        ds = src.dataset
        bounds = [float(v) for v in src.get_geographic_bounds(src.tms.rasterio_geographic_crs)]
        return {"crs": ds.crs.to_string(), "width": ds.width, "height": ds.height,
                "resolution": [abs(ds.res[0]), abs(ds.res[1])], "dataType": ds.dtypes[0],
                "nodata": ds.nodata, "bbox": bounds}
