"""Tile matrix sets offered by the service (morecantile) and validation of tile coordinates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import morecantile
from morecantile import TileMatrixSet

from cim_service.errors import NotFound

#: tile matrix sets served, with the SRID of their CRS and the layer column holding geometries in it
SUPPORTED: dict[str, tuple[int, str]] = {
    "WebMercatorQuad": (3857, "geom_3857"),
    "WorldCRS84Quad": (4326, "geom"),
}


@dataclass(frozen=True)
class TileRef:
    """One tile of a tile matrix set, with its bounds in the TMS's CRS."""

    tms_id: str
    z: int
    x: int
    y: int
    bounds: tuple[float, float, float, float]
    srid: int
    column: str

    @property
    def width(self) -> float:
        """Width of the tile in CRS units."""
        return self.bounds[2] - self.bounds[0]


@cache
def get_tms(tms_id: str) -> TileMatrixSet:
    """Return the tile matrix set ``tms_id`` or raise NotFound naming the supported ones."""
    if tms_id not in SUPPORTED:
        raise NotFound(f"tile matrix set {tms_id!r} is not supported; supported: {', '.join(SUPPORTED)}")
    return morecantile.tms.get(tms_id)


@lru_cache(maxsize=65_536)
def tile_ref(tms_id: str, z: int, x: int, y: int) -> TileRef:
    """Validate ``z/x/y`` against the tile matrix set and return the tile; NotFound (404) when out of range."""
    tms = get_tms(tms_id)
    if not tms.minzoom <= z <= tms.maxzoom:
        raise NotFound(
            f"tile matrix (zoom) {z} does not exist in {tms_id}: valid zoom levels are {tms.minzoom}..{tms.maxzoom}"
        )
    matrix = tms.matrix(z)
    if not 0 <= x < matrix.matrixWidth:
        raise NotFound(f"tile column x={x} is out of range at zoom {z} of {tms_id}: 0..{matrix.matrixWidth - 1}")
    if not 0 <= y < matrix.matrixHeight:
        raise NotFound(f"tile row y={y} is out of range at zoom {z} of {tms_id}: 0..{matrix.matrixHeight - 1}")
    b = tms.xy_bounds(x, y, z)
    srid, column = SUPPORTED[tms_id]
    return TileRef(tms_id, z, x, y, (b.left, b.bottom, b.right, b.top), srid, column)


def tms_summary(tms_id: str, base_url: str) -> dict:
    """Short description of a tile matrix set for the ``/tileMatrixSets`` list."""
    tms = get_tms(tms_id)
    return {
        "id": tms_id,
        "title": tms.title,
        "uri": str(tms.uri) if tms.uri else None,
        "crs": str(tms.crs.root) if hasattr(tms.crs, "root") else str(tms.crs),
        "links": [{
            "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
            "type": "application/json",
            "title": f"{tms_id} definition",
            "href": f"{base_url}/tileMatrixSets/{tms_id}",
        }],
    }


@cache
def tms_definition(tms_id: str) -> dict:
    """OGC TileMatrixSet 2.0 JSON of ``tms_id``, with the TMS 1.0 (OGC 17-083r2) members beside it.

    GDAL before 3.7 reads only the 1.0 encoding (``type: TileMatrixSetType``, ``identifier``,
    ``supportedCRS``, ``tileMatrix[].topLeftCorner``); newer readers take the 2.0 members (``id``, ``crs``,
    ``tileMatrices``). The two describe the same grid; neither set of names collides with the other.
    """
    doc = get_tms(tms_id).model_dump(mode="json", exclude_none=True)
    crs = doc["crs"] if isinstance(doc["crs"], str) else doc["crs"].get("uri", str(doc["crs"]))
    legacy = {
        "type": "TileMatrixSetType",
        "identifier": doc["id"],
        "supportedCRS": crs,
        "tileMatrix": [{
            "type": "TileMatrixType", "identifier": m["id"], "scaleDenominator": m["scaleDenominator"],
            "topLeftCorner": m["pointOfOrigin"], "tileWidth": m["tileWidth"], "tileHeight": m["tileHeight"],
            "matrixWidth": m["matrixWidth"], "matrixHeight": m["matrixHeight"],
        } for m in doc["tileMatrices"]],
    }
    if "boundingBox" in doc:
        legacy["boundingBox"] = {"type": "BoundingBoxType", "crs": crs, **doc["boundingBox"]}
    return {**doc, **legacy}


def tile_matrix_limits(tms_id: str, bbox: tuple[float, float, float, float], minzoom: int,
                       maxzoom: int) -> list[dict]:
    """Tile ranges covering the WGS84 ``bbox`` at each zoom (OGC ``tileMatrixSetLimits``)."""
    tms = get_tms(tms_id)
    limits = []
    for z in range(minzoom, maxzoom + 1):
        ul = tms.tile(bbox[0], bbox[3], z)
        lr = tms.tile(bbox[2], bbox[1], z)
        limits.append({"tileMatrix": str(z), "minTileRow": ul.y, "maxTileRow": lr.y,
                       "minTileCol": ul.x, "maxTileCol": lr.x})
    return limits
