"""Read an extruded layer for its 3D Tiles: keys, heights and footprints, with the layer version, in one snapshot."""

from __future__ import annotations

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cim_service.core.catalog import LayerSpec
from cim_service.store import layer_state
from cim_service.tiles3d.build import Features

#: height (m) of a feature with neither a height nor floors
DEFAULT_HEIGHT_M = 3.0


def height_sql(spec: LayerSpec) -> str:
    """SQL expression of a row's extrusion height: the height field, else floors × storey height, else 3 m."""
    assert spec.height_field is not None
    parts = [f'"{spec.height_field}"']
    rule = spec.ingest.height_from_floors
    if rule is not None:
        parts.append(f'"{rule.floors}" * {float(rule.storey_height_m)!r}')
    return f"COALESCE({', '.join(parts)}, {DEFAULT_HEIGHT_M!r})"


def layer_stamp(engine: Engine, spec: LayerSpec) -> tuple[int, str]:
    """The layer's current version and the time it was set (names what a build would read)."""
    with engine.connect() as conn:
        return layer_state.version_stamp(conn, spec.id) or (0, "")


def database_identity(engine: Engine) -> str:
    """Server address and database name: tilesets of different databases never share a cache entry."""
    url = engine.url
    return f"{url.host or ''}:{url.port or ''}/{url.database or ''}"


def read_features(engine: Engine, spec: LayerSpec) -> tuple[tuple[int, str], Features]:
    """Return the layer's version stamp and its features, read in one repeatable-read transaction."""
    sql = sa.text(f"SELECT feature_key, {height_sql(spec)} AS h, ST_AsBinary(geom) AS g "
                  f"FROM {spec.qualified_table} WHERE geom IS NOT NULL AND NOT ST_IsEmpty(geom) ORDER BY id")
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        stamp = layer_state.version_stamp(conn, spec.id) or (0, "")
        rows = conn.execute(sql).all()
    keys = [r[0] for r in rows]
    heights = np.array([max(float(r[1]), 0.1) for r in rows], dtype=float)
    geoms = shapely.from_wkb([bytes(r[2]) for r in rows]) if rows else np.zeros(0, dtype=object)
    return stamp, Features(keys, heights, np.asarray(geoms, dtype=object))
