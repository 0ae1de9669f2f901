"""Bulk observations through the SensorThings dataArray extension, against COPY of the same rows.

Run on demand (not part of the tests)::

    python3 benchmarks/bench_sta.py [--rows 200000] [--datastreams 100] [--rounds 3] [--database-url URL]

A ``cim serve`` subprocess (one worker, no MQTT bridge) receives ``POST /sta/v1.1/CreateObservations`` with
``--rows`` observations in one body, authenticated as a ``sensor`` key. The same rows (other times, so every
round writes new ones) are then written in the same process by the owner module directly: once with
``observations.write_batch`` (COPY + latest upsert, what the endpoint does) and once with
``observations.copy_only`` (the database's own limit). Rounds alternate the three; the minimum, median and
maximum of each are printed, as observations per second (wall time of the request, body encoding excluded).
The database (``cim_bench_sta``, on ``--database-url``'s server or the project-local cluster) is kept; the
benchmark's Things are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy.engine import make_url

from cim_service.auth import create_api_key, revoke_api_key
from cim_service.store import observations
from cim_service.store.db import make_engine
from cim_service.store.observations import Observation

STA = "/sta/v1.1"


def _serve(url: str, home: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_HOME": str(home), "CIM_SENSOR_BRIDGE": "off",
           "CIM_GAP_REFRESH": "off"}
    proc = subprocess.Popen([sys.executable, "-m", "cim_service", "serve", "--port", str(port), "--workers", "1",
                             "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("cim serve did not start")


def _datastreams(client: httpx.Client, n: int, headers: dict) -> tuple[int, list[int]]:
    body = {"name": f"bench-sta-{uuid.uuid4().hex[:6]}", "description": "benchmark station",
            "Locations": [{"name": "bench", "description": "bench", "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [121.38, 31.11]}}],
            "Datastreams": [{"name": f"bench {i}", "description": "bench", "observationType": "OM_Measurement",
                             "unitOfMeasurement": {"name": "centimetre", "symbol": "cm", "definition": "cm"},
                             "Sensor": {"name": "bench", "description": "bench", "encodingType": "text/html",
                                        "metadata": "bench"},
                             "ObservedProperty": {"name": "depth", "definition": "depth", "description": "d"}}
                            for i in range(n)]}
    r = client.post(f"{STA}/Things", json=body, headers=headers)
    r.raise_for_status()
    thing = int(r.headers["location"].rsplit("(", 1)[1].rstrip(")"))
    ds = client.get(f"{STA}/Things({thing})/Datastreams?$top=10000&$select=@iot.id").json()["value"]
    return thing, [d["@iot.id"] for d in ds]


def _times(start: datetime, rows: int, streams: int) -> list[datetime]:
    per = rows // streams
    return [start + timedelta(milliseconds=10 * k) for k in range(per)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--datastreams", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database-url", default=os.environ.get("CIM_DATABASE_URL"))
    args = ap.parse_args()

    from _common import named_database

    url = named_database("cim_bench_sta", args.database_url)
    engine = make_engine(url)
    key_name = f"bench-sta-{uuid.uuid4().hex[:8]}"
    key = create_api_key(engine, key_name, "sensor")
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    home = Path(tempfile.mkdtemp(prefix="bench-sta-"))
    proc, base = _serve(url, home)
    results: dict[str, list[float]] = {"http dataArray": [], "write_batch (COPY + latest)": [], "COPY only": []}
    try:
        with httpx.Client(base_url=base, timeout=600) as client:
            thing, ids = _datastreams(client, args.datastreams, headers)
            per = args.rows // len(ids)
            n = per * len(ids)
            now = datetime.now(UTC).replace(microsecond=0)
            slot = 0
            for rnd in range(args.rounds):
                for kind in results:
                    slot += 1
                    start = now - timedelta(minutes=50) + timedelta(seconds=per * 0.01 * slot)
                    times = _times(start, n, len(ids))
                    if kind == "http dataArray":
                        texts = [t.isoformat(timespec="milliseconds").replace("+00:00", "Z") for t in times]
                        body = orjson.dumps([{"Datastream": {"@iot.id": d}, "components": ["phenomenonTime", "result"],
                                              "dataArray": [[texts[k], float(k % 97)] for k in range(per)]}
                                             for d in ids])
                        t0 = time.perf_counter()
                        r = client.post(f"{STA}/CreateObservations", content=body, headers=headers)
                        elapsed = time.perf_counter() - t0
                        if r.status_code != 201 or len(r.json()) != n:
                            raise SystemExit(f"CreateObservations failed: {r.status_code} {r.text[:300]}")
                    else:
                        rows = [Observation(d, t, float(k % 97)) for d in ids for k, t in enumerate(times)]
                        t0 = time.perf_counter()
                        with engine.begin() as conn:
                            observations.ensure_partitions(conn, {t.date() for t in times})
                            pg = conn.connection.driver_connection
                            if kind == "COPY only":
                                observations.copy_only(pg, rows)
                            else:
                                observations.write_batch(pg, rows)
                        elapsed = time.perf_counter() - t0
                    results[kind].append(n / elapsed)
                    print(f"round {rnd + 1} {kind:28s} {n:>9,} rows {elapsed:7.3f} s {n / elapsed:>12,.0f} obs/s",
                          flush=True)
            client.delete(f"{STA}/Things({thing})", headers=headers)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        revoke_api_key(engine, key_name)
        engine.dispose()
    server = make_url(url)
    print(f"\n{args.rows:,} observations a round, {args.datastreams} datastreams, {args.rounds} rounds, "
          f"PostgreSQL at {server.host}:{server.port}")
    for kind, values in results.items():
        print(f"{kind:28s} min {min(values):>10,.0f}  median {statistics.median(values):>10,.0f}  "
              f"max {max(values):>10,.0f} obs/s")


if __name__ == "__main__":
    main()
