"""The MQTT bridge: SensorThings Observations published to the broker, committed to PostgreSQL in batches.

One bridge per service process (``cim serve``'s lifespan) or as ``cim sensors bridge``. It holds a persistent
MQTT 5 session (client id ``cim-sensor-bridge``, session expiry 7 days, clean start off) subscribed with QoS 1
to ``v1.1/+/Observations`` (one reading a message) and ``v1.1/CreateObservations`` (a dataArray body a message,
:mod:`cim_service.sensing.bulk`) and acknowledges messages by hand (paho ``manual_ack``):

1. the network thread appends each message to a queue;
2. the writer thread takes up to ``CIM_SENSOR_BATCH_SIZE`` of them or ``CIM_SENSOR_BATCH_BYTES`` of payload (or
   what came within ``CIM_SENSOR_BATCH_WAIT_MS``), checks them (:mod:`cim_service.sensing.payload`, the
   datastream's unit and range, a per-datastream token bucket; bulk rows column-wise); the committer thread writes
   each checked batch in one transaction (``observations.write_batch``: one COPY of the numeric readings, one
   upsert of the latest values; the dead letters of the refused ones) while the next one is checked;
3. only after the commit it sends the PUBACKs, then publishes each created Observation (QoS 0) on the
   SensorThings topic ``v1.1/Datastreams(<id>)/Observations`` for subscribers (:mod:`cim_service.sensing.notify`).

So a message the broker has handed over is acknowledged only once it is committed: a crash (kill -9) loses none
(the broker redelivers what was not acknowledged), a broker restart is a reconnect to the same session, and a
database that is away stops the acknowledgements (the batch is retried until the database is back; the broker
holds the rest). A redelivered message already committed has the phenomenon time of its datastream's latest value
and is dropped as a duplicate. The bridge's subscription has MQTT 5 *no local*, so the Observations it
publishes come back to subscribers only, never to itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cim_service.core.settings import Settings
from cim_service.sensing import bulk, notify
from cim_service.sensing import payload as pl
from cim_service.sensing.broker import MqttEndpoint
from cim_service.store import dead_letters, observations, sta_entities
from cim_service.store.db import make_engine
from cim_service.store.dead_letters import DeadLetter
from cim_service.store.observations import Columns, Observation

log = logging.getLogger("cim.sensing.bridge")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(t: datetime | None) -> int:
    """Milliseconds since the Unix epoch (-1: none)."""
    return -1 if t is None else (t - _EPOCH) // timedelta(milliseconds=1)

CLIENT_ID = "cim-sensor-bridge"
SESSION_EXPIRY_S = 7 * 86_400
RECEIVE_MAXIMUM = 65_535
#: a datastream refused as unknown is looked up again after this many seconds
UNKNOWN_TTL_S = 10.0
#: at most one dead letter per datastream and this many seconds for rate-limited readings (all are counted)
RATE_LETTER_EVERY_S = 60.0


@dataclass(slots=True)
class _Msg:
    gen: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float
    dup: bool = False


@dataclass(slots=True)
class _Prepared:
    batch: list[_Msg]
    rows: list[Observation]
    letters: list[DeadLetter]
    rejected: dict[str, int]
    dupes: int
    columns: Columns | None = None


@dataclass
class BridgeStats:
    """Counters of one bridge (also exported to Prometheus by the service)."""

    committed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    batches: int = 0
    db_errors: int = 0
    connects: int = 0
    last_commit_latency_s: float = 0.0


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, burst: float, now: float):
        self.tokens = burst
        self.at = now


class Bridge:
    """MQTT -> PostgreSQL for SensorThings Observations (see the module docstring)."""

    def __init__(self, settings: Settings, database_url: str, mqtt_url: str, *, client_id: str = CLIENT_ID,
                 publish_created: bool = True,
                 on_committed: Callable[[int], None] | None = None,
                 on_rejected: Callable[[str, int], None] | None = None):
        self.settings = settings
        self.endpoint = MqttEndpoint.parse(mqtt_url)
        self.engine = make_engine(database_url, pool_size=2, max_overflow=0)
        self.client_id = client_id
        self.publish_created = publish_created
        self.on_committed = on_committed
        self.on_rejected = on_rejected
        self.stats = BridgeStats()
        self._queue: deque[_Msg] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._gen = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._infos: dict[int, sta_entities.DatastreamInfo] = {}
        self._unknown: dict[int, float] = {}
        self._latest: dict[int, datetime] = {}
        self._days: set[date] = set()
        self._buckets: dict[int, _Bucket] = {}
        self._rate_lettered: dict[int, float] = {}
        self._writer: threading.Thread | None = None
        self._prepared: queue.Queue[_Prepared | None] = queue.Queue(maxsize=2)
        self._client = self._make_client()

    # -- MQTT ---------------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True)
        if self.endpoint.username:
            c.username_pw_set(self.endpoint.username, self.endpoint.password)
        if self.endpoint.tls:
            c.tls_set()
        c.max_queued_messages_set(0)
        c.max_inflight_messages_set(1000)
        c.reconnect_delay_set(min_delay=0.2, max_delay=5)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = lambda *_a: self._subscribed.set()
        return c

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the bridge: %s", reason_code)
            return
        self._gen += 1  # messages of the previous connection are redelivered by the broker: not acknowledged
        self.stats.connects += 1
        opts = SubscribeOptions(qos=1, noLocal=True)
        client.subscribe([(pl.SUBSCRIPTION, opts), (bulk.TOPIC, opts)])
        self._connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("bridge lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        self._queue.append(_Msg(self._gen, msg.mid, msg.qos, msg.topic, msg.payload, time.monotonic(),
                                bool(msg.dup)))
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self, wait_s: float = 10.0) -> Bridge:
        """Load the datastreams, connect to the broker, start the writer; wait up to ``wait_s`` for the session."""
        self._load_state()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=30, clean_start=False,
                                   properties=props)
        self._client.loop_start()
        self._writer = threading.Thread(target=self._write_loop, name="cim-sensor-writer", daemon=True)
        self._writer.start()
        if wait_s:
            self._subscribed.wait(wait_s)
        return self

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until the bridge's subscription is in place (its session then holds every new message)."""
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        """Finish the batch in hand, disconnect (the session keeps the rest), close the database engine."""
        self._stop.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=30)
        self._client.disconnect()
        self._client.loop_stop()
        self.engine.dispose()

    def _load_state(self) -> None:
        while not self._stop.is_set():
            try:
                with self.engine.connect() as conn:
                    self._infos = sta_entities.datastream_infos(conn)
                    self._latest = observations.latest_times(conn.connection.driver_connection)
                    self._days = set(observations.partition_days(conn))
                return
            except sa.exc.OperationalError as exc:
                log.warning("bridge waits for the database: %s", str(exc).splitlines()[0])
                self._stop.wait(1.0)

    # -- the writer ---------------------------------------------------------------------------------------
    def _take(self) -> list[_Msg]:
        limit, max_bytes = self.settings.sensor_batch_size, self.settings.sensor_batch_bytes
        deadline = time.monotonic() + self.settings.sensor_batch_wait_ms / 1000
        batch: list[_Msg] = []
        size = 0
        q = self._queue
        while len(batch) < limit and size < max_bytes:
            while q and len(batch) < limit and size < max_bytes:
                m = q.popleft()
                batch.append(m)
                size += len(m.payload)
            if len(batch) >= limit or size >= max_bytes or self._stop.is_set():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.clear()
            if not q:
                self._wake.wait(left)
        return batch

    def _retrying(self, what: str, n: int, fn: Callable[[], object]) -> bool:
        """Run ``fn`` until it succeeds (False: the bridge stopped first). Database errors are waited out."""
        backoff = 0.2
        while True:
            try:
                fn()
                return True
            except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DBAPIError) as exc:
                self.stats.db_errors += 1
                log.warning("bridge cannot %s %d readings (%s); not acknowledging, retrying", what, n,
                            str(exc).splitlines()[0])
            except Exception:  # noqa: BLE001 - the bridge never stops on a message
                log.exception("bridge failed to %s a batch; retrying", what)
            if self._stop.wait(backoff):
                return False
            backoff = min(backoff * 2, 5.0)

    def _write_loop(self) -> None:
        """Take and check batches; the committer thread writes them (checking overlaps the database's work)."""
        committer = threading.Thread(target=self._commit_loop, name="cim-sensor-committer", daemon=True)
        committer.start()
        try:
            while not self._stop.is_set() or self._queue:
                if self._stop.is_set() and not self._connected.is_set():
                    break
                batch = [m for m in self._take() if m.gen == self._gen]  # older ones come again from the broker
                if not batch:
                    if self._stop.is_set():
                        break
                    continue
                out: list[_Prepared] = []
                if not self._retrying("check", len(batch), lambda b=batch, o=out: o.append(self._prepare(b))):
                    break
                while not self._put(out[0]):
                    if self._stop.is_set() and not committer.is_alive():
                        return
        finally:
            while committer.is_alive() and not self._put(None):
                pass
            committer.join()

    def _put(self, item: _Prepared | None) -> bool:
        try:
            self._prepared.put(item, timeout=0.5)
            return True
        except queue.Full:
            return False

    def _commit_loop(self) -> None:
        while True:
            prepared = self._prepared.get()
            if prepared is None:
                return
            if not self._retrying("commit", len(prepared.batch), lambda p=prepared: self._write(p)):
                return

    def _lookup_unknown(self, ids: set[int]) -> None:
        now = time.monotonic()
        ask = [i for i in ids if i not in self._infos and now - self._unknown.get(i, -1e9) > UNKNOWN_TTL_S]
        if not ask:
            return
        with self.engine.connect() as conn:
            found = sta_entities.datastream_infos(conn, ask)
        self._infos.update(found)
        for i in ask:
            if i not in found:
                self._unknown[i] = now

    def _rate_ok(self, ds: int, now: float) -> bool:
        return self._take_tokens(ds, 1, now) == 1

    def _prepare(self, batch: list[_Msg]) -> _Prepared:
        """Check the messages of a batch: observations to write, dead letters, counts."""
        singles = [m for m in batch if m.topic != bulk.TOPIC]
        p = self._prepare_singles(batch, singles)
        bulks = [m for m in batch if m.topic == bulk.TOPIC]
        if bulks:
            p.columns = self._prepare_bulk(bulks, p)
        return p

    def _infos_of(self, ids: list[int]) -> dict[int, sta_entities.DatastreamInfo]:
        self._lookup_unknown(set(ids))
        return {i: self._infos[i] for i in ids if i in self._infos}

    def _prepare_bulk(self, msgs: list[_Msg], p: _Prepared) -> Columns | None:
        """The rows of the bulk messages of a batch, checked column-wise (see :mod:`cim_service.sensing.bulk`);
        rate-limited per datastream like single readings; duplicates dropped: a row twice in the batch, a row at
        its datastream's latest time, and in a redelivered message (MQTT DUP) the rows already stored."""
        now = datetime.now(UTC)
        max_past = timedelta(days=self.settings.sensor_raw_days)
        max_future = timedelta(seconds=self.settings.sensor_max_future_s)
        parts: list[Columns] = []
        for m in msgs:
            try:
                parsed = bulk.parse(m.payload, self._infos_of, now=now, max_past=max_past, max_future=max_future)
            except sa.exc.DBAPIError:
                raise  # the datastream look-up: the batch is retried when the database is back
            except Exception as exc:  # noqa: BLE001 - a message the reader fails on never stalls the bridge
                log.exception("bridge could not read a bulk message; dead-lettered")
                p.letters.append(DeadLetter(bulk.TOPIC, m.payload, "unreadable", type(exc).__name__))
                p.rejected["unreadable"] = p.rejected.get("unreadable", 0) + 1
                continue
            p.letters.extend(parsed.letters)
            for reason, n in parsed.rejected.items():
                p.rejected[reason] = p.rejected.get(reason, 0) + n
            cols = parsed.columns
            if m.dup and len(cols):
                with self.engine.connect() as conn:
                    stored = observations.existing(conn.connection.driver_connection, cols)
                if stored.any():
                    p.dupes += int(stored.sum())
                    keep = ~stored
                    cols = Columns(cols.datastream[keep], cols.t_ms[keep], cols.result[keep], cols.feature[keep])
            if len(cols):
                parts.append(cols)
        if not parts:
            return None
        cols = Columns(*(np.concatenate([getattr(c, k) for c in parts]) for k in ("datastream", "t_ms", "result",
                                                                                    "feature")))
        # twice in the batch (or already among its single readings), or at the datastream's latest time
        ids = cols.ids()
        _, first = np.unique(ids, return_index=True)
        keep = np.zeros(len(ids), dtype=bool)
        keep[first] = True
        uniq, inverse = np.unique(cols.datastream, return_inverse=True)
        latest_ms = np.array([_ms(self._latest.get(d)) for d in uniq.tolist()], dtype=np.int64)
        keep &= cols.t_ms != latest_ms[inverse]
        if p.rows:
            keep &= ~np.isin(ids, np.array([o.id for o in p.rows], dtype=np.int64))
        p.dupes += int((~keep).sum())
        # the per-datastream token bucket: the first readings of a datastream in the batch take its tokens
        mono = time.monotonic()
        counts = np.bincount(inverse, weights=keep, minlength=len(uniq)).astype(np.int64)
        allowed = np.array([self._take_tokens(d, int(c), mono) for d, c in zip(uniq.tolist(), counts.tolist(),
                                                                               strict=True)], dtype=np.int64)
        order = np.argsort(inverse, kind="stable")
        kept_sorted = keep[order].astype(np.int64)
        starts = np.r_[0, np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1]]
        csum = np.cumsum(kept_sorted)
        rank_sorted = csum - kept_sorted - (csum - kept_sorted)[starts][inverse[order]]
        rank = np.empty_like(rank_sorted)
        rank[order] = rank_sorted
        limited = keep & (rank >= allowed[inverse])
        if limited.any():
            p.rejected["rate_limited"] = p.rejected.get("rate_limited", 0) + int(limited.sum())
            for d in np.unique(cols.datastream[limited]).tolist():
                if mono - self._rate_lettered.get(d, -1e9) >= RATE_LETTER_EVERY_S:
                    self._rate_lettered[d] = mono
                    p.letters.append(DeadLetter(bulk.TOPIC, orjson.dumps({"Datastream": {"@iot.id": d}}),
                                                "rate_limited", f"above {self.settings.sensor_rate_per_s}/s; "
                                                f"later ones in the next {RATE_LETTER_EVERY_S:.0f} s are only "
                                                "counted"))
        keep &= ~limited
        cols = Columns(cols.datastream[keep], cols.t_ms[keep], cols.result[keep], cols.feature[keep])
        if not len(cols):
            return None
        # from here on, a redelivery of these is a duplicate (a failed commit is retried as is)
        uniq, inverse = np.unique(cols.datastream, return_inverse=True)
        newest = np.full(len(uniq), np.iinfo(np.int64).min)
        np.maximum.at(newest, inverse, cols.t_ms)
        for d, t in zip(uniq.tolist(), newest.tolist(), strict=True):
            prev = self._latest.get(d)
            if prev is None or t > _ms(prev):
                self._latest[d] = _EPOCH + timedelta(milliseconds=t)
        return cols

    def _take_tokens(self, ds: int, n: int, now: float) -> int:
        """Up to ``n`` readings of ``ds`` let through by its token bucket."""
        b = self._buckets.get(ds)
        rate, burst = self.settings.sensor_rate_per_s, self.settings.sensor_rate_burst
        if b is None:
            b = self._buckets[ds] = _Bucket(burst, now)
        b.tokens = min(burst, b.tokens + (now - b.at) * rate)
        b.at = now
        k = min(n, int(b.tokens))
        b.tokens -= k
        return k

    def _prepare_singles(self, batch: list[_Msg], singles: list[_Msg]) -> _Prepared:
        dss: list[int | None] = []
        for m in singles:
            try:
                dss.append(pl.datastream_of(m.topic))
            except pl.Rejected:
                dss.append(None)
        self._lookup_unknown({d for d in dss if d is not None})
        now = datetime.now(UTC)
        mono = time.monotonic()
        max_past = timedelta(days=self.settings.sensor_raw_days)
        max_future = timedelta(seconds=self.settings.sensor_max_future_s)
        rows: list[Observation] = []
        letters: list[DeadLetter] = []
        rejected: dict[str, int] = {}
        seen: set[tuple[int, datetime]] = set()
        dupes = 0
        infos, latest = self._infos, self._latest
        for m, ds in zip(singles, dss, strict=True):
            try:
                o = pl.parse(m.topic, m.payload, infos.get(ds) if ds is not None else None, now=now,
                             max_past=max_past, max_future=max_future, ds=ds)
                key = (o.datastream_id, o.phenomenon_time)
                if key in seen or latest.get(ds) == o.phenomenon_time:
                    dupes += 1  # a redelivery of what is committed (or twice in this batch)
                    continue
                if not self._rate_ok(ds, mono):
                    rejected["rate_limited"] = rejected.get("rate_limited", 0) + 1
                    if mono - self._rate_lettered.get(ds, -1e9) >= RATE_LETTER_EVERY_S:
                        self._rate_lettered[ds] = mono
                        letters.append(DeadLetter(m.topic, m.payload, "rate_limited",
                                                  f"above {self.settings.sensor_rate_per_s}/s; later ones in "
                                                  f"the next {RATE_LETTER_EVERY_S:.0f} s are only counted"))
                    continue
                seen.add(key)
                rows.append(o)
            except pl.Rejected as exc:
                rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
                letters.append(DeadLetter(m.topic, m.payload, exc.reason, exc.detail))
        for o in rows:  # from here on, a redelivery of these is a duplicate (a failed commit is retried as is)
            prev = latest.get(o.datastream_id)
            if prev is None or o.phenomenon_time > prev:
                latest[o.datastream_id] = o.phenomenon_time
        return _Prepared(batch, rows, letters, rejected, dupes)

    def _write(self, p: _Prepared) -> None:
        """One transaction: partitions if new days, COPY + latest upsert, dead letters; then the PUBACKs."""
        batch, rows, letters, rejected, dupes = p.batch, p.rows, p.letters, p.rejected, p.dupes
        cols = p.columns
        days = {o.phenomenon_time.date() for o in rows} | (cols.days() if cols is not None else set())
        days -= self._days
        with self.engine.begin() as conn:
            if days:
                observations.ensure_partitions(conn, days)
            pg = conn.connection.driver_connection
            observations.write_batch(pg, rows, cols)
            dead_letters.write(pg, letters)
        self._days |= days
        gen = self._gen
        for m in batch:
            if m.qos and m.gen == gen:
                self._client.ack(m.mid, m.qos)
        if self.publish_created:
            notify.publish_qos0(self._client, ((f"v1.1/Datastreams({o.datastream_id})/Observations",
                                                pl.created_json(o)) for o in rows))
            if cols is not None:
                notify.publish_qos0(self._client, pl.created_columns(cols))
        n = len(rows) + (len(cols) if cols is not None else 0)
        self.stats.batches += 1
        self.stats.committed += n
        self.stats.duplicates += dupes
        self.stats.last_commit_latency_s = time.monotonic() - batch[0].received
        for reason, n in rejected.items():
            self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + n
            if self.on_rejected:
                self.on_rejected(reason, n)
        if self.on_committed and n:
            self.on_committed(n)
