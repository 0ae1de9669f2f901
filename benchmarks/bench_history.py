"""Feature history benchmark: ingest with history on vs off, as-of reads, and the history's storage.

Run on demand (not part of the tests)::

    python3 benchmarks/bench_history.py ingest [--iot 100000] [--rounds 2]
    python3 benchmarks/bench_history.py reads [--scale plan] [--requests 200] [--database-url URL]

``ingest``: the IoT scenario of ``bench_ingest.py`` (first load of an empty layer, then a reload with 10 %
changed) into two throwaway databases, one with the layer's history triggers disabled, rounds alternated; rows/s
of each and the ratio on/off.

``reads``: a database ``cim_bench_history`` (kept between runs) holding the demo at ``--scale`` with its yearly
history 2020-2025 (``cim demo --history``). Through the application in process (no network): items pages
(limit 100, ~500 m bbox) as of random instants vs now, p50/p95; uncached tiles (cache off) at z14 as of
2023-12-31 vs now over the same tiles, p50/p95 and the ratio; the size of the history tables vs the current
tables (``pg_total_relation_size``, indexes included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import make_iot, run_ingest, throwaway_database  # noqa: E402

from cim_service.core.catalog import load_catalog  # noqa: E402
from cim_service.store import history  # noqa: E402
from cim_service.store.db import make_engine  # noqa: E402
from cim_service.store.migrate import migrate  # noqa: E402

DISTRICT = (121.33, 31.00, 121.52, 31.20)


def bench_ingest(args: argparse.Namespace) -> None:
    catalog = load_catalog()
    spec = catalog.get("iot_nodes")
    dbs = {}
    for mode in ("on", "off"):
        url, admin, name = throwaway_database()
        engine = make_engine(url)
        migrate(engine, catalog)
        if mode == "off":
            with engine.begin() as conn:
                history.set_enabled(conn, spec, False)
        engine.dispose()
        dbs[mode] = (url, admin, name)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            first, changed = Path(tmp, "iot.csv"), Path(tmp, "iot_changed.csv")
            make_iot(first, args.iot)
            make_iot(changed, args.iot, changed=0.10)
            print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
            for rnd in range(args.rounds):
                order = ("on", "off") if rnd % 2 == 0 else ("off", "on")
                for mode in order:
                    url = dbs[mode][0]
                    engine = make_engine(url)
                    with engine.begin() as conn:  # start each round from an empty layer
                        conn.execute(sa.text(f"TRUNCATE {spec.qualified_table}"))
                        conn.execute(sa.text(f"TRUNCATE {history.table_name(spec)}"))
                        conn.execute(sa.text("DELETE FROM cim_meta.ingest_batch"))
                    engine.dispose()
                    for case, path in (("first load", first), ("reload 10 % changed", changed)):
                        result, seconds, _, _ = run_ingest(url, "iot_nodes", path, "wgs84", 50_000)
                        results.setdefault((case, mode), []).append(result.rows_read / seconds)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        for _, admin, name in dbs.values():
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"{'case':<22} {'history on rows/s':>28} {'history off rows/s':>28} {'on/off':>7}")
    for case in ("first load", "reload 10 % changed"):
        on, off = results[(case, "on")], results[(case, "off")]
        print(f"{case:<22} {_runs(on):>28} {_runs(off):>28} {statistics.median(on) / statistics.median(off):>6.0%}")


def _runs(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({', '.join(f'{v:,.0f}' for v in values)})"


def _reads_database(args: argparse.Namespace) -> str:
    from sqlalchemy.engine import make_url

    from cim_service.core.settings import Settings
    from cim_service.store.localdb import resolve_database_url
    from pipelines.demo import load_demo

    base = make_url(args.database_url or resolve_database_url(Settings(database_url=None)))
    name = f"cim_bench_history_{args.scale}"
    admin = make_engine(base.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        fresh = not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if fresh:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    catalog = load_catalog()
    migrate(engine, catalog)
    with engine.connect() as conn:
        loaded = conn.execute(sa.text("SELECT count(*) FROM cim_hist.cameras")).scalar()
    if not loaded:
        started = time.perf_counter()
        load_demo(engine, catalog, args.scale, history=True)
        print(f"loaded the {args.scale} demo with its history in {time.perf_counter() - started:.0f} s")
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return url


def _timed(client, url: str, params: dict) -> float:
    start = time.perf_counter()
    r = client.get(url, params=params)
    elapsed = time.perf_counter() - start
    if r.status_code not in (200, 204):  # 204: an empty tile
        raise RuntimeError(f"{url} {params}: {r.status_code} {r.text[:200]}")
    return elapsed * 1000


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def bench_reads(args: argparse.Namespace) -> None:
    from fastapi.testclient import TestClient

    from cim_service.app import create_app
    from cim_service.core.settings import Settings

    url = _reads_database(args)
    rng = np.random.default_rng(7)
    settings = Settings(database_url=url, tile_cache=False, gap_refresh=False)
    with TestClient(create_app(settings)) as client:
        n = args.requests
        boxes = []
        for _ in range(n):
            x, y = rng.uniform(DISTRICT[0], DISTRICT[2] - 0.005), rng.uniform(DISTRICT[1], DISTRICT[3] - 0.005)
            boxes.append(f"{x:.5f},{y:.5f},{x + 0.005:.5f},{y + 0.005:.5f}")
        instants = [f"{rng.integers(2020, 2026)}-{rng.integers(8, 13):02d}-15T00:00:00Z" for _ in range(n)]
        for layer in ("cameras", "iot_nodes"):
            path = f"/collections/{layer}/items"
            for b, a in zip(boxes[:10], instants[:10], strict=True):  # warm up
                _timed(client, path, {"bbox": b, "limit": 100, "at": a})
            now, asof = [], []
            for b, a in zip(boxes, instants, strict=True):
                now.append(_timed(client, path, {"bbox": b, "limit": 100}))
                asof.append(_timed(client, path, {"bbox": b, "limit": 100, "at": a}))
            print(f"items {layer:<10} limit 100, ~500 m bbox, {n} requests: now p50 {_p(now, 50):.1f} ms "
                  f"p95 {_p(now, 95):.1f} ms; as of p50 {_p(asof, 50):.1f} ms p95 {_p(asof, 95):.1f} ms")
        tiles = {_tile(rng.uniform(DISTRICT[0], DISTRICT[2]), rng.uniform(DISTRICT[1], DISTRICT[3]), 14)
                 for _ in range(n)}
        for layer in ("cameras", "iot_nodes"):
            now, asof = [], []
            for x, y in sorted(tiles):
                path = f"/collections/{layer}/tiles/WebMercatorQuad/14/{x}/{y}"
                now.append(_timed(client, path, {}))
                asof.append(_timed(client, path, {"at": "2023-12-31T00:00:00Z"}))
            print(f"tiles {layer:<10} z14 uncached, {len(tiles)} tiles: now p50 {_p(now, 50):.1f} ms "
                  f"p95 {_p(now, 95):.1f} ms; as of p50 {_p(asof, 50):.1f} ms p95 {_p(asof, 95):.1f} ms; "
                  f"as-of/now (sum) {sum(asof) / sum(now):.2f}x")
    engine = make_engine(url)
    with engine.connect() as conn:
        sizes = history.sizes(conn, load_catalog())
        rows = {s: conn.execute(sa.text(f"SELECT count(*) FROM {history.table_name(load_catalog().get(s))}")).scalar()
                for s in ("cameras", "iot_nodes")}
    engine.dispose()
    current, hist = sum(c for c, _ in sizes.values()), sum(h for _, h in sizes.values())
    print(f"storage: current tables {current / 2**20:,.1f} MiB, history tables {hist / 2**20:,.1f} MiB "
          f"({hist / current:.2f}x); history rows cameras {rows['cameras']:,}, iot_nodes {rows['iot_nodes']:,}")
    for layer, (c, h) in sorted(sizes.items(), key=lambda kv: -kv[1][1])[:6]:
        print(f"  {layer:<22} current {c / 2**20:8.1f} MiB  history {h / 2**20:8.1f} MiB  {h / c:5.2f}x")


def _p(values: list[float], q: int) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ing = sub.add_parser("ingest")
    ing.add_argument("--iot", type=int, default=100_000)
    ing.add_argument("--rounds", type=int, default=2)
    rd = sub.add_parser("reads")
    rd.add_argument("--scale", default="plan")
    rd.add_argument("--requests", type=int, default=200)
    rd.add_argument("--database-url", default=None)
    args = parser.parse_args()
    bench_ingest(args) if args.what == "ingest" else bench_reads(args)


if __name__ == "__main__":
    main()
