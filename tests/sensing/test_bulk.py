"""The bulk topic ``v1.1/CreateObservations`` on a real Mosquitto and PostGIS, and the single batch writer.

A bulk message is a SensorThings dataArray body: its good rows are committed, its bad rows dead-lettered with
their reason and counted; a kill -9 of the bridge loses no reading the broker accepted and duplicates none (the
redelivered message's stored rows are recognised); the latest value of a datastream is its newest reading
whatever the order of the readings in a batch or between batches.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import sqlalchemy as sa

from cim_service.core import data_array
from cim_service.sensing.broker import MqttEndpoint
from cim_service.store import observations
from cim_service.store.observations import Columns, Observation

from .conftest import mosquitto_pub, wait_for

TOPIC = "v1.1/CreateObservations"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stored(engine, ds_ids, since: datetime) -> list[tuple[int, datetime, float]]:
    """Rows of ``ds_ids`` in the hour from ``since`` (the other sensing tests write within the last 4 hours)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT datastream_id, phenomenon_time, result FROM cim_sta.observation "
            "WHERE datastream_id = ANY(:d) AND phenomenon_time >= :t AND phenomenon_time < :u"),
            {"d": list(ds_ids), "t": since, "u": since + timedelta(hours=1)}).all()]


def test_bulk_message_commits_good_rows_and_dead_letters_bad_ones(bridge_factory, engine, mqtt_url,
                                                                  depth_streams):
    bridge = bridge_factory()
    with engine.connect() as conn:
        started = conn.execute(sa.text("SELECT now()")).scalar_one()
    a, b = depth_streams[2], depth_streams[3]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    good_a = [[_iso(t0 + timedelta(seconds=k)), float(k)] for k in range(300)]
    body = [
        {"Datastream": {"@iot.id": a}, "components": ["phenomenonTime", "result"],
         "dataArray": [*good_a[:150], ["not a time", 1.0], [_iso(t0), "deep"], [_iso(t0 + timedelta(days=9)), 2.0],
                       [_iso(t0 - timedelta(days=400)), 2.0], [_iso(t0), -5.0], [_iso(t0)], *good_a[150:]]},
        # an offset other than Z is read too: 08:00+08:00 is 00:00Z
        {"Datastream": {"@iot.id": b}, "components": ["result", "phenomenonTime"],
         "dataArray": [[4.5, (t0 + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S.250+08:00")], [True, _iso(t0)]]},
        {"Datastream": {"@iot.id": 2147480001}, "components": ["result"], "dataArray": [[1.0], [2.0]]},
        {"Datastream": {"@iot.id": b}, "components": ["result", "resultQuality"], "dataArray": [[1.0, "good"]]},
    ]
    # a SensorThings subscriber of b receives the created Observation (published by the bridge after commit)
    ep = MqttEndpoint.parse(mqtt_url)
    sub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="bulk-created-sub")
    sub.username_pw_set(ep.username, ep.password)
    created: list[dict] = []
    sub.on_message = lambda _c, _u, msg: created.append(orjson.loads(msg.payload))
    sub.on_subscribe = lambda *_a: subscribed.append(True)
    subscribed: list[bool] = []
    sub.connect(ep.host, ep.port)
    sub.subscribe(f"v1.1/Datastreams({b})/Observations", qos=0)
    sub.loop_start()
    wait_for(lambda: subscribed)
    mosquitto_pub(mqtt_url, TOPIC, orjson.dumps(body))
    mosquitto_pub(mqtt_url, TOPIC, b"[{not json")
    mosquitto_pub(mqtt_url, TOPIC, orjson.dumps({"Datastream": {"@iot.id": a}}))
    rows = wait_for(lambda: (r := _stored(engine, [a, b], t0 - timedelta(minutes=1))) and len(r) >= 301 and r)
    assert sorted((d, t, v) for d, t, v in rows if d == a) == [(a, t0 + timedelta(seconds=k), float(k))
                                                               for k in range(300)]
    assert [(t, v) for d, t, v in rows if d == b] == [(t0 + timedelta(milliseconds=250), 4.5)]
    def letters_of_this_test():
        with engine.connect() as conn:
            found = conn.execute(sa.text(
                "SELECT reason, detail, payload FROM cim_sta.dead_letter WHERE topic = :t AND received_at >= :s "
                "ORDER BY id"), {"t": TOPIC, "s": started}).all()
        return found if len(found) >= 12 else None

    letters = wait_for(letters_of_this_test)  # the three messages may be committed in different batches
    with engine.connect() as conn:
        latest = observations.latest(conn, a)
    assert (latest["phenomenon_time"], latest["result"]) == (t0 + timedelta(seconds=299), 299.0)
    wait_for(lambda: created)
    sub.loop_stop()
    sub.disconnect()
    tb = t0 + timedelta(milliseconds=250)
    assert created == [{"@iot.id": observations.observation_id(b, tb),
                        "@iot.selfLink": f"/sta/v1.1/Observations({observations.observation_id(b, tb)})",
                        "phenomenonTime": _iso(tb), "resultTime": _iso(tb), "result": 4.5,
                        "Datastream@iot.navigationLink":
                            f"/sta/v1.1/Observations({observations.observation_id(b, tb)})/Datastream"}]
    reasons = Counter(r.reason for r in letters)
    # row faults: bad time, text result, two times out of the window, out of range (-5 cm), short row, a boolean;
    # an unknown datastream (two rows); a component the bulk topic does not take; not JSON; not an array
    assert reasons == {"bad_type": 6, "time_range": 2, "out_of_range": 1, "unknown_datastream": 2, "not_json": 1}
    by_detail = {r.detail.split(":")[0]: r for r in letters}
    assert orjson.loads(by_detail["[0]/dataArray[150]"].payload)["dataArray"] == [["not a time", 1.0]]
    assert by_detail["[0]/dataArray[154]"].reason == "out_of_range"
    assert bridge.stats.rejected["unknown_datastream"] == 2 and bridge.stats.rejected["time_range"] == 2
    assert bridge.stats.rejected["bad_type"] == 6 and bridge.stats.rejected["not_json"] == 1


class _Publisher:
    """QoS 1 bulk publisher remembering which messages the broker acknowledged."""

    def __init__(self, mqtt_url: str):
        ep = MqttEndpoint.parse(mqtt_url)
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="bulk-kill-pub")
        self.client.username_pw_set(ep.username, ep.password)
        self.client.max_queued_messages_set(0)
        self.acked: set[int] = set()
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked.add(mid)
        self.client.connect(ep.host, ep.port)
        self.client.loop_start()

    def send(self, body: list) -> int:
        return self.client.publish(TOPIC, orjson.dumps(body), qos=1).mid

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _drop_session(mqtt_url: str, client_id: str) -> None:
    """End the persistent session of ``client_id`` (clean start, session expiry 0)."""
    ep = MqttEndpoint.parse(mqtt_url)
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(ep.username, ep.password)
    c.connect(ep.host, ep.port, clean_start=True)
    c.loop_start()
    wait_for(c.is_connected, timeout=10)
    c.disconnect()
    c.loop_stop()


def test_kill_9_of_the_bridge_mid_batch_loses_and_duplicates_no_bulk_reading(demo_database_url, engine,
                                                                             mqtt_url, depth_streams, tmp_path):
    env = {**os.environ, "CIM_DATABASE_URL": demo_database_url, "CIM_MQTT_URL": mqtt_url,
           "CIM_HOME": str(tmp_path), "CIM_SENSOR_RATE_PER_S": "100000", "CIM_SENSOR_RATE_BURST": "100000",
           "CIM_SENSOR_BATCH_WAIT_MS": "50", "CIM_SENSOR_BATCH_BYTES": "20000"}

    def start_bridge() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "cim_service", "sensors", "bridge", "--client-id",
                              "bulk-kill9-bridge", "--no-publish-created"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in p.stdout:
            if "running" in line:
                return p
        raise AssertionError(f"bridge did not start: {p.wait()}")

    streams = depth_streams[4:10]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=9)
    bodies = [[{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
                "dataArray": [[_iso(start + timedelta(seconds=m, milliseconds=k)), float(k % 90)]
                              for k in range(100)]} for ds in streams] for m in range(80)]
    expected = {(ds, start + timedelta(seconds=m, milliseconds=k)) for m in range(80) for ds in streams
                for k in range(100)}
    bridge = start_bridge()
    pub = _Publisher(mqtt_url)
    restarted = None
    try:
        mids = []
        for m, body in enumerate(bodies):
            mids.append(pub.send(body))
            if m == 30:
                # commits are going on (batches of ~20 kB: about one message each): kill inside the stream
                wait_for(lambda: _stored(engine, streams, start), timeout=30)
                bridge.kill()
                bridge.wait()
                restarted = start_bridge()
        wait_for(lambda: pub.acked >= set(mids), timeout=60)
        rows = wait_for(lambda: (r := _stored(engine, streams, start)) and len(r) >= len(expected) and r,
                        timeout=90)
    finally:
        pub.close()
        for p in (bridge, restarted):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        _drop_session(mqtt_url, "bulk-kill9-bridge")  # the broker would queue the session's readings for good
    keys = [(d, t) for d, t, _v in rows]
    assert set(keys) == expected
    assert len(keys) == len(expected), "a redelivered bulk message was written twice"


def test_one_latest_upsert_per_batch_keeps_the_newest_reading(demo_database_url, engine, depth_streams):
    a, b, c = depth_streams[-4:-1]
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)
    ms = int(t.timestamp() * 1000)
    # a batch of columns (out of order within a datastream) and general rows, several readings each
    cols = Columns(np.array([a, a, b, a, b], dtype=np.int32),
                   np.array([ms + 3000, ms + 9000, ms + 1000, ms + 5000, ms + 2000], dtype=np.int64),
                   np.array([3.0, 9.0, 1.0, 5.0, 2.0]), np.full(5, -1, dtype=np.int64))
    rows = [Observation(b, t + timedelta(seconds=4), None, {"state": "dry"}),     # general (JSON) and newest of b
            Observation(b, t + timedelta(seconds=3), 3.5),
            Observation(c, t + timedelta(seconds=7), 7.0), Observation(c, t + timedelta(seconds=6), 6.0),
            Observation(a, t + timedelta(seconds=8), 8.0, result_quality="good")]  # general, older than a's 9 s
    with engine.begin() as conn:
        observations.ensure_partitions(conn, {t.date()})
        observations.write_batch(conn.connection.driver_connection, rows, cols)
    with engine.connect() as conn:
        got = {d: observations.latest(conn, d) for d in (a, b, c)}
        assert observations.count(conn, a) == 4 and observations.count(conn, b) == 4
    assert (got[a]["phenomenon_time"], got[a]["result"]) == (t + timedelta(seconds=9), 9.0)
    assert (got[b]["phenomenon_time"], got[b]["result_json"]) == (t + timedelta(seconds=4), {"state": "dry"})
    assert (got[c]["phenomenon_time"], got[c]["result"]) == (t + timedelta(seconds=7), 7.0)
    # a later batch with an older reading of a and a newer one of c
    late = Columns(np.array([a, c], dtype=np.int32), np.array([ms + 1, ms + 60_000], dtype=np.int64),
                   np.array([0.5, 60.0]), np.array([-1, -1], dtype=np.int64))
    with engine.begin() as conn:
        observations.write_batch(conn.connection.driver_connection, columns=late)
    with engine.connect() as conn:
        assert observations.latest(conn, a)["result"] == 9.0
        assert observations.latest(conn, c)["result"] == 60.0
        stored = {(r["phenomenon_time"], r["result"]) for r in observations.fetch(conn, a)}
    # what a redelivered message finds stored, over times hours apart (ranges of the BRIN, not the partitions)
    probe = Columns(np.array([a, a, a, b, a], dtype=np.int32),
                    np.array([ms + 3000, ms - 3_600_000, ms + 9000, ms + 9000, ms + 6_000_000], dtype=np.int64),
                    np.zeros(5), np.full(5, -1, dtype=np.int64))
    with engine.connect() as conn:
        assert observations.existing(conn.connection.driver_connection, probe).tolist() == \
            [True, False, True, False, False]
    assert stored == {(t + timedelta(milliseconds=1), 0.5), (t + timedelta(seconds=3), 3.0),
                      (t + timedelta(seconds=5), 5.0), (t + timedelta(seconds=8), 8.0),
                      (t + timedelta(seconds=9), 9.0)}


def test_reader_of_bodies_without_a_column_wise_group():
    """Bodies the column-wise reader leaves whole to others, or finds nothing in, give empty columns."""
    kw = {"now_ms": 1_000_000, "lo_ms": 0, "hi_ms": 2_000_000}
    general = data_array.read([{"Datastream": {"@iot.id": 1}, "components": ["result", "resultQuality"],
                                "dataArray": [[1.0, "good"]]}], **kw)
    assert (len(general), general.general, general.faults) == (0, [0], [])
    empty = data_array.read([{"Datastream": {"@iot.id": 1}, "components": ["result"], "dataArray": []}], **kw)
    assert (len(empty), empty.general, empty.refused) == (0, [], {})
    only_now = data_array.read([{"Datastream": {"@iot.id": 3}, "components": ["result"], "dataArray": [[2], [3]]}],
                               **kw)
    assert only_now.t_ms.tolist() == [1_000_000, 1_000_000] and only_now.result.tolist() == [2.0, 3.0]
