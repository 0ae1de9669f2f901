"""``status`` events of the ``/events`` hub on a database of this module's own (its own sensors and rules): a
sensor's first normal reading makes it ``ok``, a level alert raised or cleared changes it, the offline sweep makes
it ``offline`` and a reading after that ``ok`` again; a reading that changes nothing sends nothing; a subscriber of
other things gets none. A storm is bounded: at most one ``status`` event per interval, each naming at most
``status_max`` sensors of a layer (a layer with more is named in ``refetch``), the last status of each sensor
kept. End to end (a reading published to the bridge): the route takes ``status=true`` (any other value is a 400)
and tells only the streams that may read the sensor's layer."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from cim_service.auth import create_api_key
from cim_service.sensing import alerts
from cim_service.sensing.events import EventHub, Subscription
from cim_service.store import alerts as alert_store
from cim_service.store import observations, sta_entities
from cim_service.store.db import Database, libpq_url
from cim_service.store.observations import Observation
from cim_service.store.versions import VersionListener
from tests.events.conftest import RESTRICTED_SENSING
from tests.live.conftest import publish

DEPTH, NODES = "waterlogging_sensors", "iot_nodes"
LIVE = {DEPTH: "water_depth", NODES: "battery"}
RULES = """
rules:
  - {id: water_depth, layer: waterlogging_sensors, property: water_depth, warning: 15, alarm: 30, hysteresis: 2,
     offline_minutes: null}
  - {id: battery, layer: iot_nodes, property: battery, direction: below, warning: 20, alarm: 5,
     offline_minutes: 60}
"""
DEPTH_KEYS = [f"S{i}" for i in range(8)]
NODE_KEYS = ["N1", "N2"]


@pytest.fixture(scope="module")
def world(db, db_url, catalog, settings, tmp_path_factory):
    """Eight depth sensors and two neuron nodes with their datastreams, the module's rules installed:
    ``{"ds": {key: primary datastream}, "fid": {key: feature id}}``."""
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    rules = alerts.load_rules(path, catalog)
    depth, nodes = catalog.get(DEPTH), catalog.get(NODES)
    with db.begin() as conn:
        for i, key in enumerate(DEPTH_KEYS):
            conn.execute(sa.text(f"INSERT INTO {depth.qualified_table} (feature_key, sensor_id, site_kind, geom) "
                                 "VALUES (:k, :k, '小区道路', ST_SetSRID(ST_MakePoint(:x, 31.1), 4326))"),
                         {"k": key, "x": 121.3 + i / 100})
        for i, key in enumerate(NODE_KEYS):
            conn.execute(sa.text(f"INSERT INTO {nodes.qualified_table} (feature_key, node_id, sensor_kind, geom) "
                                 "VALUES (:k, :k, 'environment', ST_SetSRID(ST_MakePoint(:x, 31.2), 4326))"),
                         {"k": key, "x": 121.3 + i / 100})
        sta_entities.sync_layer(conn, depth)
        sta_entities.sync_layer(conn, nodes)
        observations.ensure_partitions_around(conn, datetime.now(UTC), back_days=1)
        alerts.install(conn, catalog, rules, settings.model_copy(update={"database_url": db_url}))
        rows = conn.execute(sa.text(
            "SELECT t.feature_key, d.id, (t.properties ->> 'feature_id')::bigint FROM cim_sta.datastream d "
            "JOIN cim_sta.thing t ON t.id = d.thing_id WHERE d.catalog_key = t.layer_id || '|' || t.feature_key "
            "|| '|' || CASE t.layer_id WHEN :depth THEN 'water_depth' ELSE 'battery' END"), {"depth": DEPTH}).all()
    assert len(rows) == len(DEPTH_KEYS) + len(NODE_KEYS)
    return {"ds": {k: ds for k, ds, _ in rows}, "fid": {k: fid for k, _, fid in rows},
            "t": [datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)]}


def write(db_url: str, world: dict, readings: list[tuple[str, float]]) -> None:
    """Readings (sensor key, value) in one transaction, as the bridge writes a batch (each a second later)."""
    rows = []
    for key, value in readings:
        world["t"][0] += timedelta(seconds=1)
        rows.append(Observation(world["ds"][key], world["t"][0], float(value)))
    with psycopg.connect(libpq_url(db_url)) as conn, conn.transaction():
        observations.write_batch(conn, rows)


async def _hub(url: str, **options) -> tuple[Database, VersionListener, EventHub]:
    db = Database(url, max_size=2)
    await db.open()
    listener = VersionListener(url, ping_seconds=1.0, retry_seconds=0.2)
    hub = EventHub(db, listener, queue_size=64, max_subscribers=10, live=LIVE, offline_s=3600.0, **options)
    hub.install()
    await listener.start()
    assert listener.connected.is_set()
    return db, listener, hub


async def _status(sub: Subscription, timeout: float = 10.0) -> dict:
    """The body of the next ``status`` event of ``sub`` (other events are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        event = await asyncio.wait_for(sub.queue.get(), max(0.01, deadline - time.monotonic()))
        if event.type == "status":
            return event.data


def _none(sub: Subscription) -> list:
    return [e for e in [sub.queue.get_nowait() for _ in range(sub.queue.qsize())] if e.type == "status"]


def test_a_first_reading_a_level_and_the_offline_sweep_are_status_changes(db, db_url, world):
    fid, node = str(world["fid"]["S0"]), str(world["fid"]["N1"])

    async def run() -> None:
        db_, listener, hub = await _hub(db_url, status_interval_s=0.2)
        try:
            sub = hub.subscribe(status_layers=[DEPTH, NODES])
            depth_only = hub.subscribe(status_layers=[DEPTH])
            other = hub.subscribe(alert_layers=[DEPTH, NODES])
            # never reported, then a normal reading: ok
            await asyncio.to_thread(write, db_url, world, [("S0", 2.0)])
            assert await _status(sub) == {"statuses": {DEPTH: {fid: "ok"}}, "refetch": []}
            assert await _status(depth_only) == {"statuses": {DEPTH: {fid: "ok"}}, "refetch": []}
            # a reading that changes nothing: no event
            await asyncio.to_thread(write, db_url, world, [("S0", 3.0)])
            await asyncio.sleep(0.8)
            assert _none(sub) == []
            # a reading raising an alarm, then one clearing it
            await asyncio.to_thread(write, db_url, world, [("S0", 42.0)])
            assert (await _status(sub))["statuses"] == {DEPTH: {fid: "alarm"}}
            await asyncio.to_thread(write, db_url, world, [("S0", 1.0)])
            assert (await _status(sub))["statuses"] == {DEPTH: {fid: "ok"}}
            # a node reports, falls silent past its rule's offline time (an hour: its reception set back two, no
            # trigger firing for it): the sweep's alert makes it offline
            await asyncio.to_thread(write, db_url, world, [("N1", 80.0)])
            assert (await _status(sub))["statuses"] == {NODES: {node: "ok"}}
            with db.begin() as conn:
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
                conn.execute(sa.text("UPDATE cim_sta.latest SET received_at = received_at - interval '2 hours' "
                                     "WHERE datastream_id = :ds"), {"ds": world["ds"]["N1"]})
            await asyncio.sleep(0.3)
            assert _none(sub) == [], "no trigger fired: nothing was notified"
            with db.begin() as conn:
                assert alert_store.sweep(conn, datetime.now(UTC)) == 1
            assert (await _status(sub))["statuses"] == {NODES: {node: "offline"}}
            await asyncio.to_thread(write, db_url, world, [("N1", 81.0)])  # back: the offline alert clears
            assert (await _status(sub))["statuses"] == {NODES: {node: "ok"}}
            await asyncio.sleep(0.5)
            assert all(not body["statuses"].get(NODES) for body in [e.data for e in _none(depth_only)])
            assert _none(other) == [], "a subscriber of alerts only gets no status event"
            assert hub.status_events >= 7
        finally:
            await hub.close()
            await listener.stop()
            await db_.close()

    asyncio.run(run())


def test_a_storm_of_readings_is_a_bounded_number_of_status_events(db_url, world):
    keys = DEPTH_KEYS[1:]  # seven sensors never seen by this hub

    async def run() -> None:
        db_, listener, hub = await _hub(db_url, status_interval_s=0.5, status_max=3)
        try:
            sub = hub.subscribe(status_layers=[DEPTH])
            # more sensors change at once than one event names: the layer is to be read again
            await asyncio.to_thread(write, db_url, world, [(k, 1.0) for k in keys])
            assert await _status(sub) == {"statuses": {}, "refetch": [DEPTH]}
            # one sensor flapping between warning and ok for ~2 s: a few events, the last one its last status
            start = time.monotonic()
            values = [20.0 if i % 2 == 0 else 1.0 for i in range(31)]  # ends on a warning
            for v in values:
                await asyncio.to_thread(write, db_url, world, [(keys[0], v)])
                await asyncio.sleep(0.05)
            got = []
            while True:
                try:
                    got.append(await _status(sub, timeout=1.5))
                except TimeoutError:
                    break
            elapsed = time.monotonic() - start
            fid = str(world["fid"][keys[0]])
            assert got and got[-1] == {"statuses": {DEPTH: {fid: "warning"}}, "refetch": []}, got[-3:]
            assert len(got) <= elapsed / 0.5 + 2, (len(got), elapsed)
            assert all(len(body["statuses"].get(DEPTH, {})) <= 3 for body in got)
            assert not sub.dropped
        finally:
            await hub.close()
            await listener.stop()
            await db_.close()

    asyncio.run(run())


def test_a_published_first_reading_is_a_status_event_for_those_who_may_read_its_layer(open_stream, events_url,
                                                                                       mqtt_url, engine):
    """End to end: ``mosquitto_pub`` → bridge → ``/events?status=true``; the neuron nodes' layer is restricted in
    this service's catalog, so only a stream with a key that may read it hears of its node."""
    bad = httpx.get(f"{events_url}/events", params={"status": "yes"}, timeout=10)
    assert bad.status_code == 400 and "status" in bad.json()["description"]
    head = httpx.head(f"{events_url}/events", params={"status": "true"}, timeout=10)
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    with engine.connect() as conn:  # a node that never reported (not one of the depth sensors' small pool)
        ds, fid = conn.execute(sa.text(
            f"SELECT d.id, n.id FROM cim.{NODES} n JOIN cim_sta.datastream d "
            f"ON d.catalog_key = '{NODES}|' || n.feature_key || '|battery' WHERE NOT EXISTS "
            "(SELECT 1 FROM cim_sta.latest l WHERE l.datastream_id = d.id) ORDER BY n.id DESC OFFSET 1 LIMIT 1")).one()
    assert RESTRICTED_SENSING == NODES
    officer = {"X-API-Key": create_api_key(engine, "status-officer", "officer")}
    anonymous = open_stream({"status": "true"})
    allowed = open_stream({"status": "true"}, officer)
    publish(mqtt_url, ds, json.dumps({"result": 80.0, "phenomenonTime": datetime.now(UTC).isoformat()}))
    event = allowed.next(lambda e: e["event"] == "status" and str(fid) in e["data"]["statuses"].get(NODES, {}))
    assert event["data"]["statuses"][NODES][str(fid)] == "ok" and event["data"]["refetch"] == []
    assert not [e for e in anonymous.drain(0.8) if e["event"] == "status" and NODES in e["data"]["statuses"]]
