"""Benchmark: every plan indicator for the district and every town, plus gap layers, raster and suggestions.

Usage: ``python3 benchmarks/bench_indicators.py [--scale plan|baseline|small] [--database-url URL]``.
Without a URL it uses (and creates once) the database ``cim_bench_indicators`` on the project-local cluster,
loads the demo at the requested scale into it (idempotent: a second run reuses it), then forces a full
recomputation and prints the time per indicator and per derived output. Target: all indicators < 10 s.
"""

from __future__ import annotations

import argparse
import time

import sqlalchemy as sa
from _common import named_database

from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorEngine
from cim_service.store.db import make_engine
from cim_service.store.migrate import migrate

BENCH_DB = "cim_bench_indicators"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="plan", choices=["small", "baseline", "plan"])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--skip-load", action="store_true", help="use the data already in the database")
    args = parser.parse_args()
    url = args.database_url or named_database(BENCH_DB)
    catalog = load_catalog()
    engine = make_engine(url)
    migrate(engine, catalog)
    if not args.skip_load:
        from pipelines.demo.build import load_demo

        t = time.perf_counter()
        results = load_demo(engine, catalog, scale=args.scale)
        changed = sum(r.status == "committed" for r in results.values())
        print(f"demo '{args.scale}' loaded in {time.perf_counter() - t:.1f} s ({changed} layers changed)")
    with engine.connect() as conn:
        counts = {lid: conn.execute(sa.text(f"SELECT count(*) FROM {catalog.get(lid).qualified_table}")).scalar()
                  for lid in ("cameras", "base_stations", "iot_nodes", "addresses", "charging_stations",
                              "smart_poles", "bus_stops", "towns")}
    print("features:", ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    ind = IndicatorEngine(engine, catalog, Settings(database_url=url, environment="test"))
    t = time.perf_counter()
    ms = ind.compute(ind.indicators.ids, force=True)
    total = time.perf_counter() - t
    print(f"\nall {len(ms)} indicators, district + every town: {total:.2f} s (target < 10 s)")
    for key, value in sorted(ms.items(), key=lambda kv: -kv[1]):
        print(f"  {key:28s} {value / 1000:7.2f} s")
    t = time.perf_counter()
    dms = ind.ensure([f"derived:{n}" for n in ("gap_camera_hex", "gap_charging", "gap_5g", "gap_unsensored_sites",
                                               "suggested_sites", "camera_density_raster")], refresh=True)
    print(f"\nderived outputs (gap layers, suggestions, raster): {time.perf_counter() - t:.2f} s")
    for key, value in dms.items():
        print(f"  {key:36s} {value / 1000:7.2f} s")
    t = time.perf_counter()
    ind.results()
    print(f"\nall indicators served fresh from storage: {(time.perf_counter() - t) * 1000:.0f} ms")
    summary = ind.derived(["suggested_sites"])["suggested_sites"]
    for kind in ("charging", "g5", "camera"):
        if kind in summary:
            s = summary[kind]
            print(f"  suggestions {kind}: {s['sites']} sites ({s['devices']} devices), closes gap: {s['closes_gap']}")
    engine.dispose()


if __name__ == "__main__":
    main()
