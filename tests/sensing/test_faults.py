"""Faults of the data plane on real services: broker restart, killed database connections, kill -9 of the bridge,
a flooding device. Every reading the broker acknowledged to its publisher ends up committed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt
import sqlalchemy as sa

from cim_service.sensing.broker import MqttEndpoint
from cim_service.store.db import make_engine

from .conftest import mosquitto_pub, wait_for


class Publisher:
    """A QoS 1 publisher that remembers which messages the broker acknowledged (PUBACK)."""

    def __init__(self, mqtt_url: str, client_id: str):
        ep = MqttEndpoint.parse(mqtt_url)
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set(ep.username, ep.password)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.pending: dict[int, tuple[int, datetime]] = {}
        self.acked_mids: set[int] = set()
        self.client.connect(ep.host, ep.port)
        self.client.loop_start()

    def _on_publish(self, _c, _u, mid, _rc, _p) -> None:
        # called by paho with its outgoing-message lock held: take no lock of ours here
        self.acked_mids.add(mid)

    def send(self, ds: int, t: datetime, value: float) -> None:
        body = orjson.dumps({"phenomenonTime": t.isoformat(timespec="milliseconds"), "result": value})
        info = self.client.publish(f"v1.1/Datastreams({ds})/Observations", body, qos=1)
        self.pending[info.mid] = (ds, t)  # mids do not wrap here: fewer than 65,535 messages per publisher

    @property
    def acked(self) -> set[tuple[int, datetime]]:
        """(datastream, time) of every message the broker acknowledged."""
        return {self.pending[m] for m in list(self.acked_mids) if m in self.pending}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _times(engine, ds_ids, since: datetime) -> list[tuple[int, datetime]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT datastream_id, phenomenon_time FROM cim_sta.observation "
            "WHERE datastream_id = ANY(:d) AND phenomenon_time >= :t"), {"d": list(ds_ids), "t": since}).all()]


def _plan(streams, n: int, start: datetime) -> list[tuple[int, datetime]]:
    return [(streams[i % len(streams)], start + timedelta(milliseconds=10 * i)) for i in range(n)]


def test_broker_restart_loses_nothing(local_broker, bridge_factory, engine, mqtt_url, depth_streams):
    bridge = bridge_factory(client_id="restart-bridge")
    streams = depth_streams[2:6]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    plan = _plan(streams, 400, start)
    pub = Publisher(mqtt_url, "restart-publisher")
    for i, (ds, t) in enumerate(plan[:200]):
        pub.send(ds, t, float(i % 50))
    wait_for(lambda: len(pub.acked) == 200)
    pub.close()
    local_broker.stop()          # the bridge may hold unacknowledged readings: the broker's session keeps them
    local_broker.start()
    pub = Publisher(mqtt_url, "restart-publisher-2")
    for i, (ds, t) in enumerate(plan[200:]):
        pub.send(ds, t, float(i % 50))
    wait_for(lambda: len(pub.acked) == 200)
    pub.close()
    rows = wait_for(lambda: (r := _times(engine, streams, start)) and len(r) >= 400 and r, timeout=30)
    assert sorted(rows) == sorted(plan)
    assert bridge.stats.connects >= 2


def test_killed_database_connections_lose_nothing(bridge_factory, engine, database_url, mqtt_url, depth_streams):
    bridge = bridge_factory(client_id="dbkill-bridge")
    streams = depth_streams[6:10]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    plan = _plan(streams, 600, start)
    dbname = make_engine(database_url).url.database
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT")
    killed = 0
    stop = threading.Event()

    def killer() -> None:
        nonlocal killed
        while not stop.is_set():
            with admin.connect() as conn:
                killed += conn.execute(sa.text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid() AND backend_type = 'client backend'"),
                    {"d": dbname}).scalar_one()
            time.sleep(0.15)

    th = threading.Thread(target=killer)
    pub = Publisher(mqtt_url, "dbkill-publisher")
    th.start()
    try:
        for i, (ds, t) in enumerate(plan):
            pub.send(ds, t, float(i % 80))
            if i % 50 == 0:
                time.sleep(0.1)
        wait_for(lambda: len(pub.acked) == len(plan))
        # go on until a kill has hit the bridge's own connection (not only idle ones), at most five more rounds
        for _ in range(5):
            if bridge.stats.db_errors > 0:
                break
            more = _plan(streams, 200, plan[-1][1] + timedelta(milliseconds=10))
            for i, (ds, t) in enumerate(more):
                pub.send(ds, t, float(i % 80))
                if i % 50 == 0:
                    time.sleep(0.1)
            plan += more
            expected = len(plan)
            wait_for(lambda n=expected: len(pub.acked) == n)
        time.sleep(1.0)
    finally:
        stop.set()
        th.join()
        pub.close()
    rows = wait_for(lambda: (r := _times(engine, streams, start)) and len(r) >= len(plan) and r, timeout=60)
    assert sorted(set(rows)) == sorted(plan)
    assert len(rows) == len(plan)
    # every connection of the database was killed again and again while readings flowed (the bridge's among
    # them); whether a kill lands inside one of its transactions (db_errors) is chance: the rounds above make it
    # likely, the assertions above are what must hold either way
    assert killed > 0
    admin.dispose()


def test_kill_9_of_the_bridge_under_load_loses_no_acknowledged_reading(demo_database_url, engine, mqtt_url,
                                                                       depth_streams, tmp_path):
    env = {**os.environ, "CIM_DATABASE_URL": demo_database_url, "CIM_MQTT_URL": mqtt_url,
           "CIM_HOME": str(tmp_path), "CIM_SENSOR_RATE_PER_S": "100000", "CIM_SENSOR_RATE_BURST": "100000",
           "CIM_SENSOR_BATCH_WAIT_MS": "50"}

    def start_bridge() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "cim_service", "sensors", "bridge", "--client-id", "kill9-bridge"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        said = []
        for line in p.stdout:
            if "running" in line:
                return p
            said.append(line.rstrip())
        raise AssertionError(f"bridge did not start: {p.wait()}: " + " | ".join(said[-8:]))

    streams = depth_streams[10:-1]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)
    plan = _plan(streams, 6000, start)
    bridge = start_bridge()
    pub = Publisher(mqtt_url, "kill9-publisher")
    try:
        for i, (ds, t) in enumerate(plan):
            pub.send(ds, t, float(i % 90))
            if i == 2500:
                wait_for(lambda: _times(engine, streams, start), timeout=30)  # under load: commits are going on
                bridge.kill()            # SIGKILL: no goodbye to the broker, no last batch
                bridge.wait()
                restarted = start_bridge()
            if i % 500 == 0:
                time.sleep(0.05)
        wait_for(lambda: len(pub.acked) == len(plan), timeout=60)
        acked = set(pub.acked)
        rows = wait_for(lambda: (r := set(_times(engine, streams, start))) >= acked and r, timeout=90)
    finally:
        pub.close()
        for p in (bridge, locals().get("restarted")):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
    assert acked == set(plan)
    assert rows >= acked


def test_a_flooding_datastream_is_rate_limited(bridge_factory, sensing_settings, engine, mqtt_url, depth_streams):
    limited = sensing_settings.model_copy(update={"sensor_rate_per_s": 0.5, "sensor_rate_burst": 5.0})
    bridge = bridge_factory(settings=limited)
    ds = depth_streams[-1]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    pub = Publisher(mqtt_url, "flood-publisher")
    for i in range(40):
        pub.send(ds, start + timedelta(seconds=i), 1.0)
    wait_for(lambda: len(pub.acked) == 40)
    pub.close()
    wait_for(lambda: bridge.stats.rejected.get("rate_limited", 0) + bridge.stats.committed >= 40, timeout=30)
    rows = [r for r in _times(engine, [ds], start) if r[1] < start + timedelta(minutes=1)]
    assert 5 <= len(rows) <= 7
    assert bridge.stats.rejected["rate_limited"] == 40 - len(rows)
    with engine.connect() as conn:
        letters = conn.execute(sa.text("SELECT count(*) FROM cim_sta.dead_letter WHERE reason = 'rate_limited' "
                                       "AND topic = :t"), {"t": f"v1.1/Datastreams({ds})/Observations"}).scalar_one()
    assert letters == 1
    mosquitto_pub(mqtt_url, f"v1.1/Datastreams({ds})/Observations", b"{}")  # still running: a dead letter
    wait_for(lambda: bridge.stats.rejected.get("bad_type", 0) == 1)
