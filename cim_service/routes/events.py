"""``GET /events``: pushed changes as Server-Sent Events (the hub is ``cim_service.sensing.events``).

Subscriptions are the query: ``datastreams=1,2,…`` (observations: the new latest value of each, its phenomenon
time and status), ``layers=`` (collection ids: a ``layer`` event whenever one's version moves), ``alerts=true``
(``alert`` events: raised, escalated, deescalated, updated, cleared, with the alert's record as ``/alerts`` gives
it), ``status=true`` (``status`` events: the live status of the sensing layers' features the caller may read, when
it changes: ``{"statuses": {layer: {feature id: status}}, "refetch": [layer, …]}``, at most one every
``CIM_EVENTS_STATUS_INTERVAL_S``; a layer with more than ``CIM_EVENTS_STATUS_MAX`` changes in one is in
``refetch``: re-read its tiles). At least one is needed; any other parameter is a 400, as is an unknown or
unreadable datastream or layer (a restricted layer's datastreams and alerts need a key that may read it; without
one they do not exist).

The stream starts with ``retry:`` and a comment, sends ``id:`` with every event, a heartbeat comment every
``CIM_EVENTS_HEARTBEAT_S`` and, when the client reads too slowly (``CIM_EVENTS_QUEUE_SIZE`` events waiting), a
final ``reset`` event, then ends. A reconnection with ``Last-Event-ID`` starts with a ``reset`` (events are not
replayed: re-read the state). More than ``CIM_EVENTS_MAX_SUBSCRIBERS`` streams: 503 with ``Retry-After``.
``HEAD`` answers the same headers (and the same 400s) without opening a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import StreamingResponse

from cim_service.auth import Principal, can_read_layer, get_principal
from cim_service.core.catalog import Catalog
from cim_service.errors import Busy, InvalidParameter, error_responses
from cim_service.metrics import EVENTS_DROPPED, EVENTS_SENT, EVENTS_STREAMS
from cim_service.routes import alerts as alert_routes
from cim_service.sensing.events import EventHub, Subscription, TooManySubscribers, format_event
from cim_service.store import sta_entities

router = APIRouter(tags=["Events"], responses=error_responses(400, 503))
MEDIA_TYPE = "text/event-stream"
#: the query parameter subscribing to alert changes (an API name, not the alert layer's id)
ALERTS_KEY = "alerts"
STATUS_KEY = "status"
PARAMETERS = ("datastreams", "layers", ALERTS_KEY, STATUS_KEY)
MAX_LAYERS = 100
MAX_ID = 2**31 - 1
#: events written to the socket in one send at most (a burst is one write, not hundreds)
BATCH = 100
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def startup(app: FastAPI) -> None:
    """Create the hub on the app's LISTEN connection (before that starts listening)."""
    settings, catalog = app.state.settings, app.state.catalog
    base = settings.public_url.rstrip("/") if settings.public_url else ""
    live = {s.id: s.sensing.live.property for s in catalog.sensing_layers if s.sensing.live is not None}
    hub = EventHub(app.state.db, app.state.listener, queue_size=settings.events_queue_size,
                   max_subscribers=settings.events_max_subscribers,
                   render_alert=lambda row: alert_routes.render(row, catalog, base), live=live,
                   offline_s=settings.sensor_offline_s, status_interval_s=settings.events_status_interval_s,
                   status_max=settings.events_status_max)
    hub.install()
    app.state.events = hub


async def shutdown(app: FastAPI) -> None:
    """End every stream."""
    hub = getattr(app.state, "events", None)
    if hub is not None:
        await hub.close()


def _items(text: str, parameter: str, most: int) -> list[str]:
    items = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not items:
        raise InvalidParameter(f"parameter {parameter!r}: expected comma-separated values")
    if len(items) > most:
        raise InvalidParameter(f"parameter {parameter!r}: at most {most} values ({len(items)} given)")
    return items


def _datastream_ids(text: str, most: int) -> list[int]:
    if len(text) > most * 11 + 10:
        raise InvalidParameter(f"parameter 'datastreams': at most {most} datastream ids")
    ids = []
    for item in _items(text, "datastreams", most):
        if not item.isdigit() or not 0 < int(item) <= MAX_ID:
            raise InvalidParameter(f"parameter 'datastreams': {item[:20]!r} is not a datastream id (1-{MAX_ID})")
        ids.append(int(item))
    return ids


class EventsQuery:
    """The validated subscription of ``GET /events`` (shapes only; existence and access are checked after)."""

    def __init__(
        self,
        request: Request,
        principal: Annotated[Principal, Depends(get_principal)],
        datastreams: Annotated[str | None, Query(description="Datastream ids (comma-separated): their new "
                                                             "observations.")] = None,
        layers: Annotated[str | None, Query(description="Collection ids (comma-separated): their changes.")] = None,
        alerts: Annotated[str | None, Query(description="true: alert changes of the sensing layers the caller "
                                                        "may read.")] = None,
        status: Annotated[str | None, Query(description="true: live status changes of the sensing features the "
                                                        "caller may read.")] = None,
    ):
        params = request.query_params
        unknown = [k for k in params if k not in PARAMETERS]
        if unknown:
            raise InvalidParameter(f"parameter {unknown[0][:40]!r} is not known; subscribe with "
                                   f"{', '.join(PARAMETERS)}")
        repeated = [k for k in PARAMETERS if len(params.getlist(k)) > 1]
        if repeated:
            raise InvalidParameter(f"parameter {repeated[0]!r} is given twice; give one comma-separated list")
        settings = request.app.state.settings
        catalog: Catalog = request.app.state.catalog
        self.principal = principal
        self.datastreams = _datastream_ids(datastreams, settings.events_max_datastreams) \
            if datastreams is not None else []
        self.layers = _items(layers, "layers", MAX_LAYERS) if layers is not None else []
        bad = [x for x in self.layers if x not in catalog or not can_read_layer(catalog.get(x), principal)]
        if bad:
            raise InvalidParameter(f"parameter 'layers': no collection {bad[0][:60]!r}")
        if alerts is not None and alerts not in ("true", "false"):
            raise InvalidParameter(f"parameter 'alerts': {alerts[:20]!r} is not true or false")
        self.alert_layers = [s.id for s in catalog.sensing_layers if can_read_layer(s, principal)] \
            if alerts == "true" else None
        if status is not None and status not in ("true", "false"):
            raise InvalidParameter(f"parameter 'status': {status[:20]!r} is not true or false")
        self.status_layers = [s.id for s in catalog.sensing_layers
                              if s.sensing.live is not None and can_read_layer(s, principal)] \
            if status == "true" else []
        if not self.datastreams and not self.layers and self.alert_layers is None and status != "true":
            raise InvalidParameter("subscribe to something: parameter 'datastreams' (ids), 'layers' (collection "
                                   "ids), 'alerts=true' or 'status=true'")


async def _check_datastreams(request: Request, q: EventsQuery) -> None:
    """400 naming the datastreams that do not exist for the caller (unknown, or of a layer it may not read)."""
    if not q.datastreams:
        return
    catalog: Catalog = request.app.state.catalog
    layers = await request.app.state.db.run(lambda s: sta_entities.datastream_layers(s, q.datastreams))

    def readable(ds: int) -> bool:
        if ds not in layers:
            return False
        layer = layers[ds]
        return layer is None or (layer in catalog and can_read_layer(catalog.get(layer), q.principal))

    missing = [ds for ds in q.datastreams if not readable(ds)]
    if missing:
        shown = ", ".join(str(ds) for ds in missing[:10]) + (", …" if len(missing) > 10 else "")
        raise InvalidParameter(f"parameter 'datastreams': no datastream {shown}")


@router.get("/events", summary="Pushed changes: observations, alerts, sensor statuses, layer changes (SSE)",
            response_class=StreamingResponse,
            responses={200: {"content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
                             "description": "An endless text/event-stream: `observation`, `alert`, `layer`, "
                                            "`status` and `reset` events, each with an `id:`; heartbeat comments."}})
async def events(request: Request, q: Annotated[EventsQuery, Depends()]) -> StreamingResponse:
    """Open a stream of the subscribed changes (see the module's description)."""
    await _check_datastreams(request, q)
    hub: EventHub = request.app.state.events
    if request.scope.get("cim.head"):
        return StreamingResponse(iter(()), media_type=MEDIA_TYPE, headers=HEADERS)
    settings = request.app.state.settings
    try:
        sub = hub.subscribe(q.datastreams, q.layers, q.alert_layers, q.status_layers)
    except TooManySubscribers:
        raise Busy(f"this process streams events to {hub.max_subscribers} clients already; retry later",
                   headers={"Retry-After": "5"}) from None
    resumed = request.headers.get("last-event-id") is not None
    return StreamingResponse(_stream(hub, sub, settings.events_heartbeat_s, settings.events_retry_ms, resumed),
                             media_type=MEDIA_TYPE, headers=HEADERS)


async def _stream(hub: EventHub, sub: Subscription, heartbeat_s: float, retry_ms: int,
                  resumed: bool) -> AsyncIterator[bytes]:
    EVENTS_STREAMS.inc()
    try:
        head = b"retry: %d\n: subscribed to %d datastreams, %d layers, alerts %s\n\n" % (
            retry_ms, len(sub.datastreams), len(sub.layers), b"on" if sub.alerts else b"off")
        if resumed:
            head += format_event(hub.event("reset", {"reason": "reconnected: events are not replayed; re-read "
                                                               "the state", "final": False}))
        yield head
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), heartbeat_s)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            batch, final = [format_event(event)], event.type == "reset" and event.data.get("final")
            EVENTS_SENT.labels(event.type).inc()
            while not final and len(batch) < BATCH and not sub.queue.empty():
                event = sub.queue.get_nowait()
                batch.append(format_event(event))
                EVENTS_SENT.labels(event.type).inc()
                final = event.type == "reset" and event.data.get("final")
            yield b"".join(batch)
            if final:
                if sub.slow:
                    EVENTS_DROPPED.inc()
                return
    finally:
        EVENTS_STREAMS.dec()
        hub.unsubscribe(sub)
