"""The ``cim ingest`` / ``ingest-batches`` / ``rejects`` commands, and a killed ingest (own throwaway database)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cim_service.cli import app
from pipelines.ingest import ingest_file


def _cim(db_url, *args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"CIM_DATABASE_URL": db_url, "COLUMNS": "200"})


def _q(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def test_ingest_summary_rerun_batches_and_rejects(db_url, db, shared_data, tmp_path):
    metro = shared_data / "metro/shanghai_metro_stations_gcj02.csv"
    first = _cim(db_url, "ingest", "metro_stations", metro, "--crs", "gcj02")
    assert first.exit_code == 0, first.output
    assert "committed" in first.output and "345" in first.output
    again = _cim(db_url, "ingest", "metro_stations", metro, "--crs", "gcj02")
    assert again.exit_code == 0 and "unchanged" in again.output
    assert _q(db, "SELECT count(*) FROM cim_meta.ingest_batch WHERE layer_id = 'metro_stations'") == [(1,)]

    stations = shared_data / "basestations/shanghai_telecom_2014_base_stations.csv"
    loaded = _cim(db_url, "ingest", "base_stations", stations, "--crs", "gcj02")
    assert loaded.exit_code == 0 and "cim rejects" in loaded.output
    batch_id, rejected = _q(db, "SELECT id, rows_rejected FROM cim_meta.ingest_batch "
                                "WHERE layer_id = 'base_stations'")[0]
    listing = _cim(db_url, "ingest-batches", "base_stations")
    assert listing.exit_code == 0 and "base_stations" in listing.output and "metro_stations" not in listing.output

    shown = _cim(db_url, "rejects", batch_id, "--limit", 2)
    assert shown.exit_code == 0 and f"{rejected} rejected rows" in shown.output and "far outside" in shown.output
    out = tmp_path / "rejects.csv"
    exported = _cim(db_url, "rejects", batch_id, "--csv", out)
    assert exported.exit_code == 0
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == rejected > 0 and rows[0]["field"] == "longitude" and "id" in rows[0]["raw"]

    missing = _cim(db_url, "rejects", 987654)
    assert missing.exit_code == 1 and "error: no ingest batch 987654" in missing.output


def _cameras_csv(path, n: int) -> None:
    rng = np.random.default_rng(5)
    pd.DataFrame({
        "device_id": [f"{31011200000000000000 + i}" for i in range(n)],
        "camera_type": rng.choice(["bullet", "dome", "ptz"], n),
        "lon": np.round(rng.uniform(121.30, 121.50, n), 6),
        "lat": np.round(rng.uniform(31.00, 31.15, n), 6),
    }).to_csv(path, index=False)


def test_large_file_with_progress(db_url, db, tmp_path):
    # a plain point layer (no sensing sync behind it): the test is about the progress bar, not the layer
    path = tmp_path / "cameras.csv"
    _cameras_csv(path, 60_000)  # > 2 MiB: the progress bar is on
    assert path.stat().st_size > 2 * 1024 * 1024
    result = _cim(db_url, "ingest", "cameras", path, "--crs", "wgs84", "--replace")
    assert result.exit_code == 0, result.output
    assert _q(db, "SELECT count(*) FROM cim.cameras") == [(60_000,)]


def test_killed_ingest_leaves_nothing(db_url, db, tmp_path):
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE cim.cameras"))
    before = _q(db, "SELECT (SELECT count(*) FROM cim_meta.ingest_batch), "
                    "(SELECT version FROM cim_meta.layer_state WHERE layer_id = 'cameras')")
    path = tmp_path / "cameras.csv"
    _cameras_csv(path, 300_000)
    database = make_url(db_url).database
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cim_service.cli import app; app()", "ingest", "cameras", str(path)],
        env={**os.environ, "CIM_DATABASE_URL": db_url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        pid = _wait_for_copy(db, database, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _wait_gone(db, pid)
    assert _q(db, "SELECT count(*) FROM cim.cameras") == [(0,)]
    after = _q(db, "SELECT (SELECT count(*) FROM cim_meta.ingest_batch), "
                   "(SELECT version FROM cim_meta.layer_state WHERE layer_id = 'cameras')")
    assert after == before


def _wait_for_copy(engine, database: str, proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """Return the pid of the ingest's backend once it has started COPYing into the staging table."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the ingest finished before it could be killed"
        rows = _q(engine, "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid() "
                          "AND query LIKE 'COPY _cim_stage%' AND xact_start IS NOT NULL", d=database)
        if rows:
            return rows[0][0]
        time.sleep(0.01)
    raise AssertionError("the ingest never reached its COPY")


def _wait_gone(engine, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _q(engine, "SELECT 1 FROM pg_stat_activity WHERE pid = :p", p=pid):
        assert time.monotonic() < deadline, "the killed ingest's backend did not end"
        time.sleep(0.05)


def test_concurrent_ingests_lose_nothing(db, catalog, tmp_path):
    """Four ingests of overlapping files into one layer at once: serialised, every feature of every file kept."""
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE cim.iot_nodes"))
    version = _q(db, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'iot_nodes'")[0][0]
    paths = []
    for k in range(4):
        path = tmp_path / f"part{k}.csv"
        rows = [f"N{i:07d},road,{121.30 + i * 1e-5:.6f},31.10" for i in range(k * 500, k * 500 + 800)]
        path.write_text("node_id,sensor_kind,lon,lat\n" + "\n".join(rows) + "\n", encoding="utf-8")
        paths.append(path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: ingest_file(db, catalog, "iot_nodes", p, crs="wgs84"), paths))
    assert [r.status for r in results] == ["committed"] * 4
    assert sum(r.inserted for r in results) == _q(db, "SELECT count(*) FROM cim.iot_nodes")[0][0] == 3 * 500 + 800
    assert _q(db, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'iot_nodes'")[0][0] == version + 4
