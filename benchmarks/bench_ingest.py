"""Plan-scale ingest benchmark: 100,000 IoT nodes and 70,000 cameras as CSV into a throwaway database.

Run on demand (not part of the tests)::

    python3 benchmarks/bench_ingest.py [--iot 100000] [--cameras 70000] [--chunk-rows 50000]

Each ingest runs in a fresh child process, so the reported peak RSS is that ingest's own. The database is
created on the configured server (``CIM_DATABASE_URL``, else the project-local cluster), migrated, given
the project's district outline (so ``outside_district`` is computed as in production) and dropped at the
end. Reported: rows/s of the first load (empty layer), of a reload with 10 % of the rows changed (upsert
path), of an identical re-run (skipped), and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cim_service.core.catalog import load_catalog
from cim_service.core.settings import PROJECT_ROOT, Settings
from cim_service.store.db import make_engine
from cim_service.store.localdb import resolve_database_url
from cim_service.store.migrate import migrate

OUTLINE = PROJECT_ROOT / "cim_service" / "data" / "minhang_310112_gcj02.geojson"


def make_iot(path: Path, n: int, seed: int = 1, changed: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["environment", "building", "road", "water", "power", "gas", "fire", "other"], n)
    if changed:
        kinds[: int(n * changed)] = "other"
    pd.DataFrame({
        "node_id": [f"MH-IOT-{i:07d}" for i in range(n)],
        "sensor_kind": kinds,
        "installed_at": rng.choice(["2022-05-01", "2023-07-15", "2024-11-30", ""], n),
        "lng": np.round(rng.uniform(121.30, 121.55, n), 6),
        "lat": np.round(rng.uniform(30.98, 31.22, n), 6),
    }).to_csv(path, index=False)


def make_cameras(path: Path, n: int, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    pd.DataFrame({
        "device_id": [f"{31011200001320000000 + i}" for i in range(n)],
        "camera_type": rng.choice(["bullet", "dome", "ptz", "checkpoint", "panoramic"], n),
        "direction_deg": np.round(rng.uniform(0, 360, n), 1),
        "fov_deg": np.round(rng.uniform(30, 120, n), 1),
        "installed_at": rng.choice(["2021-03-01", "2023-09-09", ""], n),
        "owner": rng.choice(["区公安分局", "区城运中心", "街镇"], n),
        "经度": np.round(rng.uniform(121.30, 121.55, n), 6),
        "纬度": np.round(rng.uniform(30.98, 31.22, n), 6),
    }).to_csv(path, index=False, encoding="gbk")


def _child(url: str, layer: str, path: str, crs: str, chunk_rows: int, queue: mp.Queue) -> None:
    from pipelines.ingest import ingest_file

    try:
        engine = make_engine(url, poolclass=sa.pool.StaticPool)  # one connection: its backend does the load
        with engine.connect() as conn:
            backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        catalog = load_catalog()
        cpu0, server0 = time.process_time(), _backend_cpu(backend)
        start = time.perf_counter()
        result = ingest_file(engine, catalog, layer, path, crs=crs, chunk_rows=chunk_rows)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu0 + _backend_cpu(backend) - server0
        engine.dispose()
        queue.put((result, seconds, cpu, _peak_rss_mb()))
    except BaseException as exc:  # report to the parent instead of leaving it waiting
        queue.put(exc)
        raise


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's peak before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _backend_cpu(pid: int) -> float:
    """CPU seconds used so far by a PostgreSQL backend on this host (0 when it is remote)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ingest(url: str, layer: str, path: Path, crs: str, chunk_rows: int) -> tuple:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(url, layer, str(path), crs, chunk_rows, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if isinstance(out, BaseException):
        raise RuntimeError(f"ingest of {path.name} into {layer} failed: {out}") from out
    return out


def district_file(folder: str) -> Path:
    """Write the project's district outline (a bare GCJ-02 geometry) as a Feature with its attributes."""
    path = Path(folder, "district.geojson")
    geometry = json.loads(OUTLINE.read_text(encoding="utf-8"))
    feature = {"type": "Feature", "properties": {"adcode": "310112", "name": "闵行区"}, "geometry": geometry}
    path.write_text(json.dumps(feature), encoding="utf-8")
    return path


def throwaway_database() -> tuple[str, sa.Engine, str]:
    base = os.environ.get("CIM_DATABASE_URL") or resolve_database_url(Settings(database_url=None))
    server = make_url(base)
    name = f"cim_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return server.set(database=name).render_as_string(hide_password=False), admin, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iot", type=int, default=100_000)
    parser.add_argument("--cameras", type=int, default=70_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()
    url, admin, name = throwaway_database()
    try:
        engine = make_engine(url)
        migrate(engine, load_catalog())
        engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            run_ingest(url, "district", district_file(tmp), "gcj02", args.chunk_rows)
            files = {"iot_nodes": Path(tmp, "iot.csv"), "cameras": Path(tmp, "cameras_gbk.csv")}
            make_iot(files["iot_nodes"], args.iot)
            make_cameras(files["cameras"], args.cameras)
            changed = Path(tmp, "iot_changed.csv")
            make_iot(changed, args.iot, changed=0.10)
            print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
            rows = [
                ("iot_nodes", "first load (empty layer)", files["iot_nodes"], "wgs84"),
                ("cameras", "first load, GBK CSV, GCJ-02", files["cameras"], "gcj02"),
                ("iot_nodes", "reload, 10 % changed", changed, "wgs84"),
                ("iot_nodes", "identical re-run", changed, "wgs84"),
            ]
            print(f"{'layer':<10} {'case':<28} {'rows':>7} {'ins':>7} {'upd':>6} {'wall s':>6} {'rows/s':>8} "
                  f"{'cpu s':>6} {'rows/cpu-s':>10} {'peak RSS':>8}")
            for layer, case, path, crs in rows:
                result, seconds, cpu, rss = run_ingest(url, layer, path, crs, args.chunk_rows)
                print(f"{layer:<10} {case:<28} {result.rows_read:>7} {result.inserted:>7} {result.updated:>6} "
                      f"{seconds:>6.2f} {result.rows_read / seconds:>8,.0f} {cpu:>6.2f} "
                      f"{result.rows_read / max(cpu, 1e-9):>10,.0f} {rss:>6.0f}MB  [{result.status}]")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
