"""OGC API Features Part 2 (CRS): the CRSs the service offers, their axis order and their SQL/Python conversion.

Geometries are stored in EPSG:4326 (lon/lat). Output in a standard CRS is computed in PostgreSQL
(``ST_Transform`` and, for CRSs whose first axis is latitude/northing, ``ST_FlipCoordinates``). The Chinese
web-map offsets GCJ-02 and BD-09 cannot be expressed by PROJ: they are offered as extension CRSs
``urn:cim:crs:gcj02`` and ``urn:cim:crs:bd09`` (longitude, latitude order) and converted in Python with
:func:`cim_service.core.crs.transform_geometry` on the query result.
"""

from __future__ import annotations

from dataclasses import dataclass

from cim_service.errors import InvalidParameter

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
GCJ02_URI = "urn:cim:crs:gcj02"
BD09_URI = "urn:cim:crs:bd09"


@dataclass(frozen=True)
class OutputCrs:
    """One CRS the API serves: URI, SRID, axis order, bbox validity range, Python-side conversion."""

    uri: str
    srid: int
    lat_first: bool = False
    digits: int = 7
    #: ``cim_service.core.crs`` identifier for CRSs PROJ cannot do (GCJ02, BD09), converted from WGS84 in Python
    python_crs: str | None = None
    #: valid bbox range in (x-axis, y-axis) order as (min_first, min_second, max_first, max_second)
    bounds: tuple[float, float, float, float] | None = None

    @property
    def projected(self) -> bool:
        """Tell whether coordinates are metres rather than degrees."""
        return self.srid not in (4326, 4490)


_LONLAT = (-180.0, -90.0, 180.0, 90.0)
_LATLON = (-90.0, -180.0, 90.0, 180.0)
SUPPORTED: dict[str, OutputCrs] = {
    c.uri: c
    for c in (
        OutputCrs(CRS84, 4326, bounds=_LONLAT),
        OutputCrs(EPSG + "4326", 4326, lat_first=True, bounds=_LATLON),
        OutputCrs(EPSG + "4490", 4490, lat_first=True, bounds=_LATLON),
        OutputCrs(EPSG + "3857", 3857, digits=2, bounds=(-20037508.35, -20048966.11, 20037508.35, 20048966.11)),
        OutputCrs(EPSG + "4549", 4549, lat_first=True, digits=3, bounds=(0.0, 0.0, 1.0e7, 1.0e7)),
        OutputCrs(GCJ02_URI, 4326, python_crs="GCJ02", bounds=_LONLAT),
        OutputCrs(BD09_URI, 4326, python_crs="BD09", bounds=_LONLAT),
    )
}
#: short spellings accepted besides the URIs
ALIASES = {
    "crs84": CRS84, "ogc:crs84": CRS84, "urn:ogc:def:crs:ogc:1.3:crs84": CRS84,
    "epsg:4326": EPSG + "4326", "urn:ogc:def:crs:epsg::4326": EPSG + "4326",
    "epsg:4490": EPSG + "4490", "urn:ogc:def:crs:epsg::4490": EPSG + "4490",
    "epsg:3857": EPSG + "3857", "urn:ogc:def:crs:epsg::3857": EPSG + "3857",
    "epsg:4549": EPSG + "4549", "urn:ogc:def:crs:epsg::4549": EPSG + "4549",
    "gcj02": GCJ02_URI, "gcj-02": GCJ02_URI, "bd09": BD09_URI, "bd-09": BD09_URI,
}
CRS_LIST = list(SUPPORTED)


def resolve_crs(value: str | None, parameter: str) -> OutputCrs:
    """Return the supported CRS named by ``value`` (URI or short alias); CRS84 when absent; 400 otherwise."""
    if value is None or not value.strip():
        return SUPPORTED[CRS84]
    text = value.strip().strip("[]")
    if text in SUPPORTED:
        return SUPPORTED[text]
    lowered = text.lower()
    for uri in SUPPORTED:
        if uri.lower() == lowered:
            return SUPPORTED[uri]
    if lowered in ALIASES:
        return SUPPORTED[ALIASES[lowered]]
    raise InvalidParameter(f"parameter {parameter!r}: unsupported CRS {value!r}; supported: {', '.join(CRS_LIST)}")


def geometry_sql(crs: OutputCrs, column: str = '"geom"') -> str:
    """SQL expression of the stored geometry in ``crs`` axis order (Python-side CRSs stay WGS84 here)."""
    if crs.srid == 3857:
        return '"geom_3857"' if column == '"geom"' else f"ST_Transform({column}, 3857)"
    expr = column if crs.srid == 4326 else f"ST_Transform({column}, {crs.srid})"
    return f"ST_FlipCoordinates({expr})" if crs.lat_first else expr


def literal_to_wgs84_sql(crs: OutputCrs, placeholder: str) -> str:
    """SQL turning a geometry literal given in ``crs`` (as EWKB/GeoJSON already parsed) into EPSG:4326."""
    expr = placeholder
    if crs.lat_first:
        expr = f"ST_FlipCoordinates({expr})"
    expr = f"ST_SetSRID({expr}, {crs.srid})"
    return expr if crs.srid == 4326 else f"ST_Transform({expr}, 4326)"


def content_crs_header(crs: OutputCrs) -> str:
    """Value of the ``Content-Crs`` response header."""
    return f"<{crs.uri}>"
