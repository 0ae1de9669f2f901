"""Benchmark: every plan indicator for the district and every town, plus gap layers, raster and suggestions.

Usage: ``python3 benchmarks/bench_indicators.py [--scale plan|baseline|small] [--database-url URL] [--skip-load]
[--stock [--stock-url URL]] [--repeat N] [--plans]``.

Without a URL it uses (and creates once) the database ``cim_bench_indicators`` on the project-local cluster,
loads the demo at the requested scale into it (idempotent: a second run reuses it), then forces a full
recomputation and prints the time per indicator and per derived output. Target: all indicators < 10 s.

``--stock`` measures the same on a PostgreSQL with its built-in settings (work_mem 4 MB, shared_buffers
128 MB, ...), like a user's own server: ``--stock-url`` names one, else a second project-local cluster
without the project's tuning is started in ``<CIM_HOME>/bench-stock`` on a free port (kept between runs,
stopped at the end). Both servers are measured in the same run, alternately, ``--repeat`` times; medians
and the stock / tuned ratio are printed. Target there too: indicators and gap layers each < 10 s.
``--plans`` records the plan of every statement of the (first) stock run and lists any shape that degrades
with size (see ``cim_service/indicators/plans.py``) and the slowest statements.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from _common import named_database

from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.plans import PlanRecorder
from cim_service.store.db import make_engine
from cim_service.store.localdb import LocalCluster
from cim_service.store.migrate import migrate

BENCH_DB = "cim_bench_indicators"


@dataclass
class Server:
    """One database measured, and its figures per repetition."""

    label: str
    url: str
    indicators_s: list[float] = field(default_factory=list)
    derived_s: list[float] = field(default_factory=list)
    per_key_ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, ms: dict[str, float]) -> None:
        for key, value in ms.items():
            self.per_key_ms.setdefault(key, []).append(value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stock_cluster(home: Path) -> tuple[LocalCluster, bool]:
    """The project-local cluster with PostgreSQL's defaults; whether this run started it."""
    cluster = LocalCluster(home=home / "bench-stock", port=free_port(), tuned=False)
    was_running = cluster.is_running()
    cluster.start()
    return cluster, not was_running


def prepare(url: str, scale: str, skip_load: bool) -> None:
    catalog = load_catalog()
    engine = make_engine(url)
    migrate(engine, catalog)
    if not skip_load:
        from pipelines.demo.build import load_demo

        t = time.perf_counter()
        results = load_demo(engine, catalog, scale=scale)
        changed = sum(r.status == "committed" for r in results.values())
        print(f"[{url.rsplit('@', 1)[-1]}] demo '{scale}' loaded in {time.perf_counter() - t:.1f} s "
              f"({changed} layers changed)")
    with engine.connect() as conn:
        settings = dict(conn.execute(sa.text(
            "SELECT name, setting || COALESCE(unit, '') FROM pg_settings "
            "WHERE name IN ('work_mem', 'shared_buffers', 'jit')")).all())
        counts = {lid: conn.execute(sa.text(f"SELECT count(*) FROM {catalog.get(lid).qualified_table}")).scalar()
                  for lid in ("cameras", "base_stations", "iot_nodes", "addresses", "charging_stations",
                              "smart_poles", "bus_stops", "towns")}
    engine.dispose()
    print(f"[{url.rsplit('@', 1)[-1]}] {settings}; features:", ", ".join(f"{k}={v:,}" for k, v in counts.items()))


def measure(server: Server, recorder: PlanRecorder | None = None) -> IndicatorEngine:
    """Recompute every indicator, then every derived output, on ``server``; record the times."""
    engine = make_engine(server.url)
    ind = IndicatorEngine(engine, load_catalog(), Settings(database_url=server.url, environment="test"))
    derived = [f"derived:{n}" for n in ("gap_camera_hex", "gap_charging", "gap_5g", "gap_unsensored_sites",
                                        "suggested_sites", "camera_density_raster")]
    if recorder is not None:
        with recorder.record(engine):
            ind.compute(ind.indicators.ids, force=True)
            ind.ensure(derived, refresh=True)
        return ind
    t = time.perf_counter()
    server.add(ind.compute(ind.indicators.ids, force=True))
    server.indicators_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    server.add(ind.ensure(derived, refresh=True))
    server.derived_s.append(time.perf_counter() - t)
    return ind


def report(servers: list[Server]) -> None:
    med = statistics.median
    runs = len(servers[0].indicators_s)
    print(f"\nmedians of {runs} run(s), servers measured alternately in this run (target: each < 10 s)")
    print(f"  {'':36s}" + "".join(f"{s.label:>12s}" for s in servers) + ("   stock/tuned" if len(servers) > 1 else ""))
    rows = [("all 14 indicators, district + towns", [med(s.indicators_s) for s in servers]),
            ("gap layers, suggestions, raster", [med(s.derived_s) for s in servers]),
            ("total", [med(s.indicators_s) + med(s.derived_s) for s in servers])]
    for label, values in rows:
        ratio = f"{values[1] / values[0]:14.2f}" if len(values) > 1 and values[0] else ""
        print(f"  {label:36s}" + "".join(f"{v:11.2f}s" for v in values) + ratio)
    print()
    keys = sorted(servers[0].per_key_ms, key=lambda k: -med(servers[-1].per_key_ms[k]))
    for key in keys:
        print(f"  {key:36s}" + "".join(f"{med(s.per_key_ms[key]) / 1000:11.2f}s" for s in servers))
    if runs > 1:
        spread = ", ".join(f"{s.label} indicators {min(s.indicators_s):.2f}-{max(s.indicators_s):.2f} s, derived "
                           f"{min(s.derived_s):.2f}-{max(s.derived_s):.2f} s" for s in servers)
        print(f"\n  range: {spread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="plan", choices=["small", "baseline", "plan"])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--skip-load", action="store_true", help="use the data already in the database(s)")
    parser.add_argument("--stock", action="store_true", help="also measure on a default-settings PostgreSQL")
    parser.add_argument("--stock-url", default=None, help="the default-settings database (implies --stock)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per server (medians are printed)")
    parser.add_argument("--plans", action="store_true", help="check every statement's plan on the stock server")
    args = parser.parse_args()
    servers = [Server("tuned", args.database_url or named_database(BENCH_DB))]
    cluster, started = None, False
    if args.stock or args.stock_url:
        url = args.stock_url
        if url is None:
            cluster, started = stock_cluster(Path(Settings().home))
            url = named_database(BENCH_DB, cluster.url())
        servers.append(Server("stock", url))
    try:
        for server in servers:
            prepare(server.url, args.scale, args.skip_load)
        if args.plans:
            recorder = PlanRecorder()
            measure(servers[-1], recorder)
            print(f"\n[{servers[-1].label}] {len(recorder.statements)} statements planned; degrading shapes: "
                  f"{len(recorder.problems)}")
            for statement, problem in recorder.problems:
                print(f"  PROBLEM {problem}: {statement.head()}")
            for statement in recorder.slowest(10):
                print(f"  {statement.seconds:6.2f} s  {statement.head()}")
        ind = None
        for _ in range(args.repeat):
            for server in servers:
                ind = measure(server)
        report(servers)
        t = time.perf_counter()
        ind.results()
        print(f"\nall indicators served fresh from storage ({servers[-1].label}): "
              f"{(time.perf_counter() - t) * 1000:.0f} ms")
        summary = ind.derived(["suggested_sites"])["suggested_sites"]
        for kind, s in summary.items():
            if isinstance(s, dict) and "sites" in s:
                print(f"  suggestions {kind}: {s['sites']} sites ({s['devices']} devices), "
                      f"closes gap: {s['closes_gap']}")
        ind.engine.dispose()
    finally:
        if started:
            cluster.stop()


if __name__ == "__main__":
    main()
