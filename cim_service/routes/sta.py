"""OGC SensorThings API 1.1 (Sensing) at ``/sta/v1.1``: reads, deep-insert writes and the dataArray extension.

Reads are anonymous for Things of public layers and for entities made over the API; Things (and their
Datastreams, Observations, Locations...) of a layer the caller may not read are invisible, as in the features
API. Writes need the ``sensor_writer`` scope (X-API-Key, Bearer, or HTTP Basic with the key as password).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from cim_service.auth import Principal, can_read_layer, get_principal, require_scope
from cim_service.errors import InvalidParameter, NotFound, error_responses
from cim_service.offloop import off_loop
from cim_service.sensing.broker import LocalBroker
from cim_service.sensing.payload import created_json
from cim_service.sta import service
from cim_service.sta.model import ENTITY_SETS
from cim_service.sta.mqtt import EntityPublisher
from cim_service.sta.writes import (
    Created,
    WriteLimits,
    Writer,
    fast_data_array,
    parse_data_arrays,
    write_data_array,
)
from cim_service.store import observations

log = logging.getLogger(__name__)
PREFIX = "/sta/v1.1"
router = APIRouter(prefix=PREFIX, tags=["SensorThings API"])

_STA = "http://www.opengis.net/spec/iot_sensing/1.1/req/"
CONFORMANCE = [
    _STA + "datamodel",
    _STA + "resource-path/resource-path-to-entities",
    _STA + "request-data",
    _STA + "create-update-delete",
    _STA + "data-array/data-array",
    _STA + "create-observations-via-mqtt/observations-creation",
    _STA + "receive-updates-via-mqtt/receive-updates",
]
JSON = "application/json"
WRITER = "sensor_writer"
_ERRORS = error_responses(400, 401, 404, 503)


async def startup(app: FastAPI) -> None:
    """Start the publisher of created entities: on ``CIM_MQTT_URL``, else on the project-local broker when the
    service runs the MQTT bridge and that broker runs (the sensing service starts it, in one process of a home;
    starting it here too would race between workers)."""
    settings = app.state.settings
    app.state.sta_publisher = None
    if not settings.sta_mqtt_publish:
        return
    url = settings.mqtt_url
    if url is None and settings.run_sensor_bridge:
        broker = LocalBroker.from_settings(settings)
        if await asyncio.to_thread(broker.running_port) is not None:
            url = await asyncio.to_thread(broker.url)
        else:
            log.info("no running project-local broker: entities created over HTTP are not published")
    if url:
        app.state.sta_publisher = EntityPublisher(url)
        app.state.sta_publisher.start()


async def shutdown(app: FastAPI) -> None:
    """Stop the publisher."""
    publisher = getattr(app.state, "sta_publisher", None)
    if publisher is not None:
        publisher.stop()


def _publish(request: Request, created: Created, doc: Any, es_name: str) -> None:
    """Publish the created entity and the observations written with it (after the commit)."""
    publisher = request.app.state.sta_publisher
    if publisher is None:
        return
    root = str(request.base_url).rstrip("/")
    publisher.publish(es_name, orjson.dumps(doc))
    for o in created.observations[:10_000]:
        if es_name != "Observations" or o.id != doc.get("@iot.id"):
            publisher.publish("Observations", created_json(o, root))


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


def _hidden(request: Request, principal: Principal) -> list[str]:
    """Ids of the sensing layers the caller may not read (their Things are invisible)."""
    return [s.id for s in request.app.state.catalog.sensing_layers if not can_read_layer(s, principal)]


def _limits(request: Request) -> WriteLimits:
    s = request.app.state.settings
    return WriteLimits(max_future=timedelta(seconds=s.sensor_max_future_s), max_past=timedelta(days=s.sensor_raw_days))


@router.get("", summary="SensorThings landing page", responses=_ERRORS)
@router.get("/", include_in_schema=False)
async def landing(request: Request) -> Response:
    """List the entity sets with their URLs, and the server settings (conformance, MQTT endpoint)."""
    base = _base(request)
    doc = {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
        "serverSettings": {"conformance": CONFORMANCE,
                           _STA + "create-observations-via-mqtt/observations-creation": {
                               "endpoints": [request.app.state.settings.mqtt_url or "mqtt://127.0.0.1"]}},
    }
    return _json(doc)


@router.post("/CreateObservations", summary="Create observations in bulk (dataArray extension)", status_code=201,
             responses=_ERRORS)
async def create_observations(request: Request, principal: Principal = Depends(get_principal)) -> Response:
    """Write ``[{Datastream, components, dataArray}]`` in one transaction (COPY); answer the selfLinks."""
    require_scope(principal, WRITER)
    raw = await request.body()
    limits, base, engine = _limits(request), _base(request), request.app.state.engine

    def run() -> bytes:  # parsing megabytes of JSON is work for the worker thread, not for the event loop
        body = _body(raw)
        now = datetime.now(UTC)
        columns = fast_data_array(body, limits, now)
        prefix = f"{base}/Observations("
        if columns is not None:  # numeric readings: parsed and copied column-wise
            with engine.begin() as conn:
                ids = write_data_array(conn, columns)
            return orjson.dumps([f"{prefix}{i})" for i in ids.tolist()])
        rows = parse_data_arrays(body, limits, now)
        with engine.begin() as conn:
            Writer(conn, limits).write_observations(rows, where="Datastream")
        return orjson.dumps([f"{prefix}{observations.observation_id(o.datastream_id, o.phenomenon_time)})"
                             for o in rows])

    return Response(await off_loop(run), status_code=201, media_type=JSON)


def _body(raw: bytes) -> Any:
    if not raw:
        raise InvalidParameter("the request body is empty; a JSON document is expected")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidParameter("the request body is not valid JSON") from None


def _resource(path: str) -> service.Resource:
    return service.parse_path(path)


@router.get("/{path:path}", summary="Read entities", responses=_ERRORS)
async def read(path: str, request: Request, principal: Principal = Depends(get_principal)) -> Response:
    """Entities, one entity, a property (``/$value``) or references (``/$ref``), with the query options."""
    res = _resource(path)
    settings = request.app.state.settings
    raw = list(request.query_params.multi_items())
    opts = service.query_options(raw, max_top=settings.sta_max_top, default_top=settings.sta_default_top)
    doc, plain = await service.read(request.app.state.db, res, opts, raw, base=_base(request),
                                    hidden=_hidden(request, principal),
                                    request_url=str(request.base_url).rstrip("/") + request.url.path)
    if plain:
        if isinstance(doc, (dict, list)):
            return _json(doc)
        return Response("" if doc is None else str(doc), media_type="text/plain")
    return _json(doc)


async def _visible(request: Request, principal: Principal, es_name: str, ident: int) -> None:
    """404 unless the entity exists and the caller may see it (writes follow the read rules)."""
    res = service.Resource([(es_name, ident)])
    opts = service.query_options([("$select", "@iot.id")], max_top=1, default_top=1)
    await service.read(request.app.state.db, res, opts, [], base="", hidden=_hidden(request, principal),
                       request_url="")


_IMPLIED = {("Things", "Datastreams"): "thing_id", ("Things", "Locations"): "thing_id",
            ("Things", "HistoricalLocations"): "thing_id", ("Locations", "Things"): "location_id",
            ("Locations", "HistoricalLocations"): "location_id", ("Sensors", "Datastreams"): "sensor_id",
            ("ObservedProperties", "Datastreams"): "observed_property_id",
            ("Datastreams", "Observations"): "datastream_id"}


@router.post("/{path:path}", summary="Create an entity (deep insert)", status_code=201, responses=_ERRORS)
async def create(path: str, request: Request, principal: Principal = Depends(get_principal)) -> Response:
    """POST an entity to its set (``/Things``) or to a navigation of its parent (``/Datastreams(1)/Observations``)."""
    require_scope(principal, WRITER)
    res = _resource(path)
    if res.prop or res.ref or len(res.segments) > 2:
        raise NotFound("POST to an entity set or to a navigation property of one entity")
    implied: dict[str, int] = {}
    target = res.segments[-1][0]
    if len(res.segments) == 2:
        (parent, pid), (nav, nid) = res.segments
        key = _IMPLIED.get((parent, nav))
        if key is None or nid is not None or pid is None:
            raise NotFound(f"cannot create {nav} under {parent}")
        await _visible(request, principal, parent, pid)
        implied[key] = pid
        target = ENTITY_SETS[parent].nav(nav).target
    elif res.segments[0][1] is not None:
        raise NotFound("POST to the entity set, not to one entity")
    body = _body(await request.body())
    limits, engine = _limits(request), request.app.state.engine

    def run() -> Created:
        with engine.begin() as conn:
            writer = Writer(conn, limits)
            writer.entity(target, body, "", implied)
            return writer.created

    created = await off_loop(run)
    es_name, ident = next(((e, i) for e, i in created.entities if e == target), created.entities[0])
    link = f"{_base(request)}/{es_name}({ident})"
    opts = service.query_options([], max_top=1, default_top=1)
    doc, _ = await service.read(request.app.state.db, service.Resource([(es_name, ident)]), opts, [],
                                base=_base(request), hidden=[], request_url="")
    _publish(request, created, doc, es_name)
    return _json(doc, 201, headers={"Location": link})


async def _update(path: str, request: Request, principal: Principal) -> Response:
    require_scope(principal, WRITER)
    res = _resource(path)
    if res.prop or res.ref or len(res.segments) != 1 or res.segments[0][1] is None:
        raise NotFound("PATCH one entity: /<EntitySet>(<id>)")
    es_name, ident = res.segments[0]
    await _visible(request, principal, es_name, ident)
    body = _body(await request.body())
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json-patch+json"):
        body = _json_patch_to_merge(body)
    limits, engine = _limits(request), request.app.state.engine

    def run() -> None:
        with engine.begin() as conn:
            Writer(conn, limits).update(es_name, ident, body)

    await off_loop(run)
    opts = service.query_options([], max_top=1, default_top=1)
    doc, _ = await service.read(request.app.state.db, res, opts, [], base=_base(request), hidden=[], request_url="")
    return _json(doc)


def _json_patch_to_merge(ops: Any) -> dict[str, Any]:
    """A JSON Patch of top-level members (``replace``/``add`` of ``/name``...) as a merge document."""
    if not isinstance(ops, list):
        raise InvalidParameter("a JSON Patch body is an array of operations")
    out: dict[str, Any] = {}
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or op.get("op") not in ("replace", "add") or not isinstance(op.get("path"), str):
            raise InvalidParameter(f"JSON Patch operation [{i}]: only 'add' and 'replace' of a member are supported")
        parts = op["path"].split("/")
        if len(parts) != 2 or parts[0] != "" or not parts[1]:
            raise InvalidParameter(f"JSON Patch operation [{i}]: path must name a top-level member (/name)")
        out[parts[1]] = op.get("value")
    return out


@router.patch("/{path:path}", summary="Update an entity", responses=_ERRORS)
async def patch(path: str, request: Request, principal: Principal = Depends(get_principal)) -> Response:
    """Merge the body (or apply a JSON Patch) into one entity."""
    return await _update(path, request, principal)


@router.put("/{path:path}", summary="Update an entity (all members given)", responses=_ERRORS)
async def put(path: str, request: Request, principal: Principal = Depends(get_principal)) -> Response:
    """Update one entity with the members of the body (as PATCH does)."""
    return await _update(path, request, principal)


@router.delete("/{path:path}", summary="Delete an entity", status_code=200, responses=_ERRORS)
async def delete(path: str, request: Request, principal: Principal = Depends(get_principal)) -> Response:
    """Delete one entity and what depends on it (a Thing's Datastreams and their Observations)."""
    require_scope(principal, WRITER)
    res = _resource(path)
    if res.prop or res.ref or len(res.segments) != 1 or res.segments[0][1] is None:
        raise NotFound("DELETE one entity: /<EntitySet>(<id>)")
    es_name, ident = res.segments[0]
    await _visible(request, principal, es_name, ident)
    limits, engine = _limits(request), request.app.state.engine

    def run() -> None:
        with engine.begin() as conn:
            Writer(conn, limits).delete(es_name, ident)

    await off_loop(run)
    return Response(status_code=200)
