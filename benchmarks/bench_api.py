"""Side-by-side API benchmark: Minhang CIM vs tipg on the same PostGIS database (run on demand, not in tests).

    python benchmarks/bench_api.py                      # plan-scale data in the local cluster's `cim` database,
                                                        # or 70,000 synthetic cameras in `cim_bench` when absent
    python benchmarks/bench_api.py --database-url postgresql://...  --out benchmarks/RESULTS.md

Both services run under uvicorn with one worker on 127.0.0.1; tipg runs from its own virtualenv
(``.cim/bench-venv``, ``pip install tipg uvicorn``) so its pins never touch ours. Each scenario sends the same
request list to each service with ``--concurrency`` client tasks (httpx, keep-alive, ``Accept-Encoding:
identity`` so neither server spends time compressing), after an unmeasured warm-up pass. See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx  # readiness probes only; the load client is a minimal asyncio HTTP/1.1 client
import morecantile
import sqlalchemy as sa

PROJECT = Path(__file__).resolve().parent.parent
VENV = PROJECT / ".cim" / "bench-venv"
ASYNCPG_DRIVER = Path(__file__).resolve().parent / "asyncpg_driver"
WMQ = morecantile.tms.get("WebMercatorQuad")
MINHANG = (121.33, 30.98, 121.55, 31.23)
SYNTHETIC_CAMERAS = 70_000
#: what the load client accepts (``--encoding``): identity by default, so neither server compresses
ACCEPT_ENCODING = "identity"


# -- data ------------------------------------------------------------------------------------------

def _count(url: str) -> int:
    from cim_service.store.db import make_engine

    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM cim.cameras")).scalar_one()
    except sa.exc.SQLAlchemyError:
        return 0
    finally:
        eng.dispose()


def prepare_database(url: str | None, min_cameras: int, data: str) -> tuple[str, str]:
    """Return (database URL, data description).

    With ``--database-url``: that database as it is. Otherwise the local cluster's `cim` database when it holds
    the plan-scale demo (``cim demo --scale plan``); else a `cim_bench` database on the same cluster, loaded once
    with the plan-scale demo (``pipelines.demo.load_demo``) or, with ``--data synthetic``, 70,000 seeded cameras.
    """
    from cim_service.core.settings import Settings
    from cim_service.store.localdb import resolve_database_url

    if url:
        return url, f"{_count(url):,} cameras (given database)"
    base = resolve_database_url(Settings())
    n = _count(base)
    if n >= min_cameras:
        return base, f"{n:,} cameras (local `cim` database)"
    from _common import named_database

    bench = named_database("cim_bench", base)
    n = _count(bench)
    if n < min_cameras:
        print(f"loading {data} data into cim_bench (once)...", flush=True)
        _load_plan_demo(bench) if data == "demo" else _make_synthetic(bench)
        n = _count(bench)
    kind = "plan-scale demo (pipelines.demo, seed default)" if data == "demo" else "synthetic cameras"
    return bench, f"{n:,} cameras, {kind}, in `cim_bench`"


def _load_plan_demo(bench: str) -> None:
    from cim_service.core.catalog import load_catalog
    from cim_service.store.db import make_engine
    from pipelines.demo import load_demo

    eng = make_engine(bench)
    load_demo(eng, load_catalog(), scale="plan")
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    eng.dispose()


def _make_synthetic(bench: str) -> None:
    """Fill `cim_bench` with 70,000 cameras clustered around 14 seeded centres in Minhang."""
    from cim_service.core.catalog import load_catalog
    from cim_service.store.db import make_engine
    from cim_service.store.layer_state import bump_version

    catalog = load_catalog()
    eng = make_engine(bench)
    rng = random.Random(20251)
    centres = [(rng.uniform(121.36, 121.52), rng.uniform(31.00, 31.20)) for _ in range(14)]
    types = ["bullet", "dome", "ptz", "checkpoint", "panoramic"]
    rows = []
    for i in range(SYNTHETIC_CAMERAS):
        if i % 3 == 0:  # a third spread evenly, two thirds around centres
            lon, lat = rng.uniform(121.33, 121.55), rng.uniform(30.98, 31.23)
        else:
            cx, cy = centres[i % len(centres)]
            lon, lat = rng.gauss(cx, 0.02), rng.gauss(cy, 0.02)
        rows.append({"k": f"bench-{i}", "d": f"{31011200001310000000 + i}", "t": types[i % 5],
                     "dir": float(i % 360), "x": lon, "y": lat})
    with eng.begin() as conn:
        conn.execute(sa.text("TRUNCATE cim.cameras"))
        conn.execute(sa.text(
            "INSERT INTO cim.cameras (feature_key, device_id, camera_type, direction_deg, installed_at, geom) "
            "VALUES (:k, :d, :t, :dir, DATE '2023-06-01', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"), rows)
        bump_version(conn, "cameras", catalog.get("cameras").qualified_table)
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE cim.cameras"))
    eng.dispose()


def camera_points(url: str, n: int, seed: int) -> list[tuple[float, float]]:
    """`n` camera locations drawn reproducibly from the database (tiles and bboxes where the data is)."""
    from cim_service.store.db import make_engine

    eng = make_engine(url)
    with eng.connect() as conn:
        conn.execute(sa.text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        rows = conn.execute(sa.text(
            "SELECT ST_X(geom), ST_Y(geom) FROM cim.cameras ORDER BY random() LIMIT :n"), {"n": n}).all()
    eng.dispose()
    return [(float(x), float(y)) for x, y in rows]


# -- servers ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    base: str
    proc: subprocess.Popen
    collection: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _wait(base: str, path: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180  # a start-up wait on a loaded machine, not a measure
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def start_ours(url: str, cache: bool, workdir: Path, driver: str = "psycopg", python: str | None = None,
               label: str | None = None, source: Path | None = None) -> Server:
    """Our service under uvicorn; ``python``: the interpreter of another checkout's venv (its code is served);
    ``source``: a source tree served with this interpreter (first on ``PYTHONPATH``)."""
    port = free_port()
    env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_TILE_CACHE": "on" if cache else "off",
           "CIM_ENVIRONMENT": "production", "CIM_LOG_JSON": "false"}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))
    if driver == "asyncpg":  # the same service on asyncpg (benchmarks/asyncpg_driver/sitecustomize.py)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ASYNCPG_DRIVER), str(PROJECT),
                                                          os.environ.get("PYTHONPATH")]))
    log = workdir / f"ours-{port}.log"
    proc = subprocess.Popen(
        [python or sys.executable, "-m", "uvicorn", "cim_service.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"],
        env=env, cwd=workdir, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    _wait(base, "/tileMatrixSets", proc, log)
    return Server(label or (f"cim {driver}" + (" (cache on)" if cache else "")), base, proc, "cameras")


def start_tipg(url: str, workdir: Path) -> Server:
    uvicorn = VENV / "bin" / "uvicorn"
    if not uvicorn.exists():
        raise SystemExit(f"tipg is not installed: python3 -m venv {VENV} && {VENV}/bin/pip install tipg uvicorn")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "TIPG_NAME": "tipg-bench", "TIPG_DB_SCHEMAS": '["cim"]',
           "TIPG_DB_TABLES": '["cim.cameras"]'}
    log = workdir / f"tipg-{port}.log"
    proc = subprocess.Popen(
        [str(uvicorn), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--no-access-log", "--log-level", "warning"],
        env=env, cwd=workdir, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    _wait(base, "/collections", proc, log)
    return Server("tipg", base, proc, "cim.cameras")


# -- load ------------------------------------------------------------------------------------------

@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0
    bytes: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(round(q * (len(data) - 1))))] * 1000 if data else float("nan")


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str) -> tuple[int, int]:
    """One keep-alive HTTP/1.1 GET with a minimal client (cheap, so the servers are what is measured)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head[9:12])
    length = 0
    if "content-length:" in head:
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        await reader.readexactly(length)
    elif "transfer-encoding: chunked" in head:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            length += size
            if size == 0:
                break
    return status, length


async def run_load(base: str, paths: list[str], concurrency: int) -> Result:
    result = Result()
    host, port = base.removeprefix("http://").split(":")
    queue = list(reversed(paths))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                path = queue.pop()
                t0 = time.perf_counter()
                status, size = await _get(reader, writer, f"{host}:{port}", path)
                result.latencies.append(time.perf_counter() - t0)
                result.bytes += size
                result.errors += status not in (200, 204)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall = time.perf_counter() - t0
    return result


def merge(results: list[Result]) -> Result:
    out = Result()
    for r in results:
        out.latencies += r.latencies
        out.wall += r.wall
        out.errors += r.errors
        out.bytes += r.bytes
    return out


# -- scenarios -------------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    make: object  # callable(collection) -> list[str]
    target: str
    cached: bool = False  # measured against our service with the tile cache on
    tiles: list[tuple[int, int, int]] = field(default_factory=list)  # z/x/y of a tile scenario (for --pgbench)


def tile_paths(points: list[tuple[float, float]], z: int, n: int) -> list[tuple[int, int, int]]:
    tiles = list(dict.fromkeys((z, t.x, t.y) for t in (WMQ.tile(x, y, z) for x, y in points)))
    return tiles[:n]


def build_scenarios(points: list[tuple[float, float]], quick: bool) -> list[Scenario]:
    k = 3 if quick else 1
    z12 = tile_paths(points, 12, 40) * (3 // k or 1)
    z14 = tile_paths(points, 14, 160 // k)
    z16 = tile_paths(points, 16, 300 // k)
    rng = random.Random(7)
    boxes = []
    for x, y in rng.sample(points, min(len(points), 300 // k)):
        d = 0.0025  # ~250 m half-size: a street block or two
        boxes.append(f"{x - d:.6f},{y - d:.6f},{x + d:.6f},{y + d:.6f}")

    def tiles(ts):
        return lambda c: [f"/collections/{c}/tiles/WebMercatorQuad/{z}/{x}/{y}" for z, x, y in ts]

    return [
        Scenario("tiles z12, uncached", tiles(z12), ">= 1.5x", tiles=z12),
        Scenario("tiles z14, uncached", tiles(z14), ">= 1.5x", tiles=z14),
        Scenario("tiles z16, uncached", tiles(z16), ">= 1.5x", tiles=z16),
        Scenario("tiles z14, cached (after a warm pass)", tiles(z14), ">= 10x", cached=True, tiles=z14),
        Scenario("items small bbox, limit 100", lambda c: [f"/collections/{c}/items?bbox={b}&limit=100"
                                                           for b in boxes], ">= 1.5x, p95 < 50 ms"),
        Scenario("items page of 10,000", lambda c: [f"/collections/{c}/items?limit=10000"] * (12 // k),
                 ">= 3x faster"),
    ]


def warm(server: Server, sc: Scenario, concurrency: int) -> None:
    """Unmeasured pass: connection pools, prepared statements, PostgreSQL buffers; fills the tile cache."""
    asyncio.run(run_load(server.base, sc.make(server.collection), concurrency))


def measure(servers: tuple[Server, Server], sc: Scenario, concurrency: int, rounds: int) -> tuple[Result, Result]:
    """Alternate the two servers over ``rounds`` passes so background load hits both alike."""
    runs: dict[str, list[Result]] = {s.name: [] for s in servers}
    for i in range(rounds):
        for server in servers if i % 2 == 0 else servers[::-1]:
            runs[server.name].append(asyncio.run(run_load(server.base, sc.make(server.collection), concurrency)))
    return merge(runs[servers[0].name]), merge(runs[servers[1].name])


def pgbench_script(tiles: list[tuple[int, int, int]]) -> str:
    """A pgbench script running our tile SQL of ``cameras`` (anonymous fields) for a random tile of ``tiles``.

    The SQL is :func:`cim_service.tiles.mvt.build_tile_sql`'s, its envelope made by ``ST_TileEnvelope`` from the
    tile drawn (the same bounds as ours) and its other parameters inlined: the database's work per tile alone.
    """
    from cim_service.core.catalog import load_catalog
    from cim_service.tiles.mvt import build_tile_sql
    from cim_service.tiles.tms import tile_ref

    spec = load_catalog().get("cameras")
    fields = tuple(f.name for f in spec.public_fields(personal_data=False))
    z = tiles[0][0]
    from cim_service.core.settings import Settings

    q = build_tile_sql(spec, tile_ref("WebMercatorQuad", *tiles[0]), fields, Settings().max_features_per_tile)
    xs, ys = ",".join(str(t[1]) for t in tiles), ",".join(str(t[2]) for t in tiles)
    sql = q.sql.replace("ST_MakeEnvelope($1::float8, $2::float8, $3::float8, $4::float8, 3857)",
                        f"ST_TileEnvelope({z}, (ARRAY[{xs}])[:i], (ARRAY[{ys}])[:i])")
    sql = sql.replace("$1::float8", "ST_XMin(env.e)").replace("$2::float8", "ST_YMin(env.e)")  # thinning cells
    sql = sql.replace("$5::float8", repr(q.args[4])).replace("$6::text", f"'{q.args[5]}'")
    if len(q.args) > 6:  # thinned tiles: the cell size
        sql = sql.replace("$7::float8", repr(q.args[6]))
    if "$" in sql:
        raise RuntimeError("pgbench: a tile parameter was not inlined")
    return f"\\set i random(1, {len(tiles)})\n" + " ".join(sql.split()) + ";\n"


def run_pgbench(url: str, tiles: list[tuple[int, int, int]], concurrency: int, seconds: int, workdir: Path) -> float:
    """Transactions per second of :func:`pgbench_script` with ``concurrency`` clients (prepared statements)."""
    from sqlalchemy.engine import make_url

    from cim_service.store.localdb import find_pg_bindir

    script = workdir / f"tiles-z{tiles[0][0]}.sql"
    script.write_text(pgbench_script(tiles), encoding="utf-8")
    u = make_url(url)
    cmd = [str(find_pg_bindir() / "pgbench"), "-n", "-M", "prepared", "-c", str(concurrency), "-j", str(concurrency),
           "-T", str(seconds), "-f", str(script), "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432),
           "-U", u.username or "postgres", u.database or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": u.password} if u.password else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return float(out.split("tps = ", 1)[1].split()[0])


def _row(name: str, target: str, ours: Result, tipg: Result) -> str:
    ratio = ours.rps / tipg.rps if tipg.rps else float("nan")
    speed = tipg.pct(0.5) / ours.pct(0.5) if ours.latencies else float("nan")
    ours_b = ours.bytes // max(1, len(ours.latencies))
    tipg_b = tipg.bytes // max(1, len(tipg.latencies))
    return (f"| {name} | {len(ours.latencies)} | {ours.rps:.1f} | {ours.pct(.5):.1f} | {ours.pct(.95):.1f} | "
            f"{ours.errors} | {tipg.rps:.1f} | {tipg.pct(.5):.1f} | {tipg.pct(.95):.1f} | {tipg.errors} | "
            f"**{ratio:.2f}x** | {speed:.2f}x | {ours_b} | {tipg_b} | {target} |")


HEADER = ("| scenario | requests | ours req/s | ours p50 ms | ours p95 ms | ours errors | tipg req/s | tipg p50 ms | "
          "tipg p95 ms | tipg errors | throughput ours/tipg | p50 speed-up | ours bytes/req | tipg bytes/req | "
          "target |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternating passes per scenario and server")
    ap.add_argument("--min-cameras", type=int, default=50_000)
    ap.add_argument("--data", choices=["demo", "synthetic"], default="demo",
                    help="what to load into `cim_bench` when no plan-scale database exists")
    ap.add_argument("--quick", action="store_true", help="a third of the requests")
    ap.add_argument("--only", default=None, help="run scenarios whose name contains this text")
    ap.add_argument("--out", type=Path, default=PROJECT / "benchmarks" / "RESULTS.md")
    ap.add_argument("--compare-drivers", action="store_true",
                    help="instead of tipg: our service on psycopg 3 vs the same service on asyncpg (print only)")
    ap.add_argument("--compare-checkout", type=Path, default=None,
                    help="instead of tipg: this checkout vs another one (its .venv, or its source tree served by "
                         "this interpreter), same scenarios (print only)")
    ap.add_argument("--encoding", default="identity",
                    help="Accept-Encoding of the load client, e.g. gzip (both servers compress)")
    ap.add_argument("--pgbench", type=int, default=0, metavar="SECONDS",
                    help="after each uncached tile row: our tile SQL alone in pgbench for SECONDS (physical limit)")
    args = ap.parse_args()
    global ACCEPT_ENCODING
    ACCEPT_ENCODING = args.encoding
    if args.compare_drivers:
        compare_drivers(args)
        return
    if args.compare_checkout:
        compare_checkout(args)
        return

    url, data = prepare_database(args.database_url, args.min_cameras, args.data)
    print(f"database: {url.rsplit('@', 1)[-1]} — {data}", flush=True)
    scenarios = build_scenarios(camera_points(url, 2000, 42), args.quick)
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]
    workdir = Path(tempfile.mkdtemp(prefix="cim-bench-"))
    servers = [start_tipg(url, workdir), start_ours(url, False, workdir), start_ours(url, True, workdir)]
    tipg, uncached, cached = servers
    rows = []
    try:
        for sc in scenarios:
            ours = cached if sc.cached else uncached
            warm(tipg, sc, args.concurrency)
            warm(ours, sc, args.concurrency)
            mine, theirs = measure((ours, tipg), sc, args.concurrency, args.rounds)
            rows.append(_row(sc.name, sc.target, mine, theirs))
            print(rows[-1], flush=True)
            if args.pgbench and sc.tiles and not sc.cached:
                tps = run_pgbench(url, sc.tiles, args.concurrency, args.pgbench, workdir)
                rows.append(f"| {sc.name}: the same SQL in pgbench ({args.concurrency} clients, {args.pgbench} s) | | "
                            f"{tps:.1f} | | | | | | | | **{mine.rps / tps:.2f}x of it** | | | | physical limit |")
                print(rows[-1], flush=True)
    finally:
        for server in servers:
            server.stop()
    report(args.out, data, args.concurrency, args.rounds, rows)


def compare_drivers(args: argparse.Namespace) -> None:
    """Our service on psycopg 3 vs on asyncpg (the driver the API used before), side by side, cache off."""
    url, data = prepare_database(args.database_url, args.min_cameras, args.data)
    print(f"database: {url.rsplit('@', 1)[-1]} — {data}", flush=True)
    scenarios = [s for s in build_scenarios(camera_points(url, 2000, 42), args.quick) if not s.cached]
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]
    workdir = Path(tempfile.mkdtemp(prefix="cim-bench-"))
    servers = (start_ours(url, False, workdir, "psycopg"), start_ours(url, False, workdir, "asyncpg"))
    print("| scenario | requests | psycopg req/s | p50 ms | p95 ms | asyncpg req/s | p50 ms | p95 ms | "
          "throughput psycopg/asyncpg |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    try:
        for sc in scenarios:
            for server in servers:
                warm(server, sc, args.concurrency)
            a, b = measure(servers, sc, args.concurrency, args.rounds)
            print(f"| {sc.name} | {len(a.latencies)} | {a.rps:.1f} | {a.pct(.5):.1f} | {a.pct(.95):.1f} | "
                  f"{b.rps:.1f} | {b.pct(.5):.1f} | {b.pct(.95):.1f} | **{a.rps / b.rps:.2f}x** |", flush=True)
    finally:
        for server in servers:
            server.stop()


def compare_checkout(args: argparse.Namespace) -> None:
    """This checkout's service vs another checkout's (before/after a change), rounds alternated."""
    url, data = prepare_database(args.database_url, args.min_cameras, args.data)
    print(f"database: {url.rsplit('@', 1)[-1]} — {data}; Accept-Encoding: {ACCEPT_ENCODING}", flush=True)
    scenarios = build_scenarios(camera_points(url, 2000, 42), args.quick)
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]
    checkout = args.compare_checkout.resolve()
    venv_python = checkout / ".venv" / "bin" / "python"  # a checkout without a venv: served by this interpreter
    other, source = (str(venv_python), None) if venv_python.exists() else (None, checkout)
    workdir = Path(tempfile.mkdtemp(prefix="cim-bench-"))
    print("| scenario | requests | this req/s | p50 ms | bytes/req | other req/s | p50 ms | bytes/req | "
          "throughput this/other |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for sc in scenarios:
        servers = (start_ours(url, sc.cached, workdir, label="this"),
                   start_ours(url, sc.cached, workdir, python=other, label="other", source=source))
        try:
            for server in servers:
                warm(server, sc, args.concurrency)
            a, b = measure(servers, sc, args.concurrency, args.rounds)
        finally:
            for server in servers:
                server.stop()
        print(f"| {sc.name} | {len(a.latencies)} | {a.rps:.1f} | {a.pct(.5):.2f} | {a.bytes // len(a.latencies)} | "
              f"{b.rps:.1f} | {b.pct(.5):.2f} | {b.bytes // len(b.latencies)} | **{a.rps / b.rps:.2f}x** |",
              flush=True)


def report(out: Path, data: str, concurrency: int, rounds: int, rows: list[str]) -> None:
    cpu = os.cpu_count()
    text = (f"# API benchmark: Minhang CIM vs tipg\n\nGenerated by `python benchmarks/bench_api.py` on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu} CPU cores shared by PostgreSQL, the "
            f"servers (one uvicorn worker each) and the load client.\n\n"
            f"Data: {data}. Concurrency: {concurrency} clients, keep-alive, Accept-Encoding: {ACCEPT_ENCODING} "
            f"(bytes/req: body bytes on the wire). Each scenario: one "
            f"unmeasured warm-up pass per server, then {rounds} measured passes alternating between the servers.\n"
            f"Uncached rows: our service with `CIM_TILE_CACHE=off`; the cached row: our service with the cache on "
            f"(warmed by the warm-up pass; tipg has no tile cache).\n\n"
            f"{HEADER}\n" + "\n".join(rows) + "\n")
    out.write_text(text + _notes(out), encoding="utf-8")
    print(f"written {out}")


def _notes(out: Path) -> str:
    """Keep a hand-written `## Notes` section of an existing RESULTS.md."""
    if out.exists():
        old = out.read_text(encoding="utf-8")
        if "\n## Notes" in old:
            return "\n" + old[old.index("\n## Notes") + 1:]
    return ""


if __name__ == "__main__":
    main()
