"""``cim_meta.ingest_reject``: the rows a batch refused, with the row number, field and reason."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

TABLE = "cim_meta.ingest_reject"


def write(conn: Connection, batch_id: int, rejects: Iterable[Any]) -> None:
    """COPY rejects (objects with ``row_number``, ``field``, ``reason``, ``raw``) into the batch's rows."""
    cur = conn.connection.driver_connection.cursor()
    with cur.copy(f"COPY {TABLE} (batch_id, row_number, field, reason, raw) FROM STDIN") as cp:
        for r in rejects:
            raw = None if r.raw is None else json.dumps(r.raw, default=str, ensure_ascii=False)
            cp.write_row((batch_id, r.row_number, r.field, r.reason, raw))


def of_batch(conn: Connection, batch_id: int) -> list[Any]:
    """The rejects of one batch, in file order."""
    return list(conn.execute(sa.text(
        f"SELECT row_number, field, reason, raw FROM {TABLE} WHERE batch_id = :id ORDER BY row_number NULLS LAST, id"
    ), {"id": batch_id}).all())
