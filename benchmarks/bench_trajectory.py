"""Benchmark: every plan indicator for the district and every town as of six year ends, and reads of stored ones.

Usage: ``python3 benchmarks/bench_trajectory.py [--scale plan|baseline|small] [--database-url URL] [--skip-load]
[--reads N]``.

Uses (and creates once) the database ``cim_bench_trajectory`` (on the server of ``--database-url``, else the
project-local cluster), loads the demo at the requested scale (idempotent), then

1. computes all 14 indicators x all towns as of 2020-12-31 ... 2025-12-31 from scratch (forced; one transaction
   per day; as-of tables from the history and the features' own dates). Target: < 30 s;
   The current-state computation of the 14 indicators is timed first, in the same run, as the reference;
2. reads one indicator as of a day from the stored results through the API (in-process ASGI client, the
   service's pool), ``--reads`` times over random indicators and days; p50 / p95. Target: < 50 ms;
3. builds one trajectory (all towns ranked) from stored results through the API; p50 / p95.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import date

from _common import named_database

from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorEngine, indicator_key
from cim_service.store.db import make_engine

BENCH_DB = "cim_bench_trajectory"
YEARS = range(2020, 2026)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="plan", choices=["small", "baseline", "plan"])
    parser.add_argument("--database-url", default=None, help="a server URL; the benchmark database is made on it")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    url = named_database(BENCH_DB, args.database_url)
    catalog = load_catalog()
    engine = make_engine(url)
    if not args.skip_load:
        from pipelines.demo.build import load_demo

        t = time.perf_counter()
        load_demo(engine, catalog, scale=args.scale)
        print(f"demo '{args.scale}' loaded in {time.perf_counter() - t:.1f} s")
    settings = Settings(database_url=url, environment="test")
    ind = IndicatorEngine(engine, catalog, settings)
    ids = ind.indicators.ids
    days = [date(y, 12, 31) for y in YEARS]
    keys = [indicator_key(i, d) for d in days for i in ids]
    t = time.perf_counter()
    ind.compute(ids, force=True)
    now_s = time.perf_counter() - t
    print(f"reference: the {len(ids)} indicators now (current tables), once: {now_s:.1f} s")
    t = time.perf_counter()
    ms = ind.compute_keys(keys, force=True)
    total = time.perf_counter() - t
    towns = len(ind.results([ids[0]], at=days[0])[0]["towns"])
    print(f"{len(ids)} indicators x {towns} towns + district x {len(days)} year ends: {total:.1f} s "
          f"({len(ms)} results, {settings.indicator_day_workers} days at a time; target < 30 s); "
          f"{total / now_s:.1f}x the current-state computation")
    by_day = {d: sum(v for k, v in ms.items() if k.endswith(d.isoformat())) / 1000 for d in days}
    print("  per day: " + ", ".join(f"{d.year} {s:.1f} s" for d, s in by_day.items()))
    slow = sorted(ms.items(), key=lambda kv: -kv[1])[:5]
    print("  slowest: " + ", ".join(f"{k} {v / 1000:.2f} s" for k, v in slow))

    from fastapi.testclient import TestClient

    from cim_service.app import create_app

    rng = random.Random(7)
    app_settings = Settings(database_url=url, environment="test", gap_refresh=False)
    with TestClient(create_app(app_settings)) as client:
        for i in ids:  # warm: the first request of each kind
            client.get(f"/indicators/{i}", params={"at": "2023-12-31"})
        reads = []
        for _ in range(args.reads):
            i, d = rng.choice(ids), rng.choice(days)
            t = time.perf_counter()
            r = client.get(f"/indicators/{i}", params={"at": d.isoformat()})
            reads.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
        print(f"single ?at= read from stored results: p50 {pct(reads, 50):.1f} ms, p95 {pct(reads, 95):.1f} ms "
              f"({len(reads)} reads; target < 50 ms)")
        trajs = []
        for _ in range(max(10, args.reads // 10)):
            i = rng.choice(ids)
            t = time.perf_counter()
            r = client.get(f"/indicators/{i}/trajectory", params={"at": "2025-12-31"})
            trajs.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
        print(f"trajectory (all towns ranked) from stored results: p50 {pct(trajs, 50):.1f} ms, "
              f"p95 {pct(trajs, 95):.1f} ms ({len(trajs)} reads)")
    engine.dispose()


if __name__ == "__main__":
    main()
