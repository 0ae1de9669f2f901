"""Benchmark: the cost of the alert trigger on ``cim_sta.latest`` for the writers (the bridge's transaction).

Usage: ``python3 benchmarks/bench_alerts.py [--rows 200000] [--datastreams 100000] [--rounds 3] [--server-url URL]``

Database ``cim_bench_sensing`` (shared with ``bench_sensing.py``: 100,000 synthetic datastreams, kept between
runs). Each round writes ``--rows`` readings spread over the datastreams with ``observations.write_batch`` (COPY +
latest upsert, one transaction per batch of 5,000, as the bridge commits) in three set-ups, and reports rows/s:

1. ``off``: the alert triggers disabled (the writer as before alerts);
2. ``no rule``: triggers on, no rule watches these datastreams (every reading is looked at once);
3. ``rule, quiet``: a rule watches them (warning 90, alarm 95) and readings are 0-89: the prefilter path;
4. ``rule, 2 % alerting``: the same rule, 2 % of the readings beyond the warning (alerts raised, escalated,
   cleared: the procedural path, NOTIFY, the alert layer's feed).

The ratio ``on / off`` is the figure of the issue's 20,000 obs/s budget.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from _common import named_database
from bench_sensing import BENCH_DB, ensure_datastreams, reset_observations

from cim_service.store import alerts, observations
from cim_service.store.db import make_engine
from cim_service.store.observations import Observation

RULE = alerts.RuleRow(rule="bench", layer_id="bench", property="value", kind_field=None, site_kind="", sign=1.0,
                      warning=90.0, alarm=95.0, hysteresis=2.0, offline_s=None)


def triggers(engine, on: bool) -> None:
    with engine.begin() as conn:
        verb = "ENABLE" if on else "DISABLE"
        for name in ("alert_evaluate_insert", "alert_evaluate_update"):
            conn.execute(sa.text(f"ALTER TABLE cim_sta.latest {verb} TRIGGER {name}"))


def rules(engine, watched: bool) -> None:
    with engine.begin() as conn:
        alerts.sync_rules(conn, [RULE] if watched else [])
        conn.execute(sa.text("DELETE FROM cim_sta.alert_change"))
        conn.execute(sa.text("DELETE FROM cim_sta.alert"))


def run(engine, ids: list[int], n: int, alerting: float, t0: datetime) -> float:
    step = max(1, int(1 / alerting)) if alerting else 0
    rows = []
    for i in range(n):
        hot = step and i % step == 0
        value = 91.0 + (i // step) % 6 if hot else float(i % 90)
        rows.append(Observation(ids[i % len(ids)], t0 + timedelta(milliseconds=i), value))
    with engine.begin() as conn:
        observations.ensure_partitions(conn, {o.phenomenon_time.date() for o in rows})
    start = time.perf_counter()
    for k in range(0, n, 5000):
        with engine.begin() as conn:
            observations.write_batch(conn.connection.driver_connection, rows[k:k + 5000])
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--datastreams", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server-url")
    args = ap.parse_args()
    url = named_database(BENCH_DB, args.server_url)
    engine = make_engine(url)
    ids = ensure_datastreams(engine, args.datastreams)
    setups = [("off", False, False, 0.0), ("no rule", True, False, 0.0), ("rule, quiet", True, True, 0.0),
              ("rule, 2 % alerting", True, True, 0.02)]
    figures: dict[str, list[float]] = {label: [] for label, *_ in setups}
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=20)
    for r in range(args.rounds):
        for j, (label, on, watched, alerting) in enumerate(setups):
            reset_observations(engine)
            triggers(engine, on)
            rules(engine, watched)
            t0 = base + timedelta(minutes=10 * (r * len(setups) + j))
            figures[label].append(run(engine, ids, args.rows, alerting, t0))
            print(f"round {r + 1} {label:<20} {figures[label][-1]:>10,.0f} rows/s", flush=True)
    triggers(engine, True)
    rules(engine, False)
    off = statistics.median(figures["off"])
    print(f"\n{args.rows:,} readings over {len(ids):,} datastreams, batches of 5,000, median of {args.rounds}:")
    for label, values in figures.items():
        med = statistics.median(values)
        print(f"  {label:<20} {med:>10,.0f} rows/s  ({med / off:.2f} x off)")
    engine.dispose()


if __name__ == "__main__":
    main()
