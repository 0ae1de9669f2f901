"""Benchmark: the live indicators at the plan's scale, and the simulator's message generation.

Usage: ``python3 benchmarks/bench_live_indicators.py [--nodes 100000] [--runs 7] [--server-url URL]
[--simulate-only]``

1. The simulator (no database): ``sensing.simulate.schedule`` for ``--nodes`` synthetic neuron nodes of three
   datastreams reporting every 60 s (the plan's full scale), for 30 simulated seconds: messages generated per
   second of CPU, against the ~5,000/s the full scale needs.
2. ``iot_nodes_online`` recomputed (forced) for the district and every town, ``--runs`` times: now (the latest
   values) and as of yesterday (the raw readings of the window before the day's end). Set-up, kept between runs:
   database ``cim_bench_live_indicators``, the demo's district and towns, and the nodes of ``bench_live.prepare``
   (``--nodes`` synthetic nodes, ~3 datastreams each, 95 % with a battery reading in the last 10 minutes).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from _common import named_database
from bench_live import BBOX, prepare

from cim_service.core.catalog import Role, load_catalog
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorEngine
from cim_service.sensing import simulate as sim
from cim_service.store.db import make_engine

BENCH_DB = "cim_bench_live_indicators"
INDICATOR = "iot_nodes_online"


def bench_simulator(n: int) -> None:
    rng = random.Random(1)
    rows, i = [], 0
    for k in range(n):
        lon, lat = BBOX[0] + (BBOX[2] - BBOX[0]) * rng.random(), BBOX[1] + (BBOX[3] - BBOX[1]) * rng.random()
        for p in ("battery", "signal", "air_temperature"):
            i += 1
            rows.append({"id": i, "feature_key": f"N{k}", "property": p, "lon": lon, "lat": lat,
                         "fields": {"sensor_kind": "environment"}})
    t0 = time.perf_counter()
    nodes = sim.build_nodes(rows, seed=1, nodes=None, silent_share=0.03)
    built = time.perf_counter() - t0
    t0, msgs = time.perf_counter(), 0
    for _due, batch in sim.schedule(nodes, node_interval_s=60, duration_s=30, backfill=False):
        msgs += len(batch)
    el = time.perf_counter() - t0
    print(f"simulator: {n:,} nodes built in {built:.1f} s; {msgs:,} messages (30 simulated s) in {el:.2f} s = "
          f"{msgs / el:,.0f}/s (full scale needs {n * 3 / 60:,.0f}/s)")


def load_areas(url: str) -> None:
    from pipelines.demo.build import build_demo, frame_sha256, layer_frames
    from pipelines.load import load_geodataframe

    catalog = load_catalog()
    engine = make_engine(url)
    frames = layer_frames(catalog, build_demo("small"))
    for role in (Role.district_outline, Role.town_boundaries):
        spec = catalog.role(role)
        load_geodataframe(engine, spec, frames[spec.id], source_name=f"bench-{spec.id}",
                          source_sha256=frame_sha256(frames[spec.id]), source_crs="EPSG:4326", replace=True,
                          outline=catalog.role(Role.district_outline))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--server-url")
    ap.add_argument("--simulate-only", action="store_true")
    args = ap.parse_args()
    bench_simulator(args.nodes)
    if args.simulate_only:
        return
    url = named_database(BENCH_DB, args.server_url)
    load_areas(url)
    prepare(url, args.nodes)
    settings = Settings(database_url=url)
    engine = make_engine(url)
    ind = IndicatorEngine(engine, load_catalog(), settings)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    for label, at in (("now (latest values)", None), (f"as of {yesterday} (raw readings)", yesterday)):
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            r = ind.results([INDICATOR], refresh=True, at=at)[0]
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
        print(f"{INDICATOR} {label:<34} p50 {statistics.median(times):7.0f} ms  p95 {p95:7.0f} ms  "
              f"district {r['numerator']:,.0f}/{r['denominator']:,.0f} = {r['value']} %, {len(r['towns'])} towns")
    engine.dispose()


if __name__ == "__main__":
    main()
