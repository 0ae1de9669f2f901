"""``cim_sta.dead_letter``: MQTT messages the bridge refused, with the reason (kept for operators)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

TABLE = "cim_sta.dead_letter"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused message."""

    topic: str
    payload: bytes
    reason: str          # a short code: not_json, bad_type, unknown_datastream, time_range, unit, rate_limited, ...
    detail: str | None = None
    client: str | None = None


def write(conn: psycopg.Connection, letters: Sequence[DeadLetter]) -> None:
    """Insert ``letters`` in the current transaction of ``conn`` (psycopg)."""
    if not letters:
        return
    with conn.cursor() as cur, cur.copy(
            f"COPY {TABLE} (topic, payload, reason, detail, client) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "bytea", "text", "text", "text"])
        for d in letters:
            copy.write_row((d.topic.replace("\x00", ""), d.payload, d.reason,
                            None if d.detail is None else d.detail.replace("\x00", ""),
                            None if d.client is None else d.client.replace("\x00", "")))


def recent(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters first."""
    rows = conn.execute(sa.text(f"SELECT * FROM {TABLE} ORDER BY id DESC LIMIT :n"), {"n": limit}).mappings()
    return [dict(r) for r in rows]


def count_by_reason(conn: Connection) -> dict[str, int]:
    """Reason -> number of dead letters."""
    return dict(conn.execute(sa.text(f"SELECT reason, count(*) FROM {TABLE} GROUP BY reason")).all())


def purge_before(conn: Connection, before: Any) -> int:
    """Delete dead letters received before ``before``."""
    return conn.execute(sa.text(f"DELETE FROM {TABLE} WHERE received_at < :t"), {"t": before}).rowcount
