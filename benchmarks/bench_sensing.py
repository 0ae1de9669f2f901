"""Benchmark of the sensing data plane at the plan's scale, all figures of issue 10 in one run.

Usage: ``python3 benchmarks/bench_sensing.py [--minutes 5 | --duration 30] [--rate 20000] [--rows-per-message 500]
[--per-group 1] [--datastreams 100000] [--publishers 2] [--single] [--no-publish-created] [--skip-http]
[--skip-live] [--server-url URL]``

Set-up (kept between runs): database ``cim_bench_sensing`` on ``--server-url``'s server (default: the
project-local cluster), with ``--datastreams`` synthetic datastreams (one Thing each, like 100,000 neuron nodes);
a project-local Mosquitto in ``<CIM_HOME>/bench-mosquitto`` on a free port. Each run starts from empty
observation tables. Everything runs on this machine: broker, bridge, PostgreSQL, publishers, service.

Measured:
1. MQTT -> committed: ``cim sensors bridge`` in its own process (its CPU time is measured too: observations per
   CPU-second does not depend on how busy the machine is); ``--publishers`` processes publish QoS 1 bulk messages
   on ``v1.1/CreateObservations`` (``--rows-per-message`` readings each, ``--per-group`` readings per datastream
   group, spread over all datastreams; ``--single``: one reading per message on ``v1.1/Datastreams(<id>)/
   Observations`` instead) at ``--rate`` readings/s for ``--duration`` s (``--minutes``: the sustained run). A
   sampler subscribes to 200 datastreams and takes the created Observation the bridge publishes after each commit:
   latency = its arrival - the reading's phenomenonTime (= the moment it was published). Sustained rate =
   observations committed / (last commit - first publish).
2. Bytes per observation: heap + TOAST + indexes of the partitions / rows.
3. COPY of the same number of rows into the same partitioned table, batches of 20,000 like the bridge's
   (``observations.copy_only``: the database's own limit), and COPY + latest upsert (``observations.write_batch``,
   the bridge's transaction), one process; the MQTT and HTTP rates are given as ratios of the COPY alone.
4. HTTP ``POST /sta/v1.1/CreateObservations`` (``cim serve``, one worker, no bridge): ``--http-rows`` readings over
   100 datastreams a request, ``--http-rounds`` requests, wall time of the request (body encoding excluded).
5. Latest state of all 100,000 nodes (``bench_live.py``'s set-up and statements): items with the live members at
   limit 100,000 and the district tile (z10), p50/p95 of ``--live-runs``.
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
from cim_service.store.observations import Columns

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


def publisher(url: str, ids: list[int], rate: float, duration: float, start_at: float, out, *, single: bool,
              rows_per_message: int, per_group: int) -> None:
    pub = Publisher(url, f"bench-pub-{os.getpid()}", max_backlog=300 if single else 50)
    while time.time() < start_at:
        time.sleep(0.001)
    sent, i, n = 0, 0, len(ids)
    t0 = time.time()
    step = 1 if single else rows_per_message
    while True:
        now = time.time()
        if now - t0 >= duration:
            break
        due = min(int((now - t0) * rate), sent + 4 * step)
        while sent + step <= due or (single and sent < due):
            ts = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            if single:
                ds = ids[i % n]
                i += 1
                pub.publish(f"v1.1/Datastreams({ds})/Observations",
                            orjson.dumps({"phenomenonTime": ts, "result": float(i % 97)}), qos=1)
                sent += 1
                continue
            groups = []
            base = ts[:-4]  # "...:SS." (per-group readings a millisecond apart)
            ms = int(ts[-4:-1])
            for _ in range(rows_per_message // per_group):
                ds = ids[i % n]
                i += 1
                groups.append({"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
                               "dataArray": [[f"{base}{min(ms + k, 999):03d}Z", float((i + k) % 97)]
                                             for k in range(per_group)]})
            pub.publish("v1.1/CreateObservations", orjson.dumps(groups), qos=1)
            sent += len(groups) * per_group
        time.sleep(0.002)
    elapsed = time.time() - t0
    pub.drain(timeout=120)
    pub.close()
    out.put((sent, pub.acked * (1 if single else rows_per_message // per_group * per_group), elapsed))


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


def copy_limit(url: str, ids: list[int], n: int, batch: int = 20_000) -> dict[str, float]:
    """COPY alone and COPY + latest upsert of ``n`` numeric rows like the run's, rows/s each."""
    import numpy as np

    engine = make_engine(url)
    base_ms = int((datetime.now(UTC) - timedelta(days=1)).timestamp()) * 1000
    idx = np.arange(n, dtype=np.int64)
    ds = np.asarray(ids, dtype=np.int32)[idx % len(ids)]
    out = {}
    for label, fn, shift in (("copy", observations.copy_only, 0), ("copy+latest", observations.write_batch, 1)):
        cols = Columns(ds, base_ms - shift * 3 * 3_600_000 + idx, (idx % 97).astype(np.float64),
                       np.full(n, -1, dtype=np.int64))
        with engine.begin() as conn:
            observations.ensure_partitions(conn, cols.days())
        t0 = time.perf_counter()
        for k in range(0, n, batch):
            part = Columns(cols.datastream[k:k + batch], cols.t_ms[k:k + batch], cols.result[k:k + batch],
                           cols.feature[k:k + batch])
            with engine.begin() as conn:
                fn(conn.connection.driver_connection, columns=part)
        out[label] = n / (time.perf_counter() - t0)
    engine.dispose()
    return out


def http_data_array(url: str, rows: int, rounds: int) -> list[float]:
    """obs/s of ``POST /sta/v1.1/CreateObservations`` (``bench_sta.py``'s service and datastreams)."""
    import tempfile
    import uuid

    import httpx
    from bench_sta import STA, _datastreams, _serve

    from cim_service.auth import create_api_key, revoke_api_key

    engine = make_engine(url)
    key_name = f"bench-sensing-{uuid.uuid4().hex[:8]}"
    headers = {"X-API-Key": create_api_key(engine, key_name, "sensor"), "Content-Type": "application/json"}
    proc, base = _serve(url, Path(tempfile.mkdtemp(prefix="bench-sensing-http-")))
    rates = []
    try:
        with httpx.Client(base_url=base, timeout=600) as client:
            thing, dss = _datastreams(client, 100, headers)
            per = rows // len(dss)
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
            for rnd in range(rounds):
                texts = [(start + timedelta(milliseconds=10 * (rnd * per + k))).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z") for k in range(per)]
                body = orjson.dumps([{"Datastream": {"@iot.id": d}, "components": ["phenomenonTime", "result"],
                                      "dataArray": [[texts[k], float(k % 97)] for k in range(per)]} for d in dss])
                t0 = time.perf_counter()
                r = client.post(f"{STA}/CreateObservations", content=body, headers=headers)
                elapsed = time.perf_counter() - t0
                if r.status_code != 201 or len(r.json()) != per * len(dss):
                    raise SystemExit(f"CreateObservations failed: {r.status_code} {r.text[:300]}")
                rates.append(per * len(dss) / elapsed)
                print(f"http round {rnd + 1}: {per * len(dss):,} obs in {elapsed:.3f} s = {rates[-1]:,.0f} obs/s",
                      flush=True)
            client.delete(f"{STA}/Things({thing})", headers=headers)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        revoke_api_key(engine, key_name)
        engine.dispose()
    return rates


def live_state(server_url: str | None, runs: int) -> dict[str, tuple[float, float, int]]:
    """p50/p95 ms of the items of all 100,000 nodes and of the district tile, with their live state."""
    import morecantile
    import psycopg
    from bench_live import BBOX, prepare, timed
    from bench_live import BENCH_DB as LIVE_DB

    from cim_service.core.catalog import load_catalog
    from cim_service.features.crs import resolve_crs
    from cim_service.features.query import ItemsQuery, items_sql
    from cim_service.tiles.mvt import build_tile_sql
    from cim_service.tiles.tms import tile_ref

    url = named_database(LIVE_DB, server_url)
    prepare(url, 100_000)
    spec = load_catalog().get("iot_nodes")
    out = {}
    with psycopg.connect(url) as conn:
        q = ItemsQuery(spec=spec, properties=list(spec.fields), crs=resolve_crs(None, "crs"),
                       order=[('"id"', True)], limit=100_000, offset=0, offline_s=3600.0)
        out["items of 100,000 nodes, live"] = timed(conn, items_sql(q), q.params.values, runs)
        wmq = morecantile.tms.get("WebMercatorQuad")
        for z in (10, 14):
            t = wmq.tile((BBOX[0] + BBOX[2]) / 2, (BBOX[1] + BBOX[3]) / 2, z)
            ts = build_tile_sql(spec, tile_ref("WebMercatorQuad", z, t.x, t.y), tuple(spec.field_names), 200_000,
                                offline_s=3600.0)
            out[f"tile z{z}, live"] = timed(conn, ts.sql, ts.args, runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--minutes", type=float, help="sustained run of this many minutes (instead of --duration)")
    ap.add_argument("--rows-per-message", type=int, default=500)
    ap.add_argument("--per-group", type=int, default=1)
    ap.add_argument("--single", action="store_true", help="one reading per message on the per-datastream topic")
    ap.add_argument("--datastreams", type=int, default=100_000)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--server-url")
    ap.add_argument("--no-publish-created", action="store_true")
    ap.add_argument("--http-rows", type=int, default=200_000)
    ap.add_argument("--http-rounds", type=int, default=3)
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--live-runs", type=int, default=10)
    args = ap.parse_args()
    duration = args.minutes * 60 if args.minutes else args.duration

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
    load0 = os.getloadavg()[0]
    try:
        deadline = time.time() + 120  # bridge: migrate check, load datastreams, subscribe ("running")
        while "running" not in (Path(settings.home) / "bench-bridge.log").read_text() and time.time() < deadline:
            if bridge.poll() is not None:
                raise SystemExit("the bridge stopped; see bench-bridge.log")
            time.sleep(0.2)
        proc = psutil.Process(bridge.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        sampler = Sampler(mqtt_url, ids[:SAMPLED])
        q: mp.Queue = mp.Queue()
        start_at = time.time() + 2
        procs = [mp.Process(target=publisher, args=(mqtt_url, ids[k::args.publishers], args.rate / args.publishers,
                                                   duration, start_at, q),
                            kwargs={"single": args.single, "rows_per_message": args.rows_per_message,
                                    "per_group": args.per_group}) for k in range(args.publishers)]
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
        load1 = os.getloadavg()[0]
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)
        broker.stop()
    sustained = committed / (float(last_commit) - start_at) if last_commit else 0.0
    bytes_per_obs = (sizes["heap"] + sizes["indexes"]) / max(sizes["rows"], 1)
    limits = copy_limit(url, ids, committed)
    http = [] if args.skip_http else http_data_array(url, args.http_rows, args.http_rounds)
    live = {} if args.skip_live else live_state(args.server_url, args.live_runs)
    lat = sampler.latencies
    mode = "single readings" if args.single else f"bulk messages of {args.rows_per_message} ({args.per_group} a group)"
    print(f"\nMQTT, {mode}, {args.datastreams:,} datastreams, {duration:.0f} s; load average {load0:.1f} -> "
          f"{load1:.1f} (2 cores)")
    print(f"published {sent:,} readings in {pub_elapsed:.1f} s ({sent / pub_elapsed:,.0f}/s), {acked:,} PUBACKed")
    print(f"committed {committed:,}; sustained {sustained:,.0f} obs/s (first publish -> last commit)")
    print(f"publish->commit latency over {len(lat):,} samples: p50 {pct(lat, .5) * 1000:.0f} ms, "
          f"p95 {pct(lat, .95) * 1000:.0f} ms, max {max(lat or [float('nan')]) * 1000:.0f} ms")
    print(f"bridge process CPU: {bridge_cpu:.1f} s for {committed:,} observations = "
          f"{committed / max(bridge_cpu, 1e-9):,.0f} observations per CPU-second")
    print(f"disk: heap {sizes['heap']:,} B + indexes {sizes['indexes']:,} B for {sizes['rows']:,} rows = "
          f"{bytes_per_obs:.1f} B/observation")
    print(f"COPY alone {limits['copy']:,.0f} rows/s; COPY + latest upsert {limits['copy+latest']:,.0f} rows/s "
          f"(batches of 20,000); MQTT sustained = {sustained / limits['copy']:.2f}x COPY alone, "
          f"{sustained / limits['copy+latest']:.2f}x COPY + upsert")
    if http:
        med = statistics.median(http)
        print(f"HTTP dataArray, {args.http_rows:,} obs a request: min {min(http):,.0f} median {med:,.0f} "
              f"max {max(http):,.0f} obs/s = {med / limits['copy']:.2f}x COPY alone")
    for label, (p50, p95, size) in live.items():
        print(f"{label:<32} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {size / 1e3:,.0f} kB")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
