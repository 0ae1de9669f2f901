"""Benchmark: MQTT -> committed observations (sustained rate, publish-to-commit latency), the database's own COPY
limit on the same rows, and bytes per observation on disk.

Usage: ``python3 benchmarks/bench_sensing.py [--rate 20000] [--duration 60] [--datastreams 100000]
[--publishers 2] [--server-url URL] [--no-publish-created]``

Set-up (kept between runs): database ``cim_bench_sensing`` on ``--server-url``'s server (default: the
project-local cluster), with ``--datastreams`` synthetic datastreams (one Thing each, like 100,000 neuron nodes);
a project-local Mosquitto in ``<CIM_HOME>/bench-mosquitto`` on a free port. Each run starts from empty
observation tables.

Measured, all on this machine:
1. ``cim sensors bridge`` in its own process (its CPU time is measured too: observations per CPU-second is the
   figure that does not depend on how busy the machine is); ``--publishers`` processes publish QoS 1 readings
   at ``--rate`` (spread over the datastreams; a publisher that falls behind sends what it can) for
   ``--duration`` s; a sampler subscribes to 200 datastreams and takes the created Observation the bridge
   publishes after each commit: latency = its arrival - the reading's phenomenonTime (= the moment it was
   published). Sustained rate = observations committed / (last commit - first publish).
2. COPY of the same number of rows into the same partitioned table (``observations.copy_only``, batches of
   5,000), and COPY + latest upsert (``observations.write_batch``, the bridge's transaction), one process.
3. Bytes per observation: heap + TOAST + indexes of the partitions / rows.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psutil
import sqlalchemy as sa
from _common import named_database

from cim_service.core.settings import Settings
from cim_service.sensing.broker import LocalBroker, MqttEndpoint
from cim_service.sensing.publisher import Publisher
from cim_service.store import observations
from cim_service.store.db import make_engine
from cim_service.store.observations import Observation

BENCH_DB = "cim_bench_sensing"
SAMPLED = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_datastreams(engine, n: int) -> list[int]:
    """``n`` synthetic datastreams (Thing + Location + Datastream each); ids ascending."""
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO cim_sta.sensor (name, catalog_key) VALUES ('bench node', 'bench') "
                             "ON CONFLICT (catalog_key) DO NOTHING"))
        conn.execute(sa.text("INSERT INTO cim_sta.observed_property (name, catalog_key) VALUES ('value', "
                             "'bench/value') ON CONFLICT (catalog_key) DO NOTHING"))
        have = conn.execute(sa.text("SELECT count(*) FROM cim_sta.thing WHERE layer_id = 'bench'")).scalar_one()
        if have < n:
            conn.execute(sa.text(
                "INSERT INTO cim_sta.thing (name, layer_id, feature_key) SELECT 'node ' || g, 'bench', g::text "
                "FROM generate_series(:a, :b) g"), {"a": have + 1, "b": n})
            conn.execute(sa.text(
                """
                INSERT INTO cim_sta.datastream (name, unit_name, unit_symbol, thing_id, sensor_id,
                                                observed_property_id, catalog_key)
                SELECT 'value ' || t.feature_key, 'centimetre', 'cm', t.id, s.id, p.id, 'bench|' || t.feature_key
                  FROM cim_sta.thing t, cim_sta.sensor s, cim_sta.observed_property p
                 WHERE t.layer_id = 'bench' AND s.catalog_key = 'bench' AND p.catalog_key = 'bench/value'
                ON CONFLICT (catalog_key) DO NOTHING
                """))
        return list(conn.execute(sa.text(
            "SELECT id FROM cim_sta.datastream WHERE catalog_key LIKE 'bench|%' ORDER BY id LIMIT :n"),
            {"n": n}).scalars())


def reset_observations(engine) -> None:
    with engine.begin() as conn:
        for day in observations.partition_days(conn):
            conn.execute(sa.text(f'DROP TABLE cim_sta."{observations.partition_name(day)}"'))
        conn.execute(sa.text("TRUNCATE cim_sta.latest, cim_sta.dead_letter, cim_sta.observation_hourly"))
        observations.ensure_partitions_around(conn, datetime.now(UTC), back_days=2)


def publisher(url: str, ids: list[int], rate: float, duration: float, start_at: float, out) -> None:
    pub = Publisher(url, f"bench-pub-{os.getpid()}", max_backlog=300)
    while time.time() < start_at:
        time.sleep(0.001)
    sent, i, n = 0, 0, len(ids)
    t0 = time.time()
    while True:
        now = time.time()
        if now - t0 >= duration:
            break
        due = min(int((now - t0) * rate), sent + 2000)
        while sent < due:
            ds = ids[i % n]
            i += 1
            ts = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds")
            pub.publish(f"v1.1/Datastreams({ds})/Observations",
                        orjson.dumps({"phenomenonTime": ts, "result": float(i % 97)}), qos=1)
            sent += 1
        time.sleep(0.002)
    elapsed = time.time() - t0
    pub.drain(timeout=60)
    pub.close()
    out.put((sent, pub.acked, elapsed))


class Sampler:
    """Subscribes to a few datastreams; records the arrival of the created Observations (after commit)."""

    def __init__(self, url: str, ids: list[int]):
        ep = MqttEndpoint.parse(url)
        self.latencies: list[float] = []
        self.last = 0.0
        self.c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sampler")
        self.c.username_pw_set(ep.username, ep.password)
        self.c.on_message = self._on_message
        self.c.connect(ep.host, ep.port)
        self.c.subscribe([(f"v1.1/Datastreams({i})/Observations", 0) for i in ids])
        self.c.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        if b"@iot.id" not in msg.payload:
            return  # the reading itself; the bridge's created Observation carries its id
        now = time.time()
        doc = orjson.loads(msg.payload)
        t = datetime.fromisoformat(doc["phenomenonTime"].replace("Z", "+00:00")).timestamp()
        self.latencies.append(now - t)
        self.last = now

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def copy_limit(url: str, ids: list[int], n: int) -> dict[str, float]:
    """COPY alone and COPY + latest upsert of ``n`` rows like the run's, rows/s each."""
    engine = make_engine(url)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    rows = [Observation(ids[i % len(ids)], base + timedelta(milliseconds=i), float(i % 97)) for i in range(n)]
    out = {}
    for label, fn, shift in (("copy", observations.copy_only, 0), ("copy+latest", observations.write_batch, 1)):
        batch_rows = [Observation(o.datastream_id, o.phenomenon_time - timedelta(hours=shift * 3), o.result)
                      for o in rows]
        with engine.begin() as conn:
            observations.ensure_partitions(conn, {o.phenomenon_time.date() for o in batch_rows})
        t0 = time.perf_counter()
        for k in range(0, n, 5000):
            with engine.begin() as conn:
                fn(conn.connection.driver_connection, batch_rows[k:k + 5000])
        out[label] = n / (time.perf_counter() - t0)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--datastreams", type=int, default=100_000)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--server-url")
    ap.add_argument("--no-publish-created", action="store_true")
    args = ap.parse_args()

    url = named_database(BENCH_DB, args.server_url)
    engine = make_engine(url)
    ids = ensure_datastreams(engine, args.datastreams)
    reset_observations(engine)
    settings = Settings(database_url=url)
    broker = LocalBroker(home=Path(settings.home) / "bench-mosquitto", port=free_port())
    if broker.datadir.exists():
        for f in broker.datadir.iterdir():
            f.unlink()   # no queue left from an earlier run
    mqtt_url = broker.start()
    env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_MQTT_URL": mqtt_url, "CIM_SENSOR_RATE_PER_S": "1000",
           "CIM_SENSOR_RATE_BURST": "1000"}
    cmd = [sys.executable, "-m", "cim_service", "sensors", "bridge", "--client-id", "bench-bridge"]
    if args.no_publish_created:
        cmd.append("--no-publish-created")
    log = open(Path(settings.home) / "bench-bridge.log", "w")  # noqa: SIM115
    bridge = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(8)  # bridge: migrate check, load datastreams, subscribe
        proc = psutil.Process(bridge.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        sampler = Sampler(mqtt_url, ids[:SAMPLED])
        q: mp.Queue = mp.Queue()
        start_at = time.time() + 2
        procs = [mp.Process(target=publisher, args=(mqtt_url, ids[k::args.publishers], args.rate / args.publishers,
                                                   args.duration, start_at, q)) for k in range(args.publishers)]
        for p in procs:
            p.start()
        results = [q.get() for _ in procs]
        for p in procs:
            p.join()
        sent = sum(r[0] for r in results)
        acked = sum(r[1] for r in results)
        pub_elapsed = max(r[2] for r in results)
        deadline = time.time() + 120
        while time.time() < deadline:
            with engine.connect() as conn:
                n = observations.count(conn)
            if n >= acked:
                break
            time.sleep(1)
        time.sleep(1)
        sampler.close()
        with engine.connect() as conn:
            committed = observations.count(conn)
            last_commit = conn.execute(sa.text("SELECT extract(epoch FROM max(received_at)) FROM cim_sta.latest")
                                       ).scalar_one()
            sizes = observations.table_bytes(conn)
        bridge_cpu = sum(proc.cpu_times()[:2]) - cpu0
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)
        broker.stop()
    sustained = committed / (float(last_commit) - start_at) if last_commit else 0.0
    bytes_per_obs = (sizes["heap"] + sizes["indexes"]) / max(sizes["rows"], 1)
    limits = copy_limit(url, ids, committed)
    lat = sampler.latencies
    print(f"published {sent:,} readings in {pub_elapsed:.1f} s ({sent / pub_elapsed:,.0f}/s), {acked:,} PUBACKed")
    print(f"committed {committed:,}; sustained {sustained:,.0f} obs/s (first publish -> last commit)")
    print(f"publish->commit latency over {len(lat):,} samples: p50 {pct(lat, .5) * 1000:.0f} ms, "
          f"p95 {pct(lat, .95) * 1000:.0f} ms, max {max(lat or [float('nan')]) * 1000:.0f} ms")
    print(f"bridge process CPU: {bridge_cpu:.1f} s for {committed:,} observations = "
          f"{committed / max(bridge_cpu, 1e-9):,.0f} observations per CPU-second")
    print(f"COPY alone {limits['copy']:,.0f} rows/s; COPY + latest upsert {limits['copy+latest']:,.0f} rows/s")
    print(f"disk: heap {sizes['heap']:,} B + indexes {sizes['indexes']:,} B for {sizes['rows']:,} rows = "
          f"{bytes_per_obs:.1f} B/observation")
    print(f"load average {os.getloadavg()[0]:.1f}; median latency {statistics.median(lat or [0]) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
