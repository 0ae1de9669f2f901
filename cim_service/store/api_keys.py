"""``cim_meta.api_key``: API keys, stored as the sha256 hex of the key with a short prefix to recognise them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.store.db import Database

TABLE = "cim_meta.api_key"


def exists(conn: Connection, name: str) -> bool:
    """Tell whether a key (active or revoked) is named ``name``."""
    return conn.execute(sa.text(f"SELECT 1 FROM {TABLE} WHERE name = :n"), {"n": name}).first() is not None


def insert(conn: Connection, name: str, prefix: str, key_hash: str, role: str) -> None:
    """Store a new key."""
    conn.execute(sa.text(f"INSERT INTO {TABLE} (name, key_prefix, key_hash, role) VALUES (:n, :p, :h, :r)"),
                 {"n": name, "p": prefix, "h": key_hash, "r": role})


def listing(conn: Connection) -> list[dict[str, Any]]:
    """Every key's name, prefix, role, creation and revocation time (never the hash)."""
    rows = conn.execute(sa.text(
        f"SELECT name, key_prefix, role, created_at, revoked_at FROM {TABLE} ORDER BY created_at, name"
    )).mappings().all()
    return [dict(r) for r in rows]


def revoke(conn: Connection, name: str) -> bool:
    """Revoke the active key ``name``; False when there is none."""
    return conn.execute(sa.text(
        f"UPDATE {TABLE} SET revoked_at = now() WHERE name = :n AND revoked_at IS NULL RETURNING id"
    ), {"n": name}).first() is not None


_ACTIVE = f"SELECT name, role FROM {TABLE} WHERE key_hash = $1 AND revoked_at IS NULL"


async def fetch_active(db: Database, key_hash: str) -> dict[str, Any] | None:
    """The active key with this hash (name, role), or None."""
    return await db.fetchrow(_ACTIVE, key_hash)
