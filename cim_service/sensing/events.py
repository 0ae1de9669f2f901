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
EVENT_TYPES = ("observation", "alert", "layer", "reset")
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
                 max_subscribers: int = 200, render_alert: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
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
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

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
                  alert_layers: Iterable[str] | None = None) -> Subscription:
        """A new subscription (already checked by the caller); :class:`TooManySubscribers` beyond the bound."""
        datastreams = list(datastreams)
        if len(self._subs) >= self.max_subscribers:
            raise TooManySubscribers(f"{self.max_subscribers} subscribers")
        sub = Subscription(frozenset(datastreams), frozenset(layers),
                           None if alert_layers is None else frozenset(alert_layers),
                           asyncio.Queue(maxsize=self.queue_size + len(set(datastreams))))
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
        sub.closed.set()

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
        wanted = [ds for ds in observations.parse_notified_ids(payload) if ds in self._by_datastream]
        if wanted:
            self._pending_observations.update(wanted)
            self._wake()

    def _on_alert(self, payload: str) -> None:
        try:
            note = orjson.loads(payload)
            alert_id = int(note["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed %s payload %r", alert_store.CHANNEL, payload[:200])
            return
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
        while self._pending_observations or self._pending_alerts:
            ids, self._pending_observations = sorted(self._pending_observations), set()
            notes, self._pending_alerts = self._pending_alerts, []
            try:
                rows, records = await self.db.run(lambda s, i=ids, n=notes: self._fetch(s, i, n))
            except Exception:  # the database went away: those events are lost, the listener's reset tells
                log.warning("events: reading %d observations and %d alerts failed", len(ids), len(notes),
                            exc_info=True)
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

    @staticmethod
    async def _fetch(session: Session, ids: list[int], notes: list[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        for i in range(0, len(ids), READ_CHUNK):
            rows += await observations.fetch_latest_events(session, ids[i:i + READ_CHUNK])
        records = await alert_store.fetch_alerts_by_id(session, sorted({n["id"] for n in notes})) if notes else {}
        return rows, records


def format_event(event: Event) -> bytes:
    """``event`` in the text/event-stream format: ``id:``, ``event:``, one ``data:`` line of JSON."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), orjson.dumps(event.data))
