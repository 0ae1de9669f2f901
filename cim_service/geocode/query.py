"""SQL of the geocoder: the standard addresses read into the index, the nearest address, the town of a point.

Identifiers come from the catalog (validated, quoted); values are bound parameters.
"""

from __future__ import annotations

from cim_service.core.catalog import LayerSpec
from cim_service.geocode.index import COLUMNS


def _columns(spec: LayerSpec, prefix: str = "") -> str:
    names = set(spec.field_names)
    return ", ".join(f'{prefix}"{c}"' if c in names else f'NULL::text AS "{c}"' for c in COLUMNS)


def index_sql(spec: LayerSpec) -> str:
    """Every standard address with a geometry: id, the index's columns (NULL when not declared), lon/lat."""
    cols = _columns(spec)
    return (f'SELECT "id", {cols}, ST_X("geom") AS lon, ST_Y("geom") AS lat FROM {spec.qualified_table} '
            f'WHERE "geom" IS NOT NULL')


def nearest_sql(spec: LayerSpec) -> str:
    """The nearest standard address to ($1 lon, $2 lat) within $3 metres (KNN on the GIST index of ``geom``).

    ``<->`` orders by planar degrees on the index; the 8 nearest by it are ranked again by their distance on the
    spheroid, which decides within the radius ($4: the radius as a degree box, a coarse bound for the index).
    """
    cols = _columns(spec, "a.")
    return (
        "WITH pt AS (SELECT ST_SetSRID(ST_MakePoint($1::float8, $2::float8), 4326) AS g), "
        f'near AS (SELECT a."id", {cols}, '
        'ST_X(a."geom") AS lon, ST_Y(a."geom") AS lat, '
        'ST_Distance(a."geom"::geography, pt.g::geography) AS distance_m '
        f'FROM {spec.qualified_table} a, pt WHERE a."geom" && ST_Expand(pt.g, $4::float8) '
        'ORDER BY a."geom" <-> pt.g LIMIT 8) '
        "SELECT * FROM near WHERE distance_m <= $3::float8 ORDER BY distance_m LIMIT 1"
    )


def town_sql(spec: LayerSpec, name_field: str) -> str:
    """The name of the town polygon containing ($1 lon, $2 lat)."""
    return (f'SELECT "{name_field}" AS name FROM {spec.qualified_table} '
            'WHERE ST_Intersects("geom", ST_SetSRID(ST_MakePoint($1::float8, $2::float8), 4326)) LIMIT 1')
