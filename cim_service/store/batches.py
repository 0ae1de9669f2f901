"""``cim_meta.ingest_batch``: one row per ingest (file, hash, source CRS, options, counts, outcome).

A batch is started (``running``) and finished (``committed``) in the ingest's own transaction, so a killed load
leaves no batch behind; the rows it refused are in :mod:`cim_service.store.rejects`.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

TABLE = "cim_meta.ingest_batch"


def _json(value: dict | None) -> str:
    return json.dumps(value or {}, default=str, ensure_ascii=False)


def start(conn: Connection, layer_id: str, file_name: str, sha256: str, source_crs: str,
          options: dict | None) -> int:
    """Insert a ``running`` batch; return its id."""
    return int(conn.execute(
        sa.text(f"""
            INSERT INTO {TABLE} (layer_id, file_name, file_sha256, source_crs, status, options)
            VALUES (:layer, :name, :sha, :crs, 'running', CAST(:options AS jsonb)) RETURNING id
        """),
        {"layer": layer_id, "name": file_name, "sha": sha256, "crs": source_crs, "options": _json(options)},
    ).scalar_one())


def finish(conn: Connection, batch_id: int, *, status: str, counts: dict[str, int], options: dict | None,
           result: dict[str, Any]) -> None:
    """Record a batch's outcome: status, row counts, the options as they stand after reading, and ``result``.

    ``counts`` holds ``read, loaded, inserted, updated, unchanged, rejected, duplicate, outside``; ``result``
    (version, feature count, deleted rows) is kept in ``options._result`` to recognise a repeated load.
    """
    conn.execute(
        sa.text(f"""
            UPDATE {TABLE}
               SET status = :status, rows_read = :read, rows_loaded = :loaded, rows_inserted = :inserted,
                   rows_updated = :updated, rows_unchanged = :unchanged, rows_rejected = :rejected,
                   rows_duplicate = :duplicate, rows_outside = :outside, finished_at = clock_timestamp(),
                   options = CAST(:options AS jsonb) || jsonb_build_object('_result', CAST(:result AS jsonb))
             WHERE id = :id
        """),
        {**counts, "status": status, "id": batch_id, "options": _json(options), "result": _json(result)},
    )


def last_committed(conn: Connection, layer_id: str) -> dict[str, Any] | None:
    """The layer's most recent committed batch (id, hash, CRS, options, rows read and rejected), or None."""
    row = conn.execute(
        sa.text(f"""
            SELECT id, file_sha256, source_crs, options, rows_read, rows_rejected FROM {TABLE}
             WHERE layer_id = :layer AND status = 'committed' ORDER BY id DESC LIMIT 1
        """),
        {"layer": layer_id},
    ).mappings().first()
    return None if row is None else dict(row)


def recent(conn: Connection, layer_id: str | None = None, limit: int = 50) -> list[Any]:
    """Most recent batches first (all layers, or one)."""
    where = "WHERE layer_id = :layer" if layer_id else ""
    return list(conn.execute(sa.text(
        f"""SELECT id, layer_id, file_name, source_crs, status, rows_read, rows_inserted, rows_updated,
                   rows_unchanged, rows_rejected, rows_duplicate, rows_outside, finished_at
              FROM {TABLE} {where} ORDER BY id DESC LIMIT :limit"""
    ), {"layer": layer_id, "limit": limit}).all())


def exists(conn: Connection, batch_id: int) -> bool:
    """Tell whether batch ``batch_id`` exists."""
    return conn.execute(sa.text(f"SELECT 1 FROM {TABLE} WHERE id = :id"), {"id": batch_id}).first() is not None
