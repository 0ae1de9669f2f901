"""Benchmark: the live state of all the plan's 100,000 city neuron nodes (items and a district tile).

Usage: ``python3 benchmarks/bench_live.py [--nodes 100000] [--runs 15] [--server-url URL]``

Set-up (kept between runs): database ``cim_bench_live`` on ``--server-url``'s server (default: the project-local
cluster), ``iot_nodes`` filled with ``--nodes`` synthetic nodes over Minhang, their Things and Datastreams made
by ``sta_entities.sync_layer`` (battery, signal and the kind's own property: ~3 datastreams a node) and one latest
battery reading per node (5 % of the nodes left without one, so they are offline).

Measured (p50 / p95 of ``--runs``), each statement as the service sends it:
1. items: one page of every node with its live members (``features.query.items_sql``, limit = nodes), and the
   same page without them (the cost of the join);
2. the vector tile covering the district (WebMercatorQuad z10, thinned like the map's first view) and a z14 tile
   in the busiest part, with and without the live members (``tiles.mvt.build_tile_sql``).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import morecantile
import psycopg
import sqlalchemy as sa
from _common import named_database

from cim_service.core.catalog import load_catalog
from cim_service.features.crs import resolve_crs
from cim_service.features.query import ItemsQuery, items_sql
from cim_service.store import observations, sta_entities
from cim_service.store.db import make_engine
from cim_service.store.observations import Observation
from cim_service.tiles.mvt import build_tile_sql
from cim_service.tiles.tms import tile_ref

BENCH_DB = "cim_bench_live"
KINDS = ["environment", "building", "road", "water", "power", "gas", "fire", "other"]
BBOX = (121.33, 31.0, 121.53, 31.2)  # Minhang, roughly


def prepare(url: str, n: int) -> None:
    catalog = load_catalog()
    spec = catalog.get("iot_nodes")
    engine = make_engine(url)
    with engine.begin() as conn:
        have = conn.execute(sa.text(f"SELECT count(*) FROM {spec.qualified_table}")).scalar_one()
        if have != n:
            conn.execute(sa.text(f"TRUNCATE {spec.qualified_table}"))
            conn.execute(sa.text(
                f"""INSERT INTO {spec.qualified_table} (feature_key, node_id, sensor_kind, installed_at, geom)
                SELECT 'N' || lpad(i::text, 6, '0'), 'N' || lpad(i::text, 6, '0'),
                       (CAST(:kinds AS text[]))[1 + i % 8], DATE '2024-01-01',
                       ST_SetSRID(ST_MakePoint(CAST(:x0 AS float8) + random() * CAST(:dx AS float8),
                                               CAST(:y0 AS float8) + random() * CAST(:dy AS float8)), 4326)
                  FROM generate_series(1, :n) AS i"""),
                {"kinds": KINDS, "x0": BBOX[0], "dx": BBOX[2] - BBOX[0], "y0": BBOX[1], "dy": BBOX[3] - BBOX[1],
                 "n": n})
            t0 = time.perf_counter()
            report = sta_entities.sync_layer(conn, spec)
            print(f"set-up: {n} nodes, {report.datastreams} datastreams in {time.perf_counter() - t0:.1f} s")
        ids = conn.execute(sa.text(
            "SELECT id FROM cim_sta.datastream WHERE catalog_key LIKE 'iot_nodes|%|battery' ORDER BY id")
        ).scalars().all()
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [Observation(ds, now - timedelta(seconds=rng.randint(1, 600)), float(rng.randint(0, 100)))
            for ds in ids if rng.random() > 0.05]
    with engine.begin() as conn:
        observations.ensure_partitions_around(conn, now, back_days=1)
        conn.execute(sa.text("TRUNCATE cim_sta.latest"))
        observations.write_batch(conn.connection.driver_connection, rows)
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    print(f"latest readings: {len(rows)} of {len(ids)} battery datastreams")


def timed(conn: psycopg.Connection, sql: str, args: list | tuple, runs: int) -> tuple[float, float, int]:
    """Median and p95 (ms) of ``runs`` executions, and the size of the result (features text or MVT)."""
    sql, named = re.sub(r"\$(\d+)", r"%(p\1)s", sql.replace("%", "%%")), {f"p{i}": v for i, v in enumerate(args, 1)}
    times, size = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        row = conn.execute(sql, named, prepare=False).fetchone()
        times.append((time.perf_counter() - t0) * 1000)
        size = len(row[2] if len(row) > 1 else row[0] or b"")
    times.sort()
    return statistics.median(times), times[max(0, int(round(0.95 * len(times))) - 1)], size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--server-url")
    args = ap.parse_args()
    url = named_database(BENCH_DB, args.server_url)
    prepare(url, args.nodes)
    spec = load_catalog().get("iot_nodes")
    wmq = morecantile.tms.get("WebMercatorQuad")
    with psycopg.connect(url) as conn:
        for label, offline in (("items, live", 3600.0), ("items, plain", None)):
            q = ItemsQuery(spec=spec, properties=list(spec.fields), crs=resolve_crs(None, "crs"),
                           order=[('"id"', True)], limit=args.nodes, offset=0, offline_s=offline)
            sql = items_sql(q)
            p50, p95, size = timed(conn, sql, q.params.values, args.runs)
            print(f"{label:<22} {args.nodes} features  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {size / 1e6:.1f} MB")
        centre = wmq.tile((BBOX[0] + BBOX[2]) / 2, (BBOX[1] + BBOX[3]) / 2, 10)
        busy = wmq.tile((BBOX[0] + BBOX[2]) / 2, (BBOX[1] + BBOX[3]) / 2, 14)
        for z, t in ((10, centre), (14, busy)):
            tile = tile_ref("WebMercatorQuad", z, t.x, t.y)
            for label, offline in (("live", 3600.0), ("plain", None)):
                ts = build_tile_sql(spec, tile, tuple(spec.field_names), 200_000, offline_s=offline)
                p50, p95, size = timed(conn, ts.sql, ts.args, args.runs)
                print(f"tile z{z} {label:<14}               p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
