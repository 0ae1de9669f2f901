"""Rasters as OGC API Coverages collections: the COG, its domain set and range type, subsets as GeoTIFF.

Each raster of ``<home>/rasters`` (:mod:`cim_service.tiles.raster`) whose name is not a layer id is a coverage
collection. Its *domain* is the raster on a regular CRS84 grid (longitude, latitude): the grid GDAL's warper picks
for the stored CRS (the indicator COGs are in EPSG:4549), so that ``subset``/``bbox`` in degrees and ``scaleSize``
in cells mean the same to every client, GDAL 3.6's ``OGCAPI:`` driver included (it takes a coverage as CRS84
and asks ``subset=Lon(a:b),Lat(c:d)&scaleSize=Lon(w),Lat(h)`` blocks of 256 cells).

- ``/coverage`` without parameters is the stored COG itself (storage CRS, overviews, HTTP ``Range``);
- with ``subset``, ``bbox`` or ``scaleSize`` it is a GeoTIFF (EPSG:4326, lon/lat order) of that window at that
  size, warped from the COG (nearest cell: values are kept, never blended), bounded to
  :data:`MAX_SIDE` cells a side and :data:`MAX_CELLS` in all; cells outside the raster are nodata.

Everything here blocks (rasterio): callers run it in a worker thread.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform

from cim_service.errors import InvalidParameter, NotFound
from cim_service.tiles import raster

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: media type of a GeoTIFF subset (the type GDAL's OGCAPI driver looks for in a collection's coverage link)
GEOTIFF = "image/tiff; application=geotiff"
#: media type of the stored file
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
REL_COVERAGE = "http://www.opengis.net/def/rel/ogc/1.0/coverage"
REL_DOMAINSET = "http://www.opengis.net/def/rel/ogc/1.0/coverage-domainset"
REL_RANGETYPE = "http://www.opengis.net/def/rel/ogc/1.0/coverage-rangetype"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/geotiff",
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/subsetting",
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/scaling",
]
#: largest subset answered: cells a side, and in all (a float32 band of 16 M cells is 64 MB)
MAX_SIDE = 4096
MAX_CELLS = 16_777_216
#: accepted axis names (lower case) → x (longitude) or y (latitude)
AXES = {"lon": "x", "long": "x", "longitude": "x", "x": "x", "e": "x",
        "lat": "y", "latitude": "y", "y": "y", "n": "y"}
#: SWE Common / OGC data type of each numpy dtype (GDAL 3.6 reads the ``ogcType:`` form)
OGC_TYPES = {"uint8": "unsignedByte", "int8": "signedByte", "int16": "signedShort", "uint16": "unsignedShort",
             "int32": "signedInt", "uint32": "unsignedInt", "float32": "float32", "float64": "float64"}
_PART = re.compile(r"\s*([A-Za-z]+)\(\s*([^()]*)\)\s*")


def coverage_ids(home: Path, layer_ids: set[str]) -> list[str]:
    """Names of the rasters served as coverage collections (a layer id always names the layer)."""
    return [n for n in raster.list_rasters(home) if n not in layer_ids]


def coverage_path(home: Path, name: str, layer_ids: set[str]) -> Path:
    """Path of coverage ``name``; NotFound for a layer id, an invalid name or an absent file."""
    if name in layer_ids:
        raise NotFound(f"collection {name!r} is a feature collection, not a coverage")
    try:
        return raster.raster_path(home, name)
    except NotFound:
        raise NotFound(f"collection {name!r} not found") from None


@dataclass(frozen=True)
class Grid:
    """The coverage's regular CRS84 grid: bounds (west, south, east, north), cells, cell size in degrees."""

    west: float
    south: float
    east: float
    north: float
    width: int
    height: int
    dtype: str
    nodata: float | None
    storage_crs: str

    @property
    def res(self) -> tuple[float, float]:
        """Cell size (longitude, latitude) in degrees."""
        return (self.east - self.west) / self.width, (self.north - self.south) / self.height


def grid(path: Path) -> Grid:
    """The CRS84 grid of ``path`` (cached per file version)."""
    return _grid(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _grid(path: str, _mtime_ns: int) -> Grid:
    with rasterio.open(path) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                                               *src.bounds)
        west, north = transform.c, transform.f
        east, south = west + transform.a * width, north + transform.e * height
        epsg = src.crs.to_epsg()
        storage = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}" if epsg else src.crs.to_wkt()
        return Grid(west, south, east, north, int(width), int(height), src.dtypes[0], src.nodata, storage)


def domainset(path: Path) -> dict:
    """The CIS 1.1 domain set: a regular grid in CRS84 (Lon, Lat) with its index limits."""
    g = grid(path)
    rx, ry = g.res
    return {
        "type": "DomainSet",
        "generalGrid": {
            "type": "GeneralGridCoverage",
            "srsName": CRS84,
            "axisLabels": ["Lon", "Lat"],
            "axis": [
                {"type": "RegularAxis", "axisLabel": "Lon", "lowerBound": g.west, "upperBound": g.east,
                 "uomLabel": "deg", "resolution": rx},
                {"type": "RegularAxis", "axisLabel": "Lat", "lowerBound": g.south, "upperBound": g.north,
                 "uomLabel": "deg", "resolution": ry},
            ],
            "gridLimits": {
                "type": "GridLimits", "srsName": "http://www.opengis.net/def/crs/OGC/0/Index2D",
                "axisLabels": ["i", "j"],
                "axis": [{"type": "IndexAxis", "axisLabel": "i", "lowerBound": 0, "upperBound": g.width - 1},
                         {"type": "IndexAxis", "axisLabel": "j", "lowerBound": 0, "upperBound": g.height - 1}],
            },
        },
    }


def rangetype(path: Path, name: str, unit: str | None = None) -> dict:
    """The CIS 1.1 range type: one quantity per band, its data type, nodata and unit."""
    g = grid(path)
    field: dict = {"type": "Quantity", "id": name, "name": name.replace("_", " "),
                   "definition": f"ogcType:{OGC_TYPES.get(g.dtype, g.dtype)}",
                   "dataType": g.dtype}
    if g.nodata is not None:
        field["nilValues"] = [{"reason": "http://www.opengis.net/def/nil/OGC/0/missing",
                               "value": _number(g.nodata)}]
    if unit:
        field["uom"] = {"type": "UnitReference", "code": unit}
    return {"type": "DataRecord", "field": [field]}


def _number(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


# -- subsets ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """A validated subset: the CRS84 window and the output size in cells."""

    west: float
    south: float
    east: float
    north: float
    width: int
    height: int


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InvalidParameter(f"parameter {what!r}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise InvalidParameter(f"parameter {what!r}: {text!r} is not a finite number")
    return v


def _parts(values: list[str], what: str) -> dict[str, str]:
    """``Axis(body)`` items of ``values`` (comma-separated, possibly repeated) keyed by x / y."""
    out: dict[str, str] = {}
    for value in values:
        if len(value) > 200:
            raise InvalidParameter(f"parameter {what!r}: longer than 200 characters")
        rest = value.strip()
        while rest:
            m = _PART.match(rest)
            if not m:
                raise InvalidParameter(f"parameter {what!r}: expected Axis(...) items such as "
                                       f"Lon(121.2:121.6),Lat(30.9:31.3), got {value!r}")
            axis = AXES.get(m.group(1).lower())
            if axis is None:
                raise InvalidParameter(f"parameter {what!r}: unknown axis {m.group(1)!r} (Lon, Lat)")
            if axis in out:
                raise InvalidParameter(f"parameter {what!r}: axis {m.group(1)!r} given twice")
            out[axis] = m.group(2)
            rest = rest[m.end():]
            if rest.startswith(","):
                rest = rest[1:]
            elif rest:
                raise InvalidParameter(f"parameter {what!r}: items are separated by commas")
    return out


def parse_request(path: Path, subset: list[str], bbox: str | None, scale_size: list[str]) -> Request | None:
    """The window and size asked for; None when nothing was asked (the stored COG is sent).

    ``subset`` (``Lon(a:b),Lat(c:d)``, or one axis per parameter) or ``bbox`` (CRS84 ``w,s,e,n``) choose the
    window, within longitude -180..180 and latitude -90..90 (parts outside the raster are nodata); ``scaleSize``
    (``Lon(w),Lat(h)``) the size, else the grid's own cell size. :class:`InvalidParameter` names what is wrong.
    """
    if not subset and bbox is None and not scale_size:
        return None
    g = grid(path)
    west, south, east, north = g.west, g.south, g.east, g.north
    if subset and bbox is not None:
        raise InvalidParameter("parameters 'subset' and 'bbox' both choose the window: give one of them")
    if subset:
        parts = _parts(subset, "subset")
        for axis, body in parts.items():
            lo_hi = body.split(":")
            if len(lo_hi) != 2:
                raise InvalidParameter(f"parameter 'subset': {body!r} is not a range low:high (slicing to one "
                                       "value is not supported)")
            lo, hi = (_float(v.strip(), "subset") for v in lo_hi)
            if axis == "x":
                west, east = lo, hi
            else:
                south, north = lo, hi
    elif bbox is not None:
        values = bbox.split(",")
        if len(values) != 4:
            raise InvalidParameter("parameter 'bbox': four numbers west,south,east,north (CRS84)")
        west, south, east, north = (_float(v.strip(), "bbox") for v in values)
    what = "subset" if subset else "bbox"
    if not (-180 <= west < east <= 180):
        raise InvalidParameter(f"parameter {what!r}: longitude range must be increasing within -180..180")
    if not (-90 <= south < north <= 90):
        raise InvalidParameter(f"parameter {what!r}: latitude range must be increasing within -90..90")
    if scale_size:
        sizes = _parts(scale_size, "scaleSize")
        if set(sizes) != {"x", "y"}:
            raise InvalidParameter("parameter 'scaleSize': give both axes, e.g. Lon(256),Lat(256)")
        try:
            width, height = int(sizes["x"]), int(sizes["y"])
        except ValueError:
            raise InvalidParameter("parameter 'scaleSize': sizes are whole numbers of cells") from None
    else:
        rx, ry = g.res
        width, height = max(1, round((east - west) / rx)), max(1, round((north - south) / ry))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_CELLS:
        raise InvalidParameter(f"parameter 'scaleSize': {width} x {height} cells; at most {MAX_SIDE} a side and "
                               f"{MAX_CELLS:,} in all (ask a smaller scaleSize or window)")
    return Request(west, south, east, north, width, height)


def render_geotiff(path: Path, req: Request) -> bytes:
    """The window of ``req`` as a GeoTIFF (EPSG:4326, deflate), warped from the COG with the nearest cell."""
    transform = from_bounds(req.west, req.south, req.east, req.north, req.width, req.height)
    with rasterio.open(path) as src:
        nodata = src.nodata
        with WarpedVRT(src, crs="EPSG:4326", transform=transform, width=req.width, height=req.height,
                       resampling=Resampling.nearest, nodata=nodata) as vrt:
            data = vrt.read()
        profile = {"driver": "GTiff", "width": req.width, "height": req.height, "count": src.count,
                   "dtype": src.dtypes[0], "crs": "EPSG:4326", "transform": transform, "nodata": nodata,
                   "compress": "deflate"}
        if req.width >= 256 and req.height >= 256:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
    if nodata is None:
        data = np.ascontiguousarray(data)
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        return mem.read()


# -- the collection ----------------------------------------------------------------------------------

def collection_doc(path: Path, name: str, root: str) -> dict:
    """The coverage collection: extent, storage CRS, the grid, the value legend and links to every part."""
    g = grid(path)
    url = f"{root}/collections/{name}"
    return {
        "id": name, "title": name.replace("_", " "), "itemType": "coverage", "dataType": "coverage",
        # GDAL's OAPIF driver (QGIS and ogr2ogr on OAPIF:) lists every collection as a vector layer but this one
        "layerDataType": "Coverage",
        "extent": {"spatial": {"bbox": [[g.west, g.south, g.east, g.north]], "crs": CRS84}},
        "crs": [CRS84], "storageCrs": g.storage_crs,
        "legend": raster.raster_legend(path),
        "links": [
            {"rel": "self", "type": "application/json", "href": url, "title": "this collection"},
            {"rel": REL_COVERAGE, "type": GEOTIFF, "href": f"{url}/coverage",
             "title": "the coverage as GeoTIFF (subset=, bbox=, scaleSize=; without them the COG itself)"},
            {"rel": REL_COVERAGE, "type": COG, "href": f"{url}/coverage",
             "title": "the Cloud-Optimized GeoTIFF (HTTP Range requests)"},
            {"rel": REL_DOMAINSET, "type": "application/json", "href": f"{url}/coverage/domainset",
             "title": "domain set (CIS 1.1 JSON)"},
            {"rel": REL_RANGETYPE, "type": "application/json", "href": f"{url}/coverage/rangetype",
             "title": "range type (CIS 1.1 JSON)"},
            {"rel": "describedby", "type": "application/json", "href": f"{root}/rasters/{name}/legend",
             "title": "value legend (colormap=, rescale= as the PNG tiles)"},
            {"rel": "alternate", "type": "application/json", "href": f"{root}/rasters/{name}/tilejson.json",
             "title": "TileJSON 3.0 of the PNG tiles"},
            {"rel": "item", "type": "image/png", "templated": True,
             "href": f"{root}/rasters/{name}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png",
             "title": "PNG tiles (WebMercatorQuad)"},
        ],
    }
