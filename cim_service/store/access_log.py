"""``cim_meta.access_log``: every read of a restricted layer or a personal field (who, what, when, from where)."""

from __future__ import annotations

import json

from cim_service.store.db import Database

TABLE = "cim_meta.access_log"
_INSERT = (f"INSERT INTO {TABLE} (principal, role, layer_id, action, fields, detail, client) "
           "VALUES ($1, $2, $3, $4, $5::text[], $6::jsonb, $7)")


async def record(db: Database, *, principal: str, role: str, layer_id: str, action: str, fields: list[str],
                 detail: dict, client: str | None) -> None:
    """Write one access-log row."""
    await db.execute(_INSERT, principal, role, layer_id, action, list(fields),
                     json.dumps(detail, ensure_ascii=False, default=str), client)
