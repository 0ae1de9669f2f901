"""Benchmark: an alarm-level reading published over MQTT, until it is seen on ``/events`` and at ``/alerts``.

Usage: ``python3 benchmarks/bench_events.py [--rounds 40] [--subscribers 20] [--server-url URL]``

Set-up: database ``cim_bench_events`` (the small demo, loaded once and kept) on ``--server-url``'s server (default:
the project-local cluster); a Mosquitto of its own (``LocalBroker``, a temporary folder and a free port); the
service as ``cim serve`` (one worker, the MQTT bridge on, default settings) in a subprocess; ``--subscribers``
streams of ``/events?alerts=true`` held open beside the one measured (the fan-out), each read by a thread.

Each round takes the next sensor of the first "above" alert rule (the demo's water depth), publishes (paho,
QoS 1, as a device) a reading of 35-44 cm (alarm from 30 cm) stamped now, and measures from just before the
publish:

1. ``/events``: until the measured stream delivers the ``alert`` event (change ``raised``) of that datastream;
2. ``/alerts``: until ``GET /alerts?layer=<sensing layer>`` lists an active alert of that datastream (polled every
   10 ms by another thread, so this figure is up to ~10 ms late).

Then a reading of 0 cm clears the alert (waited for on the stream) before the next round. Printed: p50, p95 and
max of both, and whether every ``/events`` subscriber got every alert event.

``--writer-cost [--rows 5000 --rounds 15]``: instead, the cost of the ``cim_observations`` NOTIFY trigger
(migration 0006) for the writers: its own time (EXPLAIN ANALYZE's trigger line) in an update of ``--rows`` latest
values (a bridge batch) of the 100,000 synthetic datastreams of ``bench_sensing.py``'s database. (Rows/s of whole
writes with the trigger off and on differ by less than their spread on this shared machine.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from _common import named_database

from cim_service.core.catalog import load_catalog
from cim_service.sensing.broker import LocalBroker
from cim_service.sensing.publisher import Publisher
from cim_service.store.db import make_engine
from cim_service.store.localserver import free_port

BENCH_DB = "cim_bench_events"


def load(url: str) -> None:
    """The small demo in the benchmark's database (a no-op when it is loaded)."""
    from pipelines.demo import load_demo

    engine = make_engine(url)
    load_demo(engine, load_catalog(), scale="small")
    engine.dispose()


def sensors(url: str) -> tuple[str, list[int]]:
    """The layer of the first "above" alert rule (the service wrote the rules at start) and its datastreams."""
    engine = make_engine(url)
    with engine.connect() as conn:
        layer, prop = conn.execute(sa.text(
            "SELECT layer_id, property FROM cim_sta.alert_rule WHERE sign > 0 AND site_kind = '' ORDER BY rule "
            "LIMIT 1")).one()
        ids = list(conn.execute(sa.text(
            "SELECT id FROM cim_sta.datastream WHERE catalog_key LIKE :k ORDER BY id"),
            {"k": f"{layer}|%|{prop}"}).scalars())
    engine.dispose()
    return layer, ids


class Reader(threading.Thread):
    """One ``/events`` stream; ``alerts`` maps (datastream, change, severity) -> perf_counter time of the last
    such event (offline alerts of sensors the sweep found silent come and go too)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.alerts: dict[tuple[int, str, str], float] = {}
        self.ready = threading.Event()
        self.count = 0

    def run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:  # the service stopped at the end of the run
            pass

    def _read(self) -> None:
        with httpx.stream("GET", f"{self.url}/events", params={"alerts": "true"},
                          timeout=httpx.Timeout(30, read=None)) as r:
            r.raise_for_status()
            kind = None
            for line in r.iter_lines():
                if line.startswith(":"):
                    self.ready.set()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "alert":
                    data = json.loads(line[6:])
                    self.alerts[(data["datastream"], data["change"], data["severity"])] = time.perf_counter()
                    self.count += 1


def wait(predicate, timeout: float = 20.0, every: float = 0.001):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not met")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def writer_cost(server_url: str | None, rows: int, rounds: int) -> None:
    """The NOTIFY trigger's own time in an upsert of ``rows`` latest values (EXPLAIN ANALYZE's trigger line)."""
    import re
    from datetime import timedelta

    from bench_alerts import rules, run, triggers
    from bench_sensing import BENCH_DB as SENSING_DB
    from bench_sensing import ensure_datastreams

    url = named_database(SENSING_DB, server_url)
    engine = make_engine(url)
    ids = ensure_datastreams(engine, 100_000)
    triggers(engine, True)
    rules(engine, False)
    run(engine, ids, 100_000, 0.0, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))  # latest rows
    trigger_ms, total_ms = [], []
    for _ in range(rounds):
        with engine.begin() as conn:
            plan = conn.execute(sa.text(
                "EXPLAIN (ANALYZE, FORMAT TEXT) UPDATE cim_sta.latest SET received_at = now() WHERE datastream_id "
                "IN (SELECT datastream_id FROM cim_sta.latest ORDER BY random() LIMIT :n)"), {"n": rows}).scalars()
            text = "\n".join(plan)
        trigger_ms.append(float(re.search(r"Trigger observations_notify_update: time=([\d.]+)", text).group(1)))
        total_ms.append(float(re.search(r"Execution Time: ([\d.]+)", text).group(1)))
    t, total = statistics.median(trigger_ms), statistics.median(total_ms)
    print(f"upsert of {rows} latest values (100,000 datastreams), median of {rounds}; load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"cim_observations NOTIFY trigger {t:.2f} ms ({1000 * t / rows:.2f} us a row) of the statement's "
          f"{total:.1f} ms (min {min(trigger_ms):.2f}, max {max(trigger_ms):.2f} ms)")
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=None, help="40 (latency), 15 (--writer-cost)")
    ap.add_argument("--subscribers", type=int, default=20)
    ap.add_argument("--server-url")
    ap.add_argument("--writer-cost", action="store_true")
    ap.add_argument("--rows", type=int, default=5000)
    args = ap.parse_args()
    if args.writer_cost:
        writer_cost(args.server_url, args.rows, args.rounds or 15)
        return
    url = named_database(BENCH_DB, args.server_url)
    load(url)
    home = Path(tempfile.mkdtemp(prefix="cim-bench-events-"))
    broker = LocalBroker(home=home / "mosquitto", port=free_port())
    broker.start()
    port = free_port()
    env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_HOME": str(home), "CIM_MQTT_URL": broker.url(),
           "CIM_SENSOR_BRIDGE": "on", "CIM_GAP_REFRESH": "off"}
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cim_service", "serve", "--port", str(port), "--log-level",
                             "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    publisher = None
    try:
        wait(lambda: _ok(f"{base}/healthz"), timeout=120, every=0.2)
        layer, datastreams = sensors(url)
        readers = [Reader(base) for _ in range(args.subscribers + 1)]
        for r in readers:
            r.start()
        for r in readers:
            r.ready.wait(20)
        measured = readers[0]
        publisher = Publisher(broker.url(), "bench-events")
        http = httpx.Client(base_url=base, timeout=10)
        to_events, to_alerts = [], []
        rounds = args.rounds or 40
        for i in range(rounds):
            ds = datastreams[i % len(datastreams)]
            seen_at: list[float] = []
            stop = threading.Event()

            def poll(ds=ds, seen_at=seen_at, stop=stop) -> None:
                while not stop.is_set():
                    body = http.get("/alerts", params={"layer": layer, "limit": 1000}).json()
                    if any(a["datastream"] == ds and a["severity"] == "alarm" for a in body["alerts"]):
                        seen_at.append(time.perf_counter())
                        return
                    time.sleep(0.01)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            value = 35.0 + i % 10
            t0 = time.perf_counter()
            publisher.publish(f"v1.1/Datastreams({ds})/Observations", json.dumps(
                {"result": value, "phenomenonTime": datetime.now(UTC).isoformat()}).encode())
            t1 = wait(lambda ds=ds, t0=t0: (t := measured.alerts.get((ds, "raised", "alarm"))) and t > t0 and t)
            poller.join(20)
            stop.set()
            to_events.append(t1 - t0)
            to_alerts.append(seen_at[0] - t0)
            publisher.publish(f"v1.1/Datastreams({ds})/Observations", json.dumps(
                {"result": 0.0, "phenomenonTime": datetime.now(UTC).isoformat()}).encode())
            wait(lambda ds=ds, t0=t0: (t := measured.alerts.get((ds, "cleared", "alarm"))) and t > t0)
            time.sleep(0.1)
        time.sleep(0.5)
        counts = sorted({r.count for r in readers})
        print(f"rounds {rounds}, /events subscribers {args.subscribers + 1} (alerts=true), service: cim serve, "
              f"1 worker, bridge on; {os.cpu_count()} CPUs")
        for name, values in (("publish -> /events alert event", to_events), ("publish -> listed at /alerts",
                                                                             to_alerts)):
            ms = [1000 * v for v in values]
            print(f"{name:34s} p50 {statistics.median(ms):7.1f} ms  p95 {pct(ms, 95):7.1f} ms  max {max(ms):7.1f} ms")
        print(f"alert events per subscriber: {counts} (equal: every subscriber got every event)")
    finally:
        if publisher is not None:
            publisher.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.stop()
        log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
