"""Exports of the plan-scale standard addresses (~300,000) through a real `cim serve`: time and throughput of each
format (f=parquet, fgb, gpkg, geojsonseq), the server's resident-memory growth, and deep pages by offset vs keyset.

    python benchmarks/bench_export.py [--database-url URL] [--rounds 3]

Without ``--database-url`` a `cim_bench_export` database on the local cluster (or on CIM_TEST_DATABASE_URL's
server) is loaded once with the plan-scale demo's district and addresses (``CIM_DEMO_SCALE=plan``: pipelines.demo,
default seed). Each export is downloaded in full by a streaming client on the same machine; the figure is the
wall time from the request to the last byte (median of the rounds, after one unmeasured warm-up per format).
Results are printed and appended to benchmarks/RESULTS.md with --write.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FORMATS = ("parquet", "fgb", "geojsonseq", "gpkg")


def bench_database(url: str | None) -> str:
    if url:
        return url
    from _common import named_database

    from cim_service.core.catalog import Role, load_catalog
    from cim_service.store.db import make_engine
    from pipelines.demo.build import build_demo, frame_sha256, layer_frames
    from pipelines.load import load_geodataframe

    bench = named_database("cim_bench_export", os.environ.get("CIM_TEST_DATABASE_URL"))
    engine = make_engine(bench)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM cim.addresses")).scalar_one()
    if n < 250_000:
        print("loading the plan-scale demo's district and addresses into cim_bench_export (once)...", flush=True)
        catalog = load_catalog()
        frames = layer_frames(catalog, build_demo("plan"))
        district = catalog.require_role(Role.district_outline)
        addresses = catalog.require_role(Role.standard_addresses)
        for spec in (district, addresses):
            frame = frames[spec.id]
            load_geodataframe(engine, spec, frame, source_name=f"demo-plan-{spec.id}",
                              source_sha256=frame_sha256(frame), source_crs="EPSG:4326",
                              options={"demo": {"scale": "plan"}}, replace=True, outline=district)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE cim.addresses"))
    engine.dispose()
    return bench


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRss(threading.Thread):
    """Peak RSS of the service, and the CPU time of the PostgreSQL backends serving the export's database."""

    def __init__(self, proc: psutil.Process, database: str):
        super().__init__(daemon=True)
        self.proc, self.peak, self.stop = proc, proc.memory_info().rss, threading.Event()
        self.database, self.backend_cpu = database, {}
        self.before = {p.pid: _cpu(p) for p in self._backends()}

    def _backends(self) -> list[psutil.Process]:
        out = []
        for p in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if cmd.startswith("postgres:") and f" {self.database} " in cmd:
                out.append(p)
        return out

    def run(self) -> None:
        tick = 0
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            if tick % 10 == 0:
                for p in self._backends():
                    try:
                        self.backend_cpu[p.pid] = _cpu(p)
                    except psutil.Error:
                        pass
            tick += 1
            time.sleep(0.01)

    @property
    def database_cpu(self) -> float:
        return sum(c - self.before.get(pid, 0.0) for pid, c in self.backend_cpu.items())


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


#: Accept-Encoding of the downloads (--accept-encoding; identity: the files' own bytes, as before)
ACCEPT = {"Accept-Encoding": "identity"}


def download(url: str, params: dict) -> tuple[float, int]:
    """Seconds to the last byte and the bytes on the wire (compressed when a coding was accepted)."""
    t0 = time.perf_counter()
    size = 0
    with httpx.stream("GET", url, params=params, timeout=600, headers=ACCEPT) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 20):
            size += len(chunk)
    return time.perf_counter() - t0, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    ap.add_argument("--accept-encoding", default="identity", choices=["identity", "gzip", "br"],
                    help="coding the client accepts (sizes are then bytes on the wire)")
    args = ap.parse_args()
    ACCEPT["Accept-Encoding"] = args.accept_encoding
    url = bench_database(args.database_url)
    with sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)).connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM cim.addresses")).scalar_one()
    port = free_port()
    env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_GAP_REFRESH": "off", "CIM_TILE_CACHE": "off"}
    proc = subprocess.Popen([sys.executable, "-m", "cim_service", "serve", "--port", str(port), "--log-level",
                             "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        items = f"{base}/collections/addresses/items"
        server = psutil.Process(proc.pid)
        rows = []
        for fmt in FORMATS:
            download(items, {"f": fmt})  # warm-up
            times, cpus, dbcpus, growth = [], [], [], 0
            for _ in range(args.rounds):
                rss_before, cpu_before = server.memory_info().rss, server.cpu_times()
                probe = PeakRss(server, url.rsplit("/", 1)[1])
                probe.start()
                seconds, size = download(items, {"f": fmt})
                probe.stop.set()
                probe.join()
                cpu_after = server.cpu_times()
                times.append(seconds)
                cpus.append(cpu_after.user - cpu_before.user + cpu_after.system - cpu_before.system)
                dbcpus.append(probe.database_cpu)
                growth = max(growth, probe.peak - rss_before)
            median, cpu, dbcpu = statistics.median(times), statistics.median(cpus), statistics.median(dbcpus)
            rows.append((fmt, median, min(times), size, n / median, size / median / 1e6, growth / 2**20, cpu,
                         dbcpu))
            print(f"{fmt:11s} median {median:6.2f} s (best {min(times):.2f}) {size / 1e6:8.1f} MB "
                  f"{n / median:9,.0f} features/s {size / median / 1e6:6.1f} MB/s  service CPU {cpu:.2f} s  "
                  f"database CPU {dbcpu:.2f} s  "
                  f"RSS +{growth / 2**20:.0f} MB  load {os.getloadavg()[0]:.1f}", flush=True)
        # a deep page: offset vs the keyset cursor of the same position
        deep = n - 1000
        first = httpx.get(items, params={"limit": 100, "offset": deep - 100}, timeout=60).json()
        nxt = next(link["href"] for link in first["links"] if link["rel"] == "next")
        paging = {}
        for label, target, params in (("offset", items, {"limit": 100, "offset": deep}), ("cursor", nxt, None)):
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                r = httpx.get(target, params=params, timeout=60)
                samples.append(time.perf_counter() - t0)
                assert r.status_code == 200
            paging[label] = statistics.median(samples)
        print(f"page of 100 at position {deep:,}: offset {paging['offset'] * 1000:.1f} ms, "
              f"cursor {paging['cursor'] * 1000:.1f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if args.write:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"\n## Exports of the plan-scale addresses ({n:,} features)\n",
                 f"Generated by `python benchmarks/bench_export.py --rounds {args.rounds} --write` on {stamp}; "
                 "one `cim serve` worker, streaming client on the same 2-core machine (shared with other jobs); "
                 "wall time from request to last byte, median of the rounds after a warm-up.\n",
                 f"Load average at the end: {os.getloadavg()[0]:.1f} on 2 cores. `service CPU` is the CPU time of "
                 "the `cim serve` process for one export, `database CPU` that of the PostgreSQL backend(s) serving it "
                 "(sampled every 100 ms); on an otherwise idle 2-core machine the two overlap (the next batch is "
                 "read while one is written), so the wall time is bounded below by the larger of the two.\n",
                 "| format | median s | best s | size MB | features/s | MB/s | service CPU s | database CPU s "
                 "| server RSS growth MB | target |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for fmt, median, best, size, fps, mbps, growth, cpu, dbcpu in rows:
            target = "<= 5 s" if fmt == "parquet" else ""
            lines.append(f"| {fmt} | {median:.2f} | {best:.2f} | {size / 1e6:.1f} | {fps:,.0f} | {mbps:.1f} | "
                         f"{cpu:.2f} | {dbcpu:.2f} | {growth:.0f} | {target} |")
        lines.append(f"\nA page of 100 features at position {deep:,} (median of 5): by `offset` "
                     f"{paging['offset'] * 1000:.1f} ms, by the keyset `cursor` of its `next` link "
                     f"{paging['cursor'] * 1000:.1f} ms.\n")
        with (ROOT / "benchmarks" / "RESULTS.md").open("a", encoding="utf-8") as f:
            f.write("\n".join(lines))


if __name__ == "__main__":
    main()
