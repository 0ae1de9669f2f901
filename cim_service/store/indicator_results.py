"""``cim_meta.indicator_result``: one stored result per indicator or derived output, keyed by its input versions.

A key is ``indicator:<id>`` or ``derived:<output>``; ``inputs`` is ``{layer_id: version}`` of the layers it was
computed from and ``params`` the parameters that shaped it (see ``cim_service.indicators.engine``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.store.db import Session

TABLE = "cim_meta.indicator_result"


def stored(conn: Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Stored results by key (``inputs``, ``params``, ``result``, ``computed_at``, ``duration_ms``)."""
    rows = conn.execute(
        sa.text(f"SELECT key, inputs, params, result, computed_at, duration_ms FROM {TABLE} WHERE key = ANY(:k)"),
        {"k": keys})
    return {r.key: {"inputs": r.inputs, "params": r.params, "result": r.result,
                    "computed_at": r.computed_at, "duration_ms": r.duration_ms} for r in rows}


def store(conn: Connection, key: str, kind: str, inputs: dict[str, int], params: dict[str, Any],
          result: Any, duration_ms: float) -> None:
    """Upsert one result row."""
    conn.execute(
        sa.text(f"""
            INSERT INTO {TABLE} (key, kind, inputs, params, result, computed_at, duration_ms)
            VALUES (:key, :kind, CAST(:inputs AS jsonb), CAST(:params AS jsonb), CAST(:result AS jsonb), now(), :ms)
            ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, inputs = EXCLUDED.inputs,
                params = EXCLUDED.params, result = EXCLUDED.result, computed_at = now(),
                duration_ms = EXCLUDED.duration_ms
        """),
        {"key": key, "kind": kind, "inputs": json.dumps(inputs), "params": json.dumps(params),
         "result": json.dumps(result, ensure_ascii=False), "ms": duration_ms},
    )


_STORED = (f"SELECT key, inputs::text AS inputs, params::text AS params, result::text AS result, computed_at, "
           f"duration_ms FROM {TABLE} WHERE key = ANY($1::text[])")


async def fetch_stored(session: Session, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Stored results by key, as :func:`stored` gives them (for the service's pool)."""
    rows = await session.fetch(_STORED, list(keys))
    return {r["key"]: {"inputs": orjson.loads(r["inputs"]), "params": orjson.loads(r["params"]),
                       "result": orjson.loads(r["result"]), "computed_at": r["computed_at"],
                       "duration_ms": r["duration_ms"]} for r in rows}
