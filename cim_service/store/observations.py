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
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_PGCOPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
#: milliseconds between the Unix epoch and PostgreSQL's (2000-01-01), the origin of binary timestamps
_PG_EPOCH_MS = 946_684_800_000
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: the columns of the numeric rows (one binary COPY built by numpy)
_NUMERIC = "datastream_id, phenomenon_time, result, feature_id"


@dataclass(slots=True)
class Columns:
    """Numeric observations as numpy columns: what the bulk writers (dataArray over HTTP and MQTT) hand over.

    ``datastream`` int32 ids, ``t_ms`` int64 milliseconds since the Unix epoch (UTC), ``result`` float64,
    ``feature`` int64 FeatureOfInterest ids, -1 for none. Row ``i`` is ``Observation(datastream[i],
    t_ms[i], result[i], feature_id=feature[i] or None)``.
    """

    datastream: Any
    t_ms: Any
    result: Any
    feature: Any

    def __len__(self) -> int:
        return len(self.t_ms)

    def days(self) -> set[date]:
        """UTC days of the rows (their partitions)."""
        import numpy as np

        return {date(1970, 1, 1) + timedelta(days=int(d)) for d in np.unique(self.t_ms // 86_400_000)}

    def ids(self) -> Any:
        """The ``@iot.id`` of every row (int64; see :func:`observation_id`)."""
        import numpy as np

        return (self.datastream.astype(np.int64) << TIME_BITS) | (self.t_ms - _PG_EPOCH_MS)


def _simple(o: Observation) -> bool:
    return (o.result is not None and o.result_json is None and o.result_time is None and o.result_quality is None
            and o.extra is None)


def _as_columns(rows: Sequence[Observation]) -> Columns:
    import numpy as np

    n = len(rows)
    return Columns(np.fromiter((o.datastream_id for o in rows), np.int32, n),
                   np.fromiter(((o.phenomenon_time - _UNIX) // _MS for o in rows), np.int64, n),
                   np.fromiter((o.result for o in rows), np.float64, n),
                   np.fromiter((-1 if o.feature_id is None else o.feature_id for o in rows), np.int64, n))


def _concat(parts: list[Columns]) -> Columns:
    import numpy as np

    if len(parts) == 1:
        return parts[0]
    return Columns(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("datastream", "t_ms", "result",
                                                                              "feature")))


def _numeric_copy(cols: Columns) -> bytes:
    """Binary COPY data of (datastream_id, phenomenon_time, result, feature_id), built by numpy in one pass per
    layout (rows with and without a FeatureOfInterest: a NULL field is its length -1 and no bytes)."""
    import numpy as np

    head = [("n", ">i2"), ("l0", ">i4"), ("d", ">i4"), ("l1", ">i4"), ("t", ">i8"), ("l2", ">i4"), ("r", ">f8"),
            ("l3", ">i4")]
    t_us = (cols.t_ms - _PG_EPOCH_MS) * 1000
    has = cols.feature >= 0
    out = [_PGCOPY_HEADER]
    for mask, fields in ((has, [*head, ("f", ">i8")]), (~has, head)):
        k = int(mask.sum())
        if not k:
            continue
        buf = np.empty(k, dtype=np.dtype(fields))
        buf["n"] = 4
        buf["l0"], buf["l1"], buf["l2"] = 4, 8, 8
        buf["d"], buf["t"], buf["r"] = cols.datastream[mask], t_us[mask], cols.result[mask]
        if len(fields) > len(head):
            buf["l3"], buf["f"] = 8, cols.feature[mask]
        else:
            buf["l3"] = -1
        out.append(buf.tobytes())
    out.append(_PGCOPY_TRAILER)
    return b"".join(out)


def _copy_rows(cur: psycopg.Cursor, rows: Sequence[Observation]) -> None:
    with cur.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "timestamptz", "float8", "timestamptz", "int8", "jsonb", "jsonb", "jsonb"])
        for o in rows:
            copy.write_row((o.datastream_id, o.phenomenon_time, o.result, o.result_time, o.feature_id,
                            None if o.result_json is None else Jsonb(o.result_json),
                            None if o.result_quality is None else Jsonb(o.result_quality),
                            None if o.extra is None else Jsonb(o.extra)))


def _newest_numeric(cols: Columns) -> Any:
    """Index of the newest row of each datastream (ties: the later row), ordered by datastream id."""
    import numpy as np

    order = np.lexsort((np.arange(len(cols.t_ms)), cols.t_ms, cols.datastream))
    ds = cols.datastream[order]
    return order[np.r_[ds[1:] != ds[:-1], True]]


def _upsert_latest(cur: psycopg.Cursor, cols: Columns | None, rows: Sequence[Observation]) -> None:
    """One upsert of ``cim_sta.latest`` with the newest reading of each datastream among ``cols`` and ``rows``
    (through a temporary table filled by binary COPY); an older reading than the stored one changes nothing."""
    import numpy as np

    newest: dict[int, Observation] = {}
    for o in rows:
        best = newest.get(o.datastream_id)
        if best is None or o.phenomenon_time >= best.phenomenon_time:
            newest[o.datastream_id] = o
    data = b""
    if cols is not None and len(cols):
        last = _newest_numeric(cols)
        if newest:  # a datastream in both: the newer reading wins (the general rows come later on a tie)
            keep = np.ones(len(last), dtype=bool)
            ds_last = cols.datastream[last]
            for d, o in list(newest.items()):
                i = np.searchsorted(ds_last, d)
                if i < len(ds_last) and ds_last[i] == d:
                    if cols.t_ms[last[i]] > (o.phenomenon_time - _UNIX) // _MS:
                        del newest[d]
                    else:
                        keep[i] = False
            last = last[keep]
        buf = np.empty(len(last), dtype=np.dtype([("n", ">i2"), ("l0", ">i4"), ("d", ">i4"), ("l1", ">i4"),
                                                   ("t", ">i8"), ("l2", ">i4"), ("r", ">f8"), ("l3", ">i4"),
                                                   ("l4", ">i4")]))
        buf["n"], buf["l0"], buf["l1"], buf["l2"], buf["l3"], buf["l4"] = 5, 4, 8, 8, -1, -1
        buf["d"] = cols.datastream[last]
        buf["t"] = (cols.t_ms[last] - _PG_EPOCH_MS) * 1000
        buf["r"] = cols.result[last]
        data = buf.tobytes()
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS latest_in (datastream_id int4, phenomenon_time timestamptz, "
                "result float8, result_json jsonb, result_time timestamptz) ON COMMIT DELETE ROWS")
    if data:
        with cur.copy("COPY latest_in FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(_PGCOPY_HEADER + data + _PGCOPY_TRAILER)
    if newest:
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


def _split(rows: Sequence[Observation], columns: Columns | None) -> tuple[Columns | None, list[Observation]]:
    simple = [o for o in rows if _simple(o)]
    general = [o for o in rows if not _simple(o)] if len(simple) != len(rows) else []
    parts = ([columns] if columns is not None and len(columns) else []) + ([_as_columns(simple)] if simple else [])
    return (_concat(parts) if parts else None), general


def write_batch(conn: psycopg.Connection, rows: Sequence[Observation] = (), columns: Columns | None = None) -> None:
    """Write ``rows`` and ``columns`` in the current transaction of ``conn`` (psycopg, not autocommit).

    The single write path of readings (MQTT bridge, STA POST, dataArray over HTTP and MQTT): numeric readings
    (``columns``, and the ``rows`` holding only a number) go in ONE binary COPY built by numpy; rows with more
    (JSON results, result time, quality, parameters) in a second, row-wise COPY only when there are any; then ONE
    upsert of ``cim_sta.latest`` with the newest reading of each datastream in the batch (its statement-level
    triggers, the alert evaluation among them, run once per batch). The partitions of the rows' days must exist
    (:func:`ensure_partitions`); the caller commits.
    """
    cols, general = _split(rows, columns)
    if cols is None and not general:
        return
    with conn.cursor() as cur:
        if cols is not None:
            with cur.copy(f"COPY {TABLE} ({_NUMERIC}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_numeric_copy(cols))
        if general:
            _copy_rows(cur, general)
        _upsert_latest(cur, cols, general)


def copy_only(conn: psycopg.Connection, rows: Sequence[Observation] = (), columns: Columns | None = None) -> None:
    """The COPY of :func:`write_batch` alone, no latest upsert (the database's own limit, for the benchmarks)."""
    cols, general = _split(rows, columns)
    with conn.cursor() as cur:
        if cols is not None:
            with cur.copy(f"COPY {TABLE} ({_NUMERIC}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_numeric_copy(cols))
        if general:
            _copy_rows(cur, general)


#: the most time ranges :func:`existing` reads (the widest gaps between the rows' times split them)
EXISTING_RANGES = 64
EXISTING_GAP_MS = 60_000


def existing(conn: psycopg.Connection, cols: Columns) -> Any:
    """Mask of the rows of ``cols`` already stored (a redelivered bulk message).

    Read through the BRIN on time: the rows' times are cut at gaps wider than a minute into at most
    :data:`EXISTING_RANGES` ranges (the widest gaps first), one range scan each, so a message holding a day of
    one device's backlog reads the block ranges of its readings, not the whole day's partitions.
    """
    import numpy as np

    if not len(cols):
        return np.zeros(0, dtype=bool)
    t = np.unique(cols.t_ms)
    cuts = np.flatnonzero(np.diff(t) > EXISTING_GAP_MS)  # readings closer than this share a range
    if len(cuts) >= EXISTING_RANGES:  # keep the widest gaps
        gaps = np.diff(t)[cuts]
        cuts = np.sort(cuts[np.argsort(gaps, kind="stable")[-(EXISTING_RANGES - 1):]])
    starts = np.r_[0, cuts + 1]
    ends = np.r_[cuts, len(t) - 1]
    dss = sorted({int(d) for d in np.unique(cols.datastream)})
    found: list[int] = []
    with conn.cursor() as cur:
        for lo, hi in zip(t[starts].tolist(), t[ends].tolist(), strict=True):
            cur.execute(
                f"""
                SELECT cim_sta.observation_id(o.datastream_id, o.phenomenon_time)
                  FROM {TABLE} o
                 WHERE o.phenomenon_time BETWEEN timestamptz 'epoch' + %(lo)s * interval '1 millisecond'
                                             AND timestamptz 'epoch' + %(hi)s * interval '1 millisecond'
                   AND o.datastream_id = ANY(%(ds)s)
                """, {"lo": lo, "hi": hi, "ds": dss})
            found.extend(r[0] for r in cur.fetchall())
    return np.isin(cols.ids(), np.array(found, dtype=np.int64))


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


def delete_datastreams(conn: Connection, datastream_ids: list[int]) -> None:
    """:func:`delete_datastream` for many datastreams, one scan of each table."""
    if not datastream_ids:
        return
    for table in (TABLE, HOURLY, LATEST):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE datastream_id = ANY(:d)"), {"d": list(datastream_ids)})


# -- which features reported in a window (the live indicators) -----------------------------------------------------
def reported_features_sql(*, current: bool) -> str:
    """SQL of the feature keys of a sensing layer whose Thing reported (any datastream) in a time window.

    Binds ``:rep_layer`` (layer id), ``:rep_since`` (exclusive) and ``:rep_until`` (inclusive; timestamptz).
    ``current``: the window ends now, and the latest value of each datastream tells (one row per datastream);
    otherwise the raw readings of the window (BRIN range on the time) and, for compacted days, the hourly
    aggregates of the hours it touches.
    """
    things = (f"JOIN {DATASTREAM} d ON d.id = r.datastream_id JOIN {sta_entities.THING} th ON th.id = d.thing_id "
              "WHERE th.layer_id = :rep_layer")
    if current:
        return (f"SELECT DISTINCT th.feature_key FROM {LATEST} r {things} "
                "AND r.phenomenon_time > :rep_since")
    return (f"""SELECT DISTINCT th.feature_key FROM (
              SELECT DISTINCT datastream_id FROM {TABLE}
               WHERE phenomenon_time > :rep_since AND phenomenon_time <= :rep_until
              UNION
              SELECT datastream_id FROM {HOURLY}
               WHERE hour > CAST(:rep_since AS timestamptz) - interval '1 hour' AND hour <= :rep_until
            ) r {things}""")


def any_reading_until(conn: Connection, until: datetime) -> bool:
    """Tell whether any reading (raw or hourly) is dated at or before ``until`` (did the data plane run yet?)."""
    return bool(conn.execute(sa.text(
        f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE phenomenon_time <= :t) "
        f"OR EXISTS (SELECT 1 FROM {HOURLY} WHERE hour <= :t)"), {"t": until}).scalar_one())


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


async def fetch_live_statuses(session: Session, datastream_ids: Sequence[int], live: dict[str, str],
                              offline_s: float) -> list[dict[str, Any]]:
    """The live status of the sensing features whose primary datastream is one of ``datastream_ids``.

    ``live`` maps each sensing layer to its live property (the catalog's ``sensing.live.property``); a datastream
    that is not a feature's primary one (``<layer>|<feature_key>|<property>``) gives no row. ``status`` is the one
    items and tiles give (:func:`live_status_sql`): ``offline`` when nothing was received for the offline time of
    the property's alert rule (``offline_s`` without one) or ever, or while the offline sweep's alert is active,
    else the active level alert's severity, else ``ok``. ``received`` (epoch seconds, NULL: never) and ``silence``
    (that offline time) come with it.
    """
    if not datastream_ids or not live:
        return []
    layers, props = list(live), [live[k] for k in live]
    rule_silence = alerts.offline_s_sql("lp.layer || '/' || lp.prop")
    return await session.fetch(
        f"SELECT d.id AS datastream_id, th.layer_id, (th.properties ->> 'feature_id')::bigint AS feature_id, "
        f"extract(epoch FROM l.received_at)::float8 AS received, s.silence, "
        f"(CASE WHEN l.received_at IS NULL OR l.received_at < now() - make_interval(secs => s.silence) "
        f"OR {alerts.offline_alert_sql('d.id')} "
        f"THEN 'offline' ELSE coalesce({alerts.level_severity_sql('d.id')}, 'ok') END) AS status "
        f"FROM {DATASTREAM} d JOIN {sta_entities.THING} th ON th.id = d.thing_id "
        f"JOIN unnest($2::text[], $3::text[]) AS lp(layer, prop) ON lp.layer = th.layer_id "
        f"LEFT JOIN {LATEST} l ON l.datastream_id = d.id "
        f"CROSS JOIN LATERAL (SELECT coalesce({rule_silence}, "
        f"$4::float8) AS silence) AS s "
        f"WHERE d.id = ANY($1::int4[]) AND d.catalog_key = th.layer_id || '|' || th.feature_key || '|' || lp.prop",
        list(datastream_ids), layers, props, float(offline_s))
