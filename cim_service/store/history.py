"""Feature history: one table per source layer in schema ``cim_hist``, written by triggers on the layer table.

Contract (stable; indicators over time read it):

- ``cim_hist.<table>`` has every column of ``cim.<table>`` (``id`` = the feature id, ``feature_key``, the
  declared fields, ``geom``, ``geom_3857`` (a plain copy), ``outside_district``, ``batch_id``, ``updated_at``)
  plus ``hist_id`` (identity), ``valid_from`` / ``valid_to`` (timestamptz, half-open ``[from, to)``; the current
  version has ``valid_to IS NULL``), ``op`` (``insert`` | ``update`` | ``delete``) and ``actor``.
- A version row holds the feature's values during ``[valid_from, valid_to)``. An update closes the open version
  (``valid_to`` = the change's time) and adds a new one (``op = 'update'``). A delete closes the open version and
  adds a *tombstone*: the last values with ``op = 'delete'`` and ``valid_from = valid_to`` = the time of the
  delete (an empty interval, so it is never part of a state "as of" an instant).
- The layer as of instant ``T`` is ``valid_from <= T AND (T < valid_to OR valid_to IS NULL)``
  (:func:`as_of_condition`: ``tstzrange(valid_from, valid_to, '[)') @> T``); spatial reads use the GIST index
  on ``geom`` (as-of tiles add a ``geom`` condition to their Web Mercator one) and filter the versions. No
  index covers ``valid_to``, so closing a version is a HOT update (pages are filled to :data:`FILLFACTOR` %).
- The time of a change is the transaction-local setting ``cim.valid_at`` when set (the demo dates its yearly
  loads with it), else the transaction's ``now()``; ``actor`` is the setting ``cim.actor`` (an API key's name for
  edits, ``ingest:<file>`` for loads) or ``db:<user>``. :func:`set_context` sets both for a transaction.
- Rows are written by statement-level AFTER triggers with transition tables on the layer table, in the
  transaction of the change, whoever the writer is (ingest, edits, sensors, SQL). Derived layers (rewritten by
  the indicator engine) have no history.
- ``cim_meta.history_purge`` logs every purge (:func:`purge`); the history of a layer begins at its last purge
  or, never purged, at its first version (:func:`begins`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.core.catalog import Catalog, LayerSpec
from cim_service.store.db import Session

SCHEMA = "cim_hist"
#: history pages keep this share free (percent filled) for the in-place closing of versions
FILLFACTOR = 85
PURGE_TABLE = "cim_meta.history_purge"
#: the trigger columns besides the declared fields, in table order
SYSTEM_BEFORE = ["id", "feature_key"]
SYSTEM_AFTER = ["geom", "geom_3857", "outside_district", "batch_id", "updated_at"]


def has_history(spec: LayerSpec) -> bool:
    """Source layers keep history; derived layers (recomputed outputs) do not."""
    return spec.kind == "source"


def table_name(spec: LayerSpec) -> str:
    """Qualified name of the layer's history table."""
    return f'{SCHEMA}."{spec.table}"'


def _columns(spec: LayerSpec) -> list[str]:
    return [*SYSTEM_BEFORE, *(f.name for f in spec.fields), *SYSTEM_AFTER]


def validity_sql(alias: str = "") -> str:
    """The validity range expression of a version."""
    a = f"{alias}." if alias else ""
    return f"tstzrange({a}valid_from, {a}valid_to, '[)')"


def as_of_condition(at_placeholder: str, alias: str = "") -> str:
    """SQL condition selecting the versions valid at an instant (a bound ``timestamptz`` placeholder)."""
    return f"{validity_sql(alias)} @> {at_placeholder}"


def as_of_source(spec: LayerSpec, at_placeholder: str) -> str:
    """A relation (no alias) with the layer's columns as they were at an instant; query builders select from it."""
    cols = ", ".join(f'"{c}"' for c in _columns(spec))
    return f"(SELECT {cols} FROM {table_name(spec)} WHERE {as_of_condition(at_placeholder)})"


def first_versions_source(spec: LayerSpec) -> str:
    """A relation (no alias) with the layer's columns: every feature ever recorded, in its first version.

    For reads before the history begins: the features it knows of, to be dated by their own fields.
    """
    cols = ", ".join(f'"{c}"' for c in _columns(spec))
    return (f"(SELECT DISTINCT ON (id) {cols} FROM {table_name(spec)} WHERE op <> 'delete' "
            f"ORDER BY id, valid_from, hist_id)")


def unchanged_since(conn: Connection, spec: LayerSpec, instant: datetime | None) -> bool:
    """Tell whether the layer's current rows are its state at ``instant`` (no version began after it); with
    None, whether every feature it ever recorded is current and unchanged (no version ever closed)."""
    if instant is None:
        sql = f"SELECT NOT EXISTS (SELECT 1 FROM {table_name(spec)} WHERE valid_to IS NOT NULL)"
        return bool(conn.execute(sa.text(sql)).scalar())
    sql = f"SELECT NOT EXISTS (SELECT 1 FROM {table_name(spec)} WHERE valid_from > :t)"
    return bool(conn.execute(sa.text(sql), {"t": instant}).scalar())


# -- DDL ------------------------------------------------------------------------------------------------


def sync(conn: Connection, spec: LayerSpec, layer: sa.Table) -> bool:
    """Create or extend the history table and (re)create the layer's triggers. Return True when created."""
    if not has_history(spec):
        return False
    conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    hist = table_name(spec)
    exists = conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": hist}).scalar()
    if not exists:
        defs = []
        for col in layer.columns:
            ddl = col.type.compile(dialect=conn.dialect)
            defs.append(f'"{col.name}" {ddl}')
        # no index covers valid_to and pages keep room (fillfactor): closing a version is a HOT update that
        # touches no index, so an ingest's updates cost one indexed insert each, not two
        conn.execute(sa.text(
            f"CREATE TABLE {hist} (hist_id bigint GENERATED ALWAYS AS IDENTITY, {', '.join(defs)}, "
            f"valid_from timestamptz NOT NULL, valid_to timestamptz, "
            f"op text NOT NULL CHECK (op IN ('insert', 'update', 'delete')), actor text NOT NULL) "
            f"WITH (fillfactor = {FILLFACTOR})"
        ))
        t = spec.table
        conn.execute(sa.text(f'CREATE INDEX "hx_{t}_id" ON {hist} (id, valid_from)'))
        conn.execute(sa.text(f'CREATE INDEX "hx_{t}_from" ON {hist} (valid_from)'))
        # one spatial index: as-of tiles narrow on ``geom`` too (tiles/mvt.py), so every version costs one GIST insert
        conn.execute(sa.text(f'CREATE INDEX "hx_{t}_geom" ON {hist} USING gist (geom)'))
    else:
        have = {r[0] for r in conn.execute(sa.text(
            "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 "
            "AND NOT attisdropped"), {"t": hist})}
        for col in layer.columns:
            if col.name not in have:
                ddl = col.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f'ALTER TABLE {hist} ADD COLUMN "{col.name}" {ddl}'))
        _upgrade_indexes(conn, spec)
    _create_triggers(conn, spec)
    if not exists:
        _seed(conn, spec)
    return not exists


def _upgrade_indexes(conn: Connection, spec: LayerSpec) -> None:
    """Bring a history table made by an earlier layout (validity in the GIST indexes, a primary key) to today's."""
    t, hist = spec.table, table_name(spec)
    defs = dict(conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s "
                                     "AND tablename = :t"), {"s": SCHEMA, "t": t}).all())
    if f"hx_{t}_geom_3857" in defs:
        conn.execute(sa.text(f'DROP INDEX {SCHEMA}."hx_{t}_geom_3857"'))
    if "tstzrange" in defs.get(f"hx_{t}_geom", ""):
        conn.execute(sa.text(f'DROP INDEX {SCHEMA}."hx_{t}_geom"'))
        conn.execute(sa.text(f'CREATE INDEX "hx_{t}_geom" ON {hist} USING gist (geom)'))
    if f"{t}_pkey" in defs:
        conn.execute(sa.text(f'ALTER TABLE {hist} DROP CONSTRAINT "{t}_pkey"'))
        conn.execute(sa.text(f"ALTER TABLE {hist} SET (fillfactor = {FILLFACTOR})"))


def _create_triggers(conn: Connection, spec: LayerSpec) -> None:
    cols = _columns(spec)
    names = ", ".join(f'"{c}"' for c in cols)
    new = ", ".join(f'n."{c}"' for c in cols)
    old = ", ".join(f'o."{c}"' for c in cols)
    hist, layer, fn = table_name(spec), spec.qualified_table, f'{SCHEMA}."record_{spec.table}"'
    conn.execute(sa.text(f"""
CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
  ts timestamptz := coalesce(nullif(current_setting('cim.valid_at', true), '')::timestamptz, now());
  who text := coalesce(nullif(current_setting('cim.actor', true), ''), 'db:' || current_user);
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {hist} ({names}, valid_from, op, actor) SELECT {new}, ts, 'insert', who FROM new_rows n;
  ELSIF TG_OP = 'UPDATE' THEN
    UPDATE {hist} h SET valid_to = greatest(h.valid_from, ts)
      FROM old_rows o WHERE h.id = o.id AND h.valid_to IS NULL;
    INSERT INTO {hist} ({names}, valid_from, op, actor) SELECT {new}, ts, 'update', who FROM new_rows n;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE {hist} h SET valid_to = greatest(h.valid_from, ts)
      FROM old_rows o WHERE h.id = o.id AND h.valid_to IS NULL;
    INSERT INTO {hist} ({names}, valid_from, valid_to, op, actor)
      SELECT {old}, ts, ts, 'delete', who FROM old_rows o;
  ELSIF TG_OP = 'TRUNCATE' THEN
    INSERT INTO {hist} ({names}, valid_from, valid_to, op, actor)
      SELECT {names}, ts, ts, 'delete', who FROM {hist} WHERE valid_to IS NULL;
    UPDATE {hist} SET valid_to = greatest(valid_from, ts) WHERE valid_to IS NULL AND op <> 'delete';
  END IF;
  RETURN NULL;
END
$body$"""))
    t = spec.table
    for event, ref in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                       ("DELETE", "OLD TABLE AS old_rows")):
        name = f'"cim_hist_{t}_{event.lower()}"'
        conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name} ON {layer}"))
        conn.execute(sa.text(f"CREATE TRIGGER {name} AFTER {event} ON {layer} REFERENCING {ref} "
                             f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"))
    name = f'"cim_hist_{t}_truncate"'
    conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name} ON {layer}"))
    conn.execute(sa.text(f"CREATE TRIGGER {name} AFTER TRUNCATE ON {layer} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"))


def _seed(conn: Connection, spec: LayerSpec) -> None:
    """A layer that had rows before its history existed: its history begins now, with those rows."""
    names = ", ".join(f'"{c}"' for c in _columns(spec))
    conn.execute(sa.text(
        f"INSERT INTO {table_name(spec)} ({names}, valid_from, op, actor) "
        f"SELECT {names}, now(), 'insert', 'migration' FROM {spec.qualified_table}"))


def drop_bulk_indexes(conn: Connection, spec: LayerSpec) -> list[str]:
    """Drop the GIST indexes of an empty history table before a big first load; return the DDL recreating them.

    The load's own table does the same (``pipelines.load``): one sorted build beats growing the index row by row.
    """
    if not has_history(spec) or conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table_name(spec)})")).scalar():
        return []
    indexes = conn.execute(sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :schema AND tablename = :table "
        "AND indexdef LIKE '% USING gist %'"), {"schema": SCHEMA, "table": spec.table}).all()
    for name, _ in indexes:
        conn.execute(sa.text(f'DROP INDEX {SCHEMA}."{name}"'))
    return [ddl for _, ddl in indexes]


def set_enabled(conn: Connection, spec: LayerSpec, enabled: bool) -> None:
    """Switch the layer's history triggers on or off (benchmarks compare both; the service never turns it off)."""
    verb = "ENABLE" if enabled else "DISABLE"
    for event in ("insert", "update", "delete", "truncate"):
        conn.execute(sa.text(f'ALTER TABLE {spec.qualified_table} {verb} TRIGGER "cim_hist_{spec.table}_{event}"'))


# -- writers' context --------------------------------------------------------------------------------------


def set_context(conn: Connection, *, actor: str | None = None, valid_at: datetime | None = None) -> None:
    """Set who makes the transaction's changes and (optionally) when they take effect, transaction-locally."""
    if actor is not None:
        conn.execute(sa.text("SELECT set_config('cim.actor', :a, true)"), {"a": actor})
    if valid_at is not None:
        conn.execute(sa.text("SELECT set_config('cim.valid_at', :t, true)"), {"t": valid_at.isoformat()})


SET_CONTEXT_ASYNC = "SELECT set_config('cim.actor', $1, true)"


# -- reads ------------------------------------------------------------------------------------------------


def begins(conn: Connection, spec: LayerSpec) -> datetime | None:
    """Instant the layer's history begins (None: no history yet)."""
    return conn.execute(sa.text(_BEGINS.replace("$1", ":id").replace("{t}", table_name(spec))),
                        {"id": spec.id}).scalar()


_BEGINS = (f"SELECT coalesce((SELECT max(before) FROM {PURGE_TABLE} WHERE layer_id = $1), "
           "(SELECT min(valid_from) FROM {t}))")


def latest_change(conn: Connection, spec: LayerSpec) -> datetime | None:
    """Instant of the layer's last recorded change (None: no history)."""
    if not has_history(spec):
        return None
    return conn.execute(sa.text(f"SELECT max(valid_from) FROM {table_name(spec)}")).scalar()


async def fetch_begins(session: Session, spec: LayerSpec) -> datetime | None:
    """Async :func:`begins` for the service."""
    return await session.fetchval(_BEGINS.replace("{t}", table_name(spec)), spec.id)


def sizes(conn: Connection, catalog: Catalog) -> dict[str, tuple[int, int]]:
    """Total relation size (bytes, indexes included) of each source layer's current and history tables."""
    out = {}
    for spec in catalog:
        if has_history(spec):
            cur, hist = conn.execute(sa.text("SELECT pg_total_relation_size(CAST(:c AS regclass)), "
                                             "pg_total_relation_size(CAST(:h AS regclass))"),
                                     {"c": spec.qualified_table, "h": table_name(spec)}).one()
            out[spec.id] = (int(cur), int(hist))
    return out


# -- purge -------------------------------------------------------------------------------------------------


def purge(conn: Connection, catalog: Catalog, before: datetime, actor: str) -> dict[str, int]:
    """Delete the versions that ended before ``before`` (tombstones included), log the purge; rows per layer.

    States as of ``before`` or later stay complete; the history of each layer then begins at ``before``.
    """
    out: dict[str, int] = {}
    for spec in catalog:
        if not has_history(spec):
            continue
        n = conn.execute(sa.text(f"DELETE FROM {table_name(spec)} WHERE valid_to <= :b"), {"b": before}).rowcount
        conn.execute(sa.text(f"INSERT INTO {PURGE_TABLE} (layer_id, before, rows_deleted, actor) "
                             "VALUES (:id, :b, :n, :a)"), {"id": spec.id, "b": before, "n": n, "a": actor})
        out[spec.id] = int(n)
    return out


def purges(conn: Connection) -> list[dict[str, Any]]:
    """The purge log, newest first."""
    return [dict(r._mapping) for r in conn.execute(sa.text(
        f"SELECT layer_id, before, rows_deleted, actor, at FROM {PURGE_TABLE} ORDER BY at DESC, layer_id"))]
