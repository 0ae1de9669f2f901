"""``cim_meta.layer_state``: one row per layer with its version, feature count and extent.

Every writer that changes a layer calls :func:`bump_version` in the same transaction as its change: the version
increments, the count and extent are recomputed, and a trigger sends ``NOTIFY cim_layer_changed,
'<layer_id>:<version>'`` (see :mod:`cim_service.store.versions`). Tile caches and the indicator engine key their
results by these versions, so nothing is stale after an ingest.

Synchronous functions take a SQLAlchemy connection (pipelines, indicators, commands); ``fetch_*`` coroutines
take a :class:`cim_service.store.db.Session` of the service's pool.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.store.db import Session

TABLE = "cim_meta.layer_state"
Extent = tuple[float, float, float, float]


def register(conn: Connection, layer_ids: list[str]) -> None:
    """Add a state row (version 0) for each layer that has none."""
    for layer_id in layer_ids:
        conn.execute(sa.text(f"INSERT INTO {TABLE} (layer_id) VALUES (:id) ON CONFLICT (layer_id) DO NOTHING"),
                     {"id": layer_id})


def _bump_statement(qualified_table: str, layer: str) -> str:
    """The UPDATE of a layer's version, count and extent, for the layer named by the placeholder ``layer``."""
    return (f"WITH s AS (SELECT count(*) AS n, ST_Extent(geom) AS e FROM {qualified_table}) "
            f"UPDATE {TABLE} ls SET version = ls.version + 1, feature_count = s.n, minx = ST_XMin(s.e), "
            "miny = ST_YMin(s.e), maxx = ST_XMax(s.e), maxy = ST_YMax(s.e), updated_at = now() "
            f"FROM s WHERE ls.layer_id = {layer}")


def bump_version(conn: Connection, layer_id: str, qualified_table: str) -> int:
    """Record that a layer changed: new version, count and extent; listeners are notified. Return the version."""
    row = conn.execute(sa.text(_bump_statement(qualified_table, ":id") + " RETURNING ls.version"),
                       {"id": layer_id}).first()
    if row is None:
        raise KeyError(f"layer {layer_id!r} is not registered in {TABLE}; run `cim db migrate`")
    return int(row[0])


def bump_sql(qualified_table: str) -> str:
    """The statement of :func:`bump_version` for the layer ``$1`` (text), for SQL run elsewhere (the alert feed's
    trigger, ``store.alerts``)."""
    return _bump_statement(qualified_table, "$1")


def version(conn: Connection, layer_id: str) -> int | None:
    """Current version of one layer (None when it is not registered)."""
    return conn.execute(sa.text(f"SELECT version FROM {TABLE} WHERE layer_id = :id"), {"id": layer_id}).scalar()


def version_stamp(conn: Connection, layer_id: str) -> tuple[int, str] | None:
    """A layer's version and the time it was set (ISO text): together they name one state of the layer."""
    row = conn.execute(sa.text(f"SELECT version, updated_at FROM {TABLE} WHERE layer_id = :id"),
                       {"id": layer_id}).first()
    return None if row is None else (int(row[0]), row[1].isoformat() if row[1] is not None else "")


def versions(conn: Connection) -> dict[str, int]:
    """Current version of every layer."""
    return {r[0]: int(r[1]) for r in conn.execute(sa.text(f"SELECT layer_id, version FROM {TABLE}"))}


def feature_count_sql(layer_id_placeholder: str) -> str:
    """A scalar subquery of a layer's recorded feature count, for statements built elsewhere (items pages)."""
    return f"(SELECT feature_count FROM {TABLE} WHERE layer_id = {layer_id_placeholder})"


# -- the service's reads (async) -------------------------------------------------------------------

_STATES = f"SELECT layer_id, version, feature_count, minx, miny, maxx, maxy, updated_at FROM {TABLE}"
_VERSIONS = f"SELECT layer_id, version FROM {TABLE}"
_EXTENTS = f"SELECT layer_id, minx, miny, maxx, maxy FROM {TABLE} WHERE layer_id = ANY($1::text[])"


async def fetch_states(session: Session) -> dict[str, dict[str, Any]]:
    """Every layer's state row, by layer id."""
    return {r["layer_id"]: dict(r) for r in await session.fetch(_STATES)}


async def fetch_versions(session: Session) -> dict[str, int]:
    """Every layer's current version."""
    return {r["layer_id"]: int(r["version"]) for r in await session.fetch(_VERSIONS)}


async def fetch_extents(session: Session, layer_ids: list[str]) -> dict[str, Extent | None]:
    """Recorded extent (WGS84 minx, miny, maxx, maxy) of each layer; None for an empty or unknown one."""
    rows = {r["layer_id"]: r for r in await session.fetch(_EXTENTS, list(layer_ids))}
    out: dict[str, Extent | None] = {}
    for layer_id in layer_ids:
        r = rows.get(layer_id)
        out[layer_id] = None if r is None or r["minx"] is None else (r["minx"], r["miny"], r["maxx"], r["maxy"])
    return out
