"""The process-wide hub of pushed changes behind ``GET /events``: one LISTEN connection, many subscribers.

The hub listens through the service's one LISTEN connection (:class:`cim_service.store.versions.VersionListener`,
``listen(channel, callback)``) to three sources:

- ``cim_observations`` (triggers on ``cim_sta.latest``, migration 0006): ids of the datastreams whose latest value
  changed, ≤ 700 a notification. Only the ids somebody subscribed to are read back, by id
  (:func:`cim_service.store.observations.fetch_latest_events`), in one query per round: notifications arriving
  while a read runs are merged into the next round, so a burst of writes costs a few reads, not one each;
- ``cim_alert_changed`` (the alert trigger, migration 0005): the alert's change; its record is read by id
  (:func:`cim_service.store.alerts.fetch_alerts_by_id`) and the notified change, severity, value and time laid
  over it (the record may already be newer);
- the layer versions (``cim_layer_changed``, :meth:`LayerVersions.watch`).

``status`` events (subscribers of ``status=true``) carry the live status of sensing features (``ok``, ``warning``,
``alarm``, ``offline``: the rule of items and tiles, :func:`cim_service.store.observations.fetch_live_statuses`)
when it changes: a feature's first reading, a reading after a silence, a level alert raised or cleared, the
offline sweep's ``offline`` alert. The datastreams notified by either channel are read back, primary ones only,
and compared with the status the hub last saw of each (a reading after more than the offline time counts as a
change: the feature was offline meanwhile). Changes are sent together, at most one ``status`` event every
``status_interval_s`` (the last status of each feature in that time), each naming at most ``status_max``
features of a layer; a layer with more changes in that time is named in ``refetch`` instead (re-read its
tiles), so a storm of readings from 100,000 nodes is a few events a second. What the hub saw is forgotten when
no ``status`` subscriber is left (changes in between were not followed).

Each subscriber has a bounded queue: ``queue_size`` events, plus one per subscribed datastream (one round of
reads gives at most one observation per datastream, so a client that keeps up is never dropped by a burst of
writes). Delivery never waits: a subscriber whose queue is full (it does not read
its stream) is dropped, its queue emptied and replaced by one final ``reset`` event, so a slow client never
holds back the others or the listener. After the LISTEN connection came back from a drop (notifications in
between are lost), every subscriber gets a ``reset`` too: re-read the state, then follow the events again.

Access is decided when subscribing (the route checks the caller against the catalog) and kept on the
subscription: the datastreams it may read, the layers it may read, and the sensing layers whose alerts it may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from cim_service.store import alerts as alert_store
from cim_service.store import observations
from cim_service.store.db import Database, Session
from cim_service.store.versions import VersionListener

log = logging.getLogger(__name__)
EVENT_TYPES = ("observation", "alert", "layer", "status", "reset")
#: most ids read back in one query
READ_CHUNK = 5000


@dataclass(frozen=True)
class Event:
    """One event: its sequence number (the SSE ``id:``), type and JSON body."""

    seq: int
    type: str
    data: dict[str, Any]


@dataclass(eq=False)
class Subscription:
    """What one client subscribed to, and its bounded queue of events."""

    datastreams: frozenset[int]
    layers: frozenset[str]
    alert_layers: frozenset[str] | None  # None: no alerts; else the sensing layers whose alerts it may see
    queue: asyncio.Queue[Event]
    status_layers: frozenset[str] = frozenset()  # the sensing layers whose live status changes it follows
    dropped: bool = False
    slow: bool = False  # dropped for reading too slowly (else: the service stopping)
    delivered: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alerts(self) -> bool:
        """Whether alert changes were subscribed to."""
        return self.alert_layers is not None


class TooManySubscribers(RuntimeError):
    """The hub holds as many subscribers as it may (the route answers 503)."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def observation_body(row: dict[str, Any]) -> dict[str, Any]:
    """The body of an ``observation`` event from a row of :func:`observations.fetch_latest_events`."""
    result = row["result"] if row["result"] is not None else row["result_json"]
    if isinstance(result, (bytes, str)) and row["result"] is None:
        with contextlib.suppress(ValueError):
            result = orjson.loads(result)
    return {"datastream": int(row["datastream_id"]), "result": result,
            "phenomenonTime": _iso(row["phenomenon_time"]), "resultTime": _iso(row["result_time"]),
            "status": row["status"], "layer": row["layer_id"], "feature_id": row["feature_id"]}


class EventHub:
    """Fan-out of the database's notifications to the subscribers of ``/events``."""

    def __init__(self, db: Database, listener: VersionListener, *, queue_size: int = 256,
                 max_subscribers: int = 200, render_alert: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 live: dict[str, str] | None = None, offline_s: float = 3600.0, status_interval_s: float = 0.5,
                 status_max: int = 1000):
        self.db = db
        self.listener = listener
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self.render_alert = render_alert or (lambda row: row)
        self._seq = itertools.count(1)
        self._subs: set[Subscription] = set()
        self._by_datastream: dict[int, set[Subscription]] = {}
        self._pending_observations: set[int] = set()
        self._pending_alerts: list[dict[str, Any]] = []
        self._reader: asyncio.Task | None = None
        self._connections = 0
        self.dropped = 0
        self.sent = 0
        # live status: the live property of each sensing layer, the status (and reception) last seen per primary
        # datastream, the notified datastreams to read, the changes waiting for the next status event
        self.live = dict(live or {})
        self.offline_s = offline_s
        self.status_interval_s = status_interval_s
        self.status_max = status_max
        self._known: dict[int, tuple[str, float | None]] = {}
        self._pending_status: set[int] = set()
        self._changes: dict[str, dict[int, str]] = {}
        self._flusher: asyncio.Task | None = None
        self._last_flush = float("-inf")
        self.status_events = 0

    # -- wiring -------------------------------------------------------------------------------------------------
    def install(self) -> None:
        """Listen through the listener's connection (before it starts)."""
        self.listener.listen(observations.NOTIFY_CHANNEL, self._on_observations)
        self.listener.listen(alert_store.CHANNEL, self._on_alert)
        self.listener.versions.watch(self._on_layer)
        self.listener.on_connect(self._on_connect)

    async def close(self) -> None:
        """End every stream (with a ``reset``) and stop reading."""
        for sub in list(self._subs):
            self._drop(sub, "the service is stopping")
        for task in (self._reader, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    @property
    def subscribers(self) -> int:
        """Subscribers now."""
        return len(self._subs)

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up (events flow)."""
        return self.listener.connected.is_set()

    # -- subscribers --------------------------------------------------------------------------------------------
    def subscribe(self, datastreams: Iterable[int] = (), layers: Iterable[str] = (),
                  alert_layers: Iterable[str] | None = None, status_layers: Iterable[str] = ()) -> Subscription:
        """A new subscription (already checked by the caller); :class:`TooManySubscribers` beyond the bound."""
        datastreams = list(datastreams)
        if len(self._subs) >= self.max_subscribers:
            raise TooManySubscribers(f"{self.max_subscribers} subscribers")
        sub = Subscription(frozenset(datastreams), frozenset(layers),
                           None if alert_layers is None else frozenset(alert_layers),
                           asyncio.Queue(maxsize=self.queue_size + len(set(datastreams))),
                           status_layers=frozenset(x for x in status_layers if x in self.live))
        self._subs.add(sub)
        for ds in sub.datastreams:
            self._by_datastream.setdefault(ds, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (its stream ended)."""
        self._subs.discard(sub)
        for ds in sub.datastreams:
            subs = self._by_datastream.get(ds)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_datastream[ds]
        if not self._status_subscribed():  # nobody follows: what was seen may be stale when somebody comes again
            self._known.clear()
            self._changes.clear()
        sub.closed.set()

    def _status_subscribed(self, layer: str | None = None) -> bool:
        return any(s.status_layers and (layer is None or layer in s.status_layers) for s in self._subs)

    def event(self, type_: str, data: dict[str, Any]) -> Event:
        """A new event with the hub's next sequence number."""
        return Event(next(self._seq), type_, data)

    def _deliver(self, sub: Subscription, event: Event) -> None:
        if sub.dropped:
            return
        try:
            sub.queue.put_nowait(event)
            sub.delivered += 1
            self.sent += 1
        except asyncio.QueueFull:
            self.dropped += 1
            sub.slow = True
            self._drop(sub, f"the client read too slowly: more than {sub.queue.maxsize} events waited")

    def _drop(self, sub: Subscription, reason: str) -> None:
        """Empty ``sub``'s queue, leave one final ``reset`` in it and forget it."""
        if sub.dropped:
            return
        sub.dropped = True
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(self.event("reset", {"reason": reason, "final": True}))
        self.unsubscribe(sub)

    # -- sources ------------------------------------------------------------------------------------------------
    def _on_connect(self) -> None:
        self._connections += 1
        if self._connections == 1:
            return
        self._known.clear()  # notifications were lost: the statuses seen may be stale
        event = self.event("reset", {"reason": "the service's database connection came back: events in between "
                                               "were not seen; re-read the state", "final": False})
        for sub in list(self._subs):
            self._deliver(sub, event)

    def _on_layer(self, layer_id: str, version: int) -> None:
        subs = [s for s in self._subs if layer_id in s.layers]
        if not subs:
            return
        event = self.event("layer", {"layer": layer_id, "version": version})
        for sub in subs:
            self._deliver(sub, event)

    def _on_observations(self, payload: str) -> None:
        ids = observations.parse_notified_ids(payload)
        wanted = [ds for ds in ids if ds in self._by_datastream]
        if wanted:
            self._pending_observations.update(wanted)
        if self._status_subscribed():
            self._pending_status.update(ids)
        if wanted or self._pending_status:
            self._wake()

    def _on_alert(self, payload: str) -> None:
        try:
            note = orjson.loads(payload)
            alert_id = int(note["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed %s payload %r", alert_store.CHANNEL, payload[:200])
            return
        if isinstance(note.get("datastream"), int) and self._status_subscribed(note.get("layer")):
            self._pending_status.add(note["datastream"])  # raised or cleared: the feature's status may change
            self._wake()
        if not any(s.alerts and note.get("layer") in s.alert_layers for s in self._subs):
            return
        # several changes of one alert before the read: each is an event (raised, then escalated...)
        self._pending_alerts.append({**note, "id": alert_id})
        self._wake()

    def _wake(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="cim-events-reader")

    async def _read(self) -> None:
        """Read back what was notified, round after round, until nothing is pending."""
        while self._pending_observations or self._pending_alerts or self._pending_status:
            ids, self._pending_observations = sorted(self._pending_observations), set()
            notes, self._pending_alerts = self._pending_alerts, []
            status_ids, self._pending_status = sorted(self._pending_status), set()
            try:
                rows, records, statuses = await self.db.run(
                    lambda s, i=ids, n=notes, t=status_ids: self._fetch(s, i, n, t))
            except Exception:  # the database went away: those events are lost, the listener's reset tells
                log.warning("events: reading %d observations, %d alerts and %d statuses failed", len(ids),
                            len(notes), len(status_ids), exc_info=True)
                continue
            for row in rows:
                subs = self._by_datastream.get(int(row["datastream_id"]))
                if not subs:
                    continue
                event = self.event("observation", observation_body(row))
                for sub in list(subs):
                    self._deliver(sub, event)
            for note in notes:
                record = records.get(note["id"])
                if record is None:
                    continue
                body = dict(self.render_alert(record))
                body.update({"change": note.get("change"), "severity": note.get("severity", body.get("severity")),
                             "value": note.get("value", body.get("value")), "time": note.get("time")})
                event = self.event("alert", body)
                for sub in [s for s in self._subs if s.alerts and note.get("layer") in s.alert_layers]:
                    self._deliver(sub, event)
            self._note_statuses(statuses)

    async def _fetch(self, session: Session, ids: list[int], notes: list[dict[str, Any]], status_ids: list[int]
                     ) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]], list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        for i in range(0, len(ids), READ_CHUNK):
            rows += await observations.fetch_latest_events(session, ids[i:i + READ_CHUNK])
        records = await alert_store.fetch_alerts_by_id(session, sorted({n["id"] for n in notes})) if notes else {}
        statuses: list[dict[str, Any]] = []
        for i in range(0, len(status_ids), READ_CHUNK):
            statuses += await observations.fetch_live_statuses(session, status_ids[i:i + READ_CHUNK], self.live,
                                                               self.offline_s)
        return rows, records, statuses

    # -- live status ----------------------------------------------------------------------------------------------
    def _note_statuses(self, rows: list[dict[str, Any]]) -> None:
        """Keep the statuses read that changed for the next ``status`` event."""
        changed = False
        followed = frozenset().union(*(s.status_layers for s in self._subs))
        for row in rows:
            ds, status, received = int(row["datastream_id"]), row["status"], row["received"]
            layer, fid = row["layer_id"], row["feature_id"]
            if fid is None or layer not in followed:
                continue
            before = self._known.get(ds)
            self._known[ds] = (status, received)
            if before is not None and before[0] == status:
                gap = None if before[1] is None or received is None else received - before[1]
                if gap is None or gap <= row["silence"]:
                    continue  # the same status, and no silence long enough to be offline in between
            self._changes.setdefault(layer, {})[int(fid)] = status
            changed = True
        if not changed or (self._flusher is not None and not self._flusher.done()):
            return  # nothing new, or a status event is due soon
        loop = asyncio.get_running_loop()
        wait = self._last_flush + self.status_interval_s - loop.time()
        if wait <= 0:  # now: right after this round's alert events (one write to the socket with them)
            self._flush_now()
        else:
            self._flusher = loop.create_task(self._flush(wait), name="cim-events-status")

    async def _flush(self, wait: float) -> None:
        """Send the changes kept after ``wait`` seconds (``status_interval_s`` after the last status event)."""
        await asyncio.sleep(wait)
        self._flush_now()

    def _flush_now(self) -> None:
        """Send the changes kept: one ``status`` event per subscriber of their layers."""
        self._last_flush = asyncio.get_running_loop().time()
        changes, self._changes = self._changes, {}
        statuses = {layer: {str(fid): st for fid, st in byf.items()} for layer, byf in changes.items()
                    if len(byf) <= self.status_max}
        refetch = sorted(layer for layer, byf in changes.items() if len(byf) > self.status_max)
        for sub in list(self._subs):
            mine = {layer: v for layer, v in statuses.items() if layer in sub.status_layers}
            again = [layer for layer in refetch if layer in sub.status_layers]
            if mine or again:
                self.status_events += 1
                self._deliver(sub, self.event("status", {"statuses": mine, "refetch": again}))


def format_event(event: Event) -> bytes:
    """``event`` in the text/event-stream format: ``id:``, ``event:``, one ``data:`` line of JSON."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), orjson.dumps(event.data))
