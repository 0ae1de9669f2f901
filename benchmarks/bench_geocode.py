"""Batch geocoding throughput: POST /geocode/batch on a served app (run on demand, not in tests).

    python benchmarks/bench_geocode.py --server-url postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/bench_geocode.py --database-url postgresql://.../cim --rows 20000 --rounds 3

Data: the given database as it is, or a ``cim_bench_geocode`` database on the server of ``--server-url`` (default:
the project-local cluster) loaded once with the demo at ``--scale`` (``baseline``: 60,000 standard addresses;
``plan``: 300,000). The upload: ``--rows`` addresses drawn from the standard addresses layer (seeded), written as
people type them: the standard text without 上海市/闵行区 for a third, with the district but no town for a third,
with a building and room added for the rest. The service runs under uvicorn (one worker); one unmeasured request
builds the address index, then each round posts a file (a new draw per round, so the parser's cache
holds only what earlier rounds happened to share) and times the response. Reported: addresses/s of
the HTTP round trip (upload, decode, parse, match, CSV out), the service process's CPU time per round (from
``/proc/<pid>/stat``: on a machine shared with other jobs, wall time also counts the time the process waited for a
core) and the share matched to door-plate precision or finer.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import cpu_seconds, named_database, serve  # noqa: E402

from cim_service.core.catalog import Role, load_catalog  # noqa: E402
from cim_service.store.db import make_engine  # noqa: E402


def prepare(database_url: str | None, server_url: str | None, scale: str) -> str:
    """The database to measure on (loaded with the demo when it is the benchmark's own and empty)."""
    if database_url:
        return database_url
    url = named_database("cim_bench_geocode", server_url)
    catalog = load_catalog()
    spec = catalog.require_role(Role.standard_addresses)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.execute(sa.text(f"SELECT count(*) FROM {spec.qualified_table}")).scalar_one()
        if n == 0:
            from pipelines.demo import load_demo

            print(f"loading the {scale} demo into cim_bench_geocode (once)...", flush=True)
            load_demo(engine, catalog, scale=scale)
    finally:
        engine.dispose()
    return url


def upload(url: str, rows: int, seed: int) -> tuple[bytes, int]:
    """A CSV of ``rows`` address texts drawn from the layer; also the layer's size."""
    spec = load_catalog().require_role(Role.standard_addresses)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            total = conn.execute(sa.text(f"SELECT count(*) FROM {spec.qualified_table}")).scalar_one()
            texts = [r[0] for r in conn.execute(sa.text(
                f'SELECT "full_address" FROM {spec.qualified_table} WHERE "road" IS NOT NULL ORDER BY "id"'))]
    finally:
        engine.dispose()
    rng = random.Random(seed)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "address"])
    for i in range(rows):
        text = rng.choice(texts)
        style = i % 3
        if style == 0:
            text = text.removeprefix("上海市").removeprefix("闵行区")
        elif style == 1:
            text = text.replace("上海市", "")
        else:
            text = f"{text}{rng.randint(1, 30)}号{rng.randint(101, 2404)}室" if text.endswith("弄") else text
        w.writerow([i, text])
    return buf.getvalue().encode("utf-8"), total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url")
    ap.add_argument("--server-url", help="PostgreSQL server for the benchmark's own database")
    ap.add_argument("--scale", default="baseline", choices=["small", "baseline", "plan"])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    url = prepare(args.database_url, args.server_url, args.scale)
    bodies = [upload(url, args.rows, args.seed + i) for i in range(args.rounds)]  # a new draw per round
    total = bodies[0][1]
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = serve(url, Path(tmp))
        try:
            with httpx.Client(base_url=base, timeout=600) as client:
                t0 = time.perf_counter()
                client.get("/geocode", params={"q": "莘松路958弄"}).raise_for_status()
                build_s = time.perf_counter() - t0
                times, cpu = [], []
                out = b""
                for body, _ in bodies:
                    t0, c0 = time.perf_counter(), cpu_seconds(proc.pid)
                    r = client.post("/geocode/batch", params={"column": "address"}, content=body,
                                    headers={"Content-Type": "text/csv"})
                    r.raise_for_status()
                    times.append(time.perf_counter() - t0)
                    cpu.append(cpu_seconds(proc.pid) - c0)
                    out = r.content
        finally:
            proc.terminate()
            proc.wait(10)
    rows = list(csv.DictReader(io.StringIO(out.decode("utf-8-sig"))))
    fine = sum(r["match_level"] in ("door_plate", "building") for r in rows)
    best = min(times)
    print(f"standard addresses in the layer: {total:,}; upload: {args.rows:,} rows, "
          f"{len(bodies[0][0]) / 1e6:.2f} MB")
    print(f"first request (address index built): {build_s:.2f} s")
    print(f"batch: best {best:.3f} s of {args.rounds} -> {args.rows / best:,.0f} addresses/s "
          f"(median {sorted(times)[len(times) // 2]:.3f} s)")
    print(f"service CPU per round: best {min(cpu):.3f} s -> {args.rows / min(cpu):,.0f} addresses per CPU second")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"matched to door plate or finer: {fine / len(rows):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
