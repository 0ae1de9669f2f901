"""Exports stream: the resident memory of a real `cim serve` stays flat while it exports a large layer in every
format (growth bounded by a small share of the bytes sent), and exports beyond the configured number at once are
a 503 with Retry-After while the others run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from cim_service.store.db import make_engine
from tests.routes.serving import cim_serve

#: a layer large enough that holding it in memory would show: ~150 MB of GeoJSONSeq
N_ADDRESSES = 200_000
BATCH_ROWS = 5_000


@pytest.fixture(scope="module")
def big_database(throwaway_database) -> Iterator[str]:
    """A database whose address layer holds N_ADDRESSES synthetic standard addresses (Chinese text)."""
    with throwaway_database("export_big") as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO cim.addresses (feature_key, address_code, full_address, district, town, road, number, "
                "residential, geom) "
                "SELECT 'big-' || g, lpad(g::text, 12, '0'), '上海市闵行区七宝镇漕宝路' || g || '号', "
                "'闵行区', '七宝镇', '漕宝路', g || '号', g % 3 = 0, "
                "ST_SetSRID(ST_MakePoint(121.30 + (g % 1000) * 0.0002, 31.05 + (g / 1000) * 0.0005), 4326) "
                "FROM generate_series(1, :n) g"), {"n": N_ADDRESSES})
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def server(big_database, tmp_path_factory) -> Iterator[tuple[str, psutil.Process, Path]]:
    home = tmp_path_factory.mktemp("export-serve")
    env = {"CIM_EXPORT_BATCH_ROWS": str(BATCH_ROWS), "CIM_MAX_CONCURRENT_EXPORTS": "1", "CIM_GAP_REFRESH": "off"}
    with cim_serve(big_database, home, home / "logs", env=env) as url:
        pid = next(c.pid for c in psutil.Process().children() if "cim_service" in " ".join(c.cmdline()))
        yield url, psutil.Process(pid), home / "logs"


class PeakRss:
    """Sample a process's resident set size every 10 ms in a thread; keep the peak."""

    def __init__(self, proc: psutil.Process):
        self.proc, self.peak, self._stop = proc, proc.memory_info().rss, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def download(url: str, params: dict, coding: str = "identity") -> int:
    size = 0
    with httpx.stream("GET", url, params=params, timeout=600, headers={"Accept-Encoding": coding}) as r:
        assert r.status_code == 200, r.read()
        for chunk in r.iter_bytes(1 << 20):
            size += len(chunk)
    return size


@pytest.mark.slow
def test_memory_stays_flat_exporting_a_large_layer(server):
    url, proc, _ = server
    items = f"{url}/collections/addresses/items"
    for fmt in ("geojsonseq", "parquet", "fgb", "gpkg"):  # warm-up: libraries loaded, pools and arenas made
        download(items, {"f": fmt, "limit": 2 * BATCH_ROWS})
    report = {}
    for fmt in ("geojsonseq", "parquet", "fgb", "gpkg"):
        base = proc.memory_info().rss
        with PeakRss(proc) as rss:
            size = download(items, {"f": fmt})
        report[fmt] = (size, rss.peak - base)
    print("export sizes and RSS growth (bytes):", report)
    # the layer as GeoJSON text: what a process holding the whole result would hold at least
    layer_bytes = report["geojsonseq"][0]
    assert layer_bytes > 80 * 2**20
    for fmt, (size, growth) in report.items():
        # a batch is 1/40 of the layer: the process may grow by a few batches, never by the layer
        assert growth < 0.3 * layer_bytes, (fmt, size, growth, report)
    # coded on the wire (Brotli, chunk by chunk): the encoder's state is a few MB, not the layer
    base = proc.memory_info().rss
    with PeakRss(proc) as rss:
        download(items, {"f": "geojsonseq"}, coding="br")
    assert rss.peak - base < 0.3 * layer_bytes, (rss.peak - base, report)


def server_log(server) -> str:
    return (server[2] / "stderr.log").read_text()[-3000:]


def test_exports_beyond_the_bound_are_503_with_retry_after(server):
    url, _, _ = server
    items = f"{url}/collections/addresses/items"
    with httpx.stream("GET", items, params={"f": "geojsonseq"}, timeout=600) as first:
        assert first.status_code == 200
        next(first.iter_bytes(1 << 16))  # started, then paused: the export holds its slot
        second = httpx.get(items, params={"f": "parquet", "limit": 10}, timeout=60)
        assert second.status_code == 503, (second.status_code, server_log(server))
        assert int(second.headers["Retry-After"]) > 0
        assert second.json()["code"] == "ServiceBusy"
        assert httpx.get(items, params={"limit": 3}, timeout=60).status_code == 200  # pages are not exports
    # the first client went away: its export ends at its next write and gives the slot back
    deadline = time.monotonic() + 60  # a wait for the worker to notice, not a measure
    while True:
        r = httpx.get(items, params={"f": "geojsonseq", "limit": 10}, timeout=60)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.content.count(b"\x1e") == 10


@pytest.mark.parametrize("fmt,prefix", [("fgb", ""), ("geojsonseq", "GeoJSONSeq:")])
def test_ogr2ogr_reads_the_stream_over_http(server, tmp_path, fmt, prefix):
    """GDAL reads a streamed export straight from the service (GeoPackage, SQLite, needs a downloaded file)."""
    import json
    import subprocess

    url, _, _ = server
    source = f"{url}/collections/addresses/items?f={fmt}&limit=1234&sortby=-id"
    out = tmp_path / "out.geojson"
    done = subprocess.run(["/usr/bin/ogr2ogr", "-f", "GeoJSON", str(out), f"{prefix}/vsicurl_streaming/{source}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert len(features) == 1234
    assert features[0]["properties"]["full_address"].startswith("上海市闵行区七宝镇漕宝路")
