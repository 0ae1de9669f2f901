"""The real Minhang District outline shipped in ``cim_service/data`` (GCJ-02), converted to WGS84."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import geopandas as gpd
import shapely
from shapely.geometry import MultiPolygon, shape

import cim_service
from cim_service.core.crs import transform_geometry

DATA_DIR = Path(cim_service.__file__).resolve().parent / "data"
OUTLINE_FILE = DATA_DIR / "minhang_310112_gcj02.geojson"
ADCODE = "310112"


@functools.cache
def district_outline() -> MultiPolygon:
    """Return the district outline in WGS84 (converted from the shipped GCJ-02 file)."""
    data = json.loads(OUTLINE_FILE.read_text(encoding="utf-8"))
    geom = shape(data.get("geometry", data) if data.get("type") == "Feature" else data)
    wgs = shapely.make_valid(transform_geometry(geom, "GCJ02", "EPSG:4326"))
    if wgs.geom_type == "Polygon":
        wgs = MultiPolygon([wgs])
    shapely.prepare(wgs)
    return wgs


def district_frame() -> gpd.GeoDataFrame:
    """Return the ``district`` layer: one feature, 闵行区."""
    return gpd.GeoDataFrame({"adcode": [ADCODE], "name": ["闵行区"]}, geometry=[district_outline()], crs=4326)
