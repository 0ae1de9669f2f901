"""``cim_sta.observation`` (partitioned by UTC day), ``cim_sta.latest`` and ``cim_sta.observation_hourly``.

Observations are written in batches: one binary COPY into the partitioned table (PostgreSQL routes each row to
its day's partition ``cim_sta.observation_pYYYYMMDD``) and one upsert of the latest value per datastream, in the
same transaction. Partitions are created ahead of time (:func:`ensure_partitions`), by the service at start and
daily, and by a writer that meets a day without one.

The row is kept narrow: 8 columns (a 24-byte tuple header), no stored id and no B-tree; a BRIN index on
``phenomenon_time``. An Observation's ``@iot.id`` is derived, not stored: :func:`observation_id` puts the
datastream id in the high bits and the milliseconds since 2000-01-01 UTC in the low 42 bits (SQL:
``cim_sta.observation_id(datastream_id, phenomenon_time)``). Times are therefore stored to the millisecond, and
(datastream, phenomenon time) identifies an observation; a redelivered message with the time of the datastream's
latest value is dropped as a duplicate by the writer.

Compaction (:func:`compact`) folds the days older than the raw retention into hourly aggregates and drops their
partitions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection

from cim_service.core.catalog import LayerSpec, LiveStatus
from cim_service.store import alerts, sta_entities
from cim_service.store.sta_entities import DATASTREAM

if TYPE_CHECKING:
    from cim_service.store.db import Session

TABLE = "cim_sta.observation"
LATEST = "cim_sta.latest"
HOURLY = "cim_sta.observation_hourly"
SCHEMA = "cim_sta"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TIME_BITS = 42
PARTITION_RE = re.compile(r"^observation_p(\d{8})$")
#: advisory lock serialising partition DDL between processes
PARTITION_LOCK = 7_310_113
COLUMNS = ("datastream_id", "phenomenon_time", "result", "result_time", "feature_id", "result_json",
           "result_quality", "extra")


@dataclass(frozen=True, slots=True)
class Observation:
    """One observation as written (times timezone-aware, truncated to the millisecond)."""

    datastream_id: int
    phenomenon_time: datetime
    result: float | None = None
    result_json: Any = None           # non-numeric result (None when ``result`` holds it)
    result_time: datetime | None = None
    feature_id: int | None = None
    result_quality: Any = None
    extra: dict[str, Any] | None = None

    @property
    def id(self) -> int:
        """The ``@iot.id`` (see :func:`observation_id`)."""
        return observation_id(self.datastream_id, self.phenomenon_time)


def truncate_ms(t: datetime) -> datetime:
    """``t`` in UTC, cut to the millisecond (the stored precision)."""
    t = t.astimezone(UTC)
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


def observation_id(datastream_id: int, phenomenon_time: datetime) -> int:
    """The ``@iot.id`` of an observation: ``datastream_id << 42 | ms since 2000-01-01 UTC``."""
    delta = phenomenon_time.astimezone(UTC) - EPOCH
    ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return (int(datastream_id) << TIME_BITS) | ms


def split_observation_id(obs_id: int) -> tuple[int, datetime]:
    """(datastream id, phenomenon time) of an ``@iot.id``; ValueError for a negative id."""
    if obs_id < 0:
        raise ValueError("observation id must not be negative")
    return obs_id >> TIME_BITS, EPOCH + timedelta(milliseconds=obs_id & ((1 << TIME_BITS) - 1))


def partition_name(day: date) -> str:
    """Name (unqualified) of the partition holding ``day`` (UTC)."""
    return f"observation_p{day:%Y%m%d}"


# -- partitions ------------------------------------------------------------------------------------------------------
def partition_days(conn: Connection) -> list[date]:
    """Days that have a partition, ascending."""
    names = conn.execute(sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'cim_sta.observation'::regclass")).scalars()
    days = []
    for name in names:
        m = PARTITION_RE.match(name)
        if m:
            days.append(datetime.strptime(m.group(1), "%Y%m%d").date())
    return sorted(days)


def ensure_partitions(conn: Connection, days: Iterable[date]) -> list[date]:
    """Create the partitions of ``days`` that are missing; return the days created."""
    wanted = sorted(set(days))
    if not wanted:
        return []
    have = set(partition_days(conn))
    missing = [d for d in wanted if d not in have]
    if not missing:
        return []
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK})
    have = set(partition_days(conn))
    created = []
    for day in missing:
        if day in have:
            continue
        nxt = day + timedelta(days=1)
        conn.execute(sa.text(
            f'CREATE TABLE IF NOT EXISTS {SCHEMA}."{partition_name(day)}" PARTITION OF {TABLE} '
            f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{nxt.isoformat()} 00:00:00+00')"))
        created.append(day)
    return created


def ensure_partitions_around(conn: Connection, now: datetime, *, back_days: int, ahead_days: int = 3) -> list[date]:
    """Partitions from ``back_days`` before ``now`` to ``ahead_days`` after it (the accepted time window)."""
    today = now.astimezone(UTC).date()
    return ensure_partitions(conn, (today + timedelta(days=k) for k in range(-back_days, ahead_days + 1)))


# -- writing -----------------------------------------------------------------------------------------------------
def _copy_rows(cur: psycopg.Cursor, rows: Sequence[Observation]) -> None:
    with cur.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "timestamptz", "float8", "timestamptz", "int8", "jsonb", "jsonb", "jsonb"])
        for o in rows:
            copy.write_row((o.datastream_id, o.phenomenon_time, o.result, o.result_time, o.feature_id,
                            None if o.result_json is None else Jsonb(o.result_json),
                            None if o.result_quality is None else Jsonb(o.result_quality),
                            None if o.extra is None else Jsonb(o.extra)))


def _upsert_latest(cur: psycopg.Cursor, rows: Sequence[Observation]) -> None:
    newest: dict[int, Observation] = {}
    for o in rows:
        best = newest.get(o.datastream_id)
        if best is None or o.phenomenon_time >= best.phenomenon_time:
            newest[o.datastream_id] = o
    # the newest value per datastream goes through a temporary table (binary COPY), then one upsert
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS latest_in (datastream_id int4, phenomenon_time timestamptz, "
                "result float8, result_json jsonb, result_time timestamptz) ON COMMIT DELETE ROWS")
    with cur.copy("COPY latest_in FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "timestamptz", "float8", "jsonb", "timestamptz"])
        for o in newest.values():
            copy.write_row((o.datastream_id, o.phenomenon_time, o.result,
                            None if o.result_json is None else Jsonb(o.result_json), o.result_time))
    cur.execute(
        f"""
        INSERT INTO {LATEST} AS l (datastream_id, phenomenon_time, result, result_json, result_time, received_at)
        SELECT datastream_id, phenomenon_time, result, result_json, result_time, now() FROM latest_in
        ON CONFLICT (datastream_id) DO UPDATE
           SET phenomenon_time = excluded.phenomenon_time, result = excluded.result,
               result_json = excluded.result_json, result_time = excluded.result_time, received_at = now()
         WHERE l.phenomenon_time <= excluded.phenomenon_time
        """)


def write_batch(conn: psycopg.Connection, rows: Sequence[Observation]) -> None:
    """COPY ``rows`` and update the latest values, in the current transaction of ``conn`` (psycopg, not autocommit).

    The partitions of the rows' days must exist (:func:`ensure_partitions`); the caller commits.
    """
    if not rows:
        return
    with conn.cursor() as cur:
        _copy_rows(cur, rows)
        _upsert_latest(cur, rows)


def copy_only(conn: psycopg.Connection, rows: Sequence[Observation]) -> None:
    """COPY ``rows`` alone (the database's own limit, measured by the benchmark beside :func:`write_batch`)."""
    with conn.cursor() as cur:
        _copy_rows(cur, rows)


def latest_times(conn: psycopg.Connection) -> dict[int, datetime]:
    """Datastream id -> phenomenon time of its latest value (the writer's duplicate check after a restart)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT datastream_id, phenomenon_time FROM {LATEST}")
        return dict(cur.fetchall())


# -- reading (tests, benchmarks, operators) -------------------------------------------------------------------------
def count(conn: Connection, datastream_id: int | None = None) -> int:
    """Number of raw observations (of one datastream)."""
    if datastream_id is None:
        return conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
    return conn.execute(sa.text(f"SELECT count(*) FROM {TABLE} WHERE datastream_id = :d"),
                        {"d": datastream_id}).scalar_one()


def fetch(conn: Connection, datastream_id: int) -> list[dict[str, Any]]:
    """Raw observations of one datastream, oldest first, with their ids."""
    rows = conn.execute(sa.text(
        f"SELECT cim_sta.observation_id(datastream_id, phenomenon_time) AS id, {', '.join(COLUMNS)} "
        f"FROM {TABLE} WHERE datastream_id = :d ORDER BY phenomenon_time"), {"d": datastream_id}).mappings()
    return [dict(r) for r in rows]


def latest(conn: Connection, datastream_id: int) -> dict[str, Any] | None:
    """The latest value of one datastream."""
    row = conn.execute(sa.text(f"SELECT * FROM {LATEST} WHERE datastream_id = :d"), {"d": datastream_id}).mappings()
    first = row.first()
    return dict(first) if first else None


def hourly(conn: Connection, datastream_id: int) -> list[dict[str, Any]]:
    """Hourly aggregates of one datastream, oldest first."""
    rows = conn.execute(sa.text(f"SELECT * FROM {HOURLY} WHERE datastream_id = :d ORDER BY hour"),
                        {"d": datastream_id}).mappings()
    return [dict(r) for r in rows]


def table_bytes(conn: Connection) -> dict[str, int]:
    """Bytes on disk of the observation partitions: heap (with TOAST) and indexes, and the row count."""
    row = conn.execute(sa.text(
        "SELECT coalesce(sum(pg_table_size(i.inhrelid)), 0), coalesce(sum(pg_indexes_size(i.inhrelid)), 0) "
        "FROM pg_inherits i WHERE i.inhparent = 'cim_sta.observation'::regclass")).one()
    return {"heap": int(row[0]), "indexes": int(row[1]), "rows": count(conn)}


# -- compaction --------------------------------------------------------------------------------------------------
@dataclass
class CompactionReport:
    """What :func:`compact` did."""

    days_compacted: list[date]
    rows_aggregated: int


def compact(conn: Connection, *, now: datetime, raw_days: int) -> CompactionReport:
    """Fold each day partition older than ``raw_days`` into hourly aggregates and drop it (one transaction each).

    ``conn`` is a SQLAlchemy connection outside a transaction; every day is committed on its own, so an
    interrupted compaction leaves either the day's raw rows or its aggregates, never both or neither.
    """
    cutoff = now.astimezone(UTC).date() - timedelta(days=raw_days)
    with conn.begin():
        days = [d for d in partition_days(conn) if d < cutoff]
    done, total = [], 0
    for day in days:
        part = f'{SCHEMA}."{partition_name(day)}"'
        with conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK})
            n = conn.execute(sa.text(
                f"""
                INSERT INTO {HOURLY} (datastream_id, hour, n, min, max, sum, first, last)
                SELECT datastream_id, date_trunc('hour', phenomenon_time) AS h, count(*), min(result), max(result),
                       sum(result),
                       (array_agg(result ORDER BY phenomenon_time))[1],
                       (array_agg(result ORDER BY phenomenon_time DESC))[1]
                  FROM {part} GROUP BY datastream_id, h
                ON CONFLICT (datastream_id, hour) DO UPDATE
                   SET n = {HOURLY}.n + excluded.n,
                       min = least({HOURLY}.min, excluded.min), max = greatest({HOURLY}.max, excluded.max),
                       sum = coalesce({HOURLY}.sum, 0) + coalesce(excluded.sum, 0),
                       last = excluded.last
                """)).rowcount
            conn.execute(sa.text(f"DROP TABLE {part}"))
        done.append(day)
        total += n
    return CompactionReport(days_compacted=done, rows_aggregated=total)


def drop_hourly_before(conn: Connection, before: datetime) -> int:
    """Delete hourly aggregates older than ``before`` (a retention for the aggregates themselves)."""
    return conn.execute(sa.text(f"DELETE FROM {HOURLY} WHERE hour < :t"), {"t": before}).rowcount


def delete_datastream(conn: Connection, datastream_id: int) -> None:
    """Remove every observation, aggregate and latest value of a datastream (no foreign key: COPY speed)."""
    for table in (TABLE, HOURLY, LATEST):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE datastream_id = :d"), {"d": datastream_id})


def delete_one(conn: Connection, datastream_id: int, phenomenon_time: datetime) -> bool:
    """Delete the observation (datastream, phenomenon time), i.e. one ``@iot.id``; False when there is none."""
    return conn.execute(sa.text(f"DELETE FROM {TABLE} WHERE datastream_id = :d AND phenomenon_time = :t"),
                        {"d": datastream_id, "t": phenomenon_time}).rowcount > 0


def update_one(conn: Connection, datastream_id: int, phenomenon_time: datetime, values: dict[str, Any]) -> bool:
    """Update the result columns of one observation (``result``, ``result_json``, ``result_time``,
    ``result_quality``, ``extra``); the phenomenon time and datastream make its id and stay."""
    allowed = {"result": "float8", "result_json": "jsonb", "result_time": "timestamptz", "result_quality": "jsonb",
               "extra": "jsonb", "feature_id": "int8"}
    if set(values) - set(allowed):
        raise ValueError(f"not writable: {sorted(set(values) - set(allowed))}")
    params = {k: (Jsonb(v) if allowed[k] == "jsonb" and v is not None else v) for k, v in values.items()}
    if not params:
        return conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE datastream_id = :_d "
                                    "AND phenomenon_time = :_t)"),
                            {"_d": datastream_id, "_t": phenomenon_time}).scalar_one()
    sets = ", ".join(f"{k} = CAST(:{k} AS {allowed[k]})" for k in params)
    return conn.execute(sa.text(f"UPDATE {TABLE} SET {sets} WHERE datastream_id = :_d AND phenomenon_time = :_t"),
                        {**params, "_d": datastream_id, "_t": phenomenon_time}).rowcount > 0


# -- columnar writes (the dataArray extension: many numeric readings of few datastreams) -----------------------------
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_PGCOPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
#: microseconds between the Unix epoch and PostgreSQL's (2000-01-01), the origin of binary timestamps
_PG_EPOCH_US = 946_684_800_000_000


def _binary_rows(ds: Any, t_us: Any, result: Any, feature: Any | None) -> bytes:
    """Binary COPY rows of (datastream_id, phenomenon_time, result[, feature_id]) built by numpy in one pass."""
    import numpy as np

    fields = [("n", ">i2"), ("l0", ">i4"), ("d", ">i4"), ("l1", ">i4"), ("t", ">i8"), ("l2", ">i4"), ("r", ">f8")]
    if feature is not None:
        fields += [("l3", ">i4"), ("f", ">i8")]
    buf = np.empty(len(ds), dtype=np.dtype(fields))
    buf["n"] = 4 if feature is not None else 3
    buf["l0"], buf["l1"], buf["l2"] = 4, 8, 8
    buf["d"], buf["t"], buf["r"] = ds, t_us - _PG_EPOCH_US, result
    if feature is not None:
        buf["l3"], buf["f"] = 8, feature
    return buf.tobytes()


def write_columns(conn: psycopg.Connection, ds: Any, t_ms: Any, result: Any, feature: Any) -> None:
    """COPY numeric observations given as numpy columns and upsert the latest values, in ``conn``'s transaction.

    ``ds`` int32 datastream ids, ``t_ms`` int64 milliseconds since the Unix epoch (UTC), ``result`` float64,
    ``feature`` int64 FeatureOfInterest ids with -1 for none (the datastream's). The same rows as
    :func:`write_batch` with ``Observation(ds, t, result, feature_id=...)``, without a Python object per row.
    """
    import numpy as np

    if len(ds) == 0:
        return
    t_us = t_ms.astype(np.int64) * 1000
    has = feature >= 0
    with conn.cursor() as cur:
        for mask, cols in ((has, "datastream_id, phenomenon_time, result, feature_id"),
                           (~has, "datastream_id, phenomenon_time, result")):
            if not mask.any():
                continue
            rows = _binary_rows(ds[mask], t_us[mask], result[mask], feature[mask] if "feature" in cols else None)
            with cur.copy(f"COPY {TABLE} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_PGCOPY_HEADER + rows + _PGCOPY_TRAILER)
        order = np.lexsort((t_ms, ds))  # the newest row of each datastream is the last of its run
        last = order[np.r_[ds[order][1:] != ds[order][:-1], True]]
        newest = [Observation(int(ds[i]), EPOCH + timedelta(milliseconds=int(t_ms[i]) - 946_684_800_000),
                              float(result[i])) for i in last]
        _upsert_latest(cur, newest)


def delete_datastreams(conn: Connection, datastream_ids: list[int]) -> None:
    """:func:`delete_datastream` for many datastreams, one scan of each table."""
    if not datastream_ids:
        return
    for table in (TABLE, HOURLY, LATEST):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE datastream_id = ANY(:d)"), {"d": list(datastream_ids)})


# -- live state of a sensing layer's features (items and tiles join it) ---------------------------------------

#: columns the live join adds to a layer's rows (names no catalog field can take: they start with "__")
LIVE_VALUE, LIVE_TIME, LIVE_AT = '"__live_value"', '"__live_time"', '"__live_at"'
LIVE_LEVEL = '"__live_level"'


def live_join_sql(spec: LayerSpec, feature_key: str, bind: Callable[[Any, str], str]) -> str:
    """``LEFT JOIN`` of a sensing layer's rows to the latest reading of their primary datastream.

    ``feature_key`` is the SQL expression of the row's feature key (the layer table's ``feature_key`` column);
    the primary datastream is the catalog's ``<layer>|<feature_key>|<property>`` (``store.sta_entities``), whose
    latest row gives :data:`LIVE_VALUE`, :data:`LIVE_TIME` (phenomenon time) and :data:`LIVE_AT` (when the
    service received it), and whose active level alert (``store.alerts``) :data:`LIVE_LEVEL`. A feature without a
    reading has NULLs. ``bind(value, cast)`` returns a placeholder.
    """
    live = _live(spec)
    prefix, suffix = bind(f"{spec.id}|", "text"), bind(f"|{live.property}", "text")
    # LATERAL: one index probe per row (catalog_key, then latest's primary key), whatever the row count
    return (f" LEFT JOIN LATERAL (SELECT l.result AS {LIVE_VALUE}, l.phenomenon_time AS {LIVE_TIME}, "
            f"l.received_at AS {LIVE_AT}, {alerts.level_severity_sql('ds.id')} AS {LIVE_LEVEL} "
            f"FROM {DATASTREAM} ds JOIN {LATEST} l ON l.datastream_id = ds.id "
            f'WHERE ds.catalog_key = {prefix} || {feature_key} || {suffix}) AS "__live" ON TRUE')


def live_status_sql(spec: LayerSpec, offline_s: float, bind: Callable[[Any, str], str]) -> str:
    """SQL expression of a joined row's status: ``offline``, ``alarm``, ``warning`` or ``ok``.

    ``offline`` when nothing was received for the offline time of the property's alert rule (``offline_s`` when
    the rule has none, or there is no rule) or ever; else the severity of the datastream's active level alert:
    the alert rules' levels and hysteresis, so the map and ``/alerts`` agree; else ``ok``.
    """
    live = _live(spec)
    silence = f"coalesce({alerts.offline_s_sql(bind(f'{spec.id}/{live.property}', 'text'))}, " \
              f"{bind(offline_s, 'float8')})"
    return (f"(CASE WHEN {LIVE_AT} IS NULL OR {LIVE_AT} < now() - make_interval(secs => {silence}) "
            f"THEN 'offline' ELSE coalesce({LIVE_LEVEL}, 'ok') END)")


def _live(spec: LayerSpec) -> LiveStatus:
    if spec.sensing is None or spec.sensing.live is None:
        raise ValueError(f"layer {spec.id} declares no sensing")
    return spec.sensing.live


# -- pushed changes (the /events hub reads the latest values it was notified of) ----------------------------------

#: the channel of the datastream ids whose latest value changed (triggers of migration 0006)
NOTIFY_CHANNEL = "cim_observations"


def parse_notified_ids(payload: str) -> list[int]:
    """The datastream ids of a ``cim_observations`` payload (comma-separated; anything else is skipped)."""
    out = []
    for part in payload.split(","):
        part = part.strip()
        if part.isdigit() and len(part) <= 10:
            out.append(int(part))
    return out


async def fetch_latest_events(session: Session, datastream_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The latest value of each of ``datastream_ids`` (those that have one), with its datastream's status.

    ``status`` is the severity of the datastream's active level alert (``warning`` / ``alarm``, the rules' levels
    and hysteresis) or ``ok``: the value was just received, so the datastream is not offline. ``layer`` and
    ``feature_id`` name the catalog feature of the datastream's Thing (NULL for entities made over the API).
    """
    return await session.fetch(
        f"SELECT l.datastream_id, l.phenomenon_time, l.result, l.result_json, l.result_time, "
        f"coalesce({alerts.level_severity_sql('l.datastream_id')}, 'ok') AS status, "
        f"th.layer_id, (th.properties ->> 'feature_id')::bigint AS feature_id "
        f"FROM {LATEST} l JOIN {DATASTREAM} d ON d.id = l.datastream_id JOIN {sta_entities.THING} th "
        f"ON th.id = d.thing_id "
        f"WHERE l.datastream_id = ANY($1::int4[])", list(datastream_ids))
