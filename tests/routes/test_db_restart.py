"""PostgreSQL going away under load: every request is answered 200, or 503 with Retry-After; never a 500.

The test runs its own throwaway cluster (a LocalCluster on a free port), serves it with `cim serve`, and while
client threads keep requesting it, kills the service's connections with ``pg_terminate_backend`` and then
restarts the server. Afterwards the service answers again without being restarted itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cim_service.store.db import make_engine
from cim_service.store.layer_state import bump_version
from cim_service.store.localdb import LocalCluster
from cim_service.store.migrate import migrate
from tests.routes.serving import cim_serve, free_port

REQUESTS = ["/collections/cameras/items?limit=20", "/collections/cameras", "/collections",
            "/collections/cameras/items?filter=direction_deg%20%3E%2090&limit=5",
            "/collections/cameras/tiles/WebMercatorQuad/14/13716/6702?properties=camera_type"]


@pytest.fixture(scope="module")
def cluster(catalog) -> Iterator[tuple[LocalCluster, str]]:
    """A throwaway PostGIS cluster with the schema and a few cameras."""
    home = Path(tempfile.mkdtemp(prefix="cim-restart-", dir="/tmp"))  # reachable by the postgres user
    os.chmod(home, 0o755)
    local = LocalCluster(home=home / "home", port=free_port())
    try:
        url = local.start()
        engine = make_engine(url)
        try:
            migrate(engine, catalog)
            spec = catalog.get("cameras")
            with engine.begin() as conn:
                conn.execute(sa.text(
                    f"INSERT INTO {spec.qualified_table} (feature_key, device_id, camera_type, direction_deg, geom) "
                    "SELECT 'r' || g, '3101120000131' || lpad(g::text, 7, '0'), 'dome', g % 360, "
                    "ST_SetSRID(ST_MakePoint(121.38 + g * 1e-4, 31.11), 4326) FROM generate_series(1, 200) g"))
                bump_version(conn, spec.id, spec.qualified_table)
        finally:
            engine.dispose()
        yield local, url
    finally:
        local.stop()
        shutil.rmtree(home, ignore_errors=True)


def _terminate_api_connections(url: str) -> int:
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'minhang-cim-api' AND pid <> pg_backend_pid()")).all())
    finally:
        engine.dispose()


def test_terminated_connections_and_a_restart_give_no_500(cluster, tmp_path):
    local, url = cluster
    statuses: Counter[int] = Counter()
    missing_retry_after: list[str] = []
    transport_errors: list[str] = []
    after_restart: Counter[int] = Counter()
    sequence: list[int] = []
    stop = threading.Event()
    restarted = threading.Event()

    def load(offset: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = offset
            while not stop.is_set():
                path = REQUESTS[i % len(REQUESTS)]
                i += 1
                try:
                    r = client.get(server + path)
                except httpx.HTTPError as exc:
                    transport_errors.append(f"{path}: {type(exc).__name__}")
                    continue
                statuses[r.status_code] += 1
                sequence.append(r.status_code)
                if restarted.is_set():
                    after_restart[r.status_code] += 1
                if r.status_code == 503 and "retry-after" not in r.headers:
                    missing_retry_after.append(path)

    with cim_serve(url, tmp_path / "home", tmp_path / "logs", env={"CIM_TILE_CACHE": "off"}) as server:
        threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            killed = 0
            for _ in range(5):  # pg_terminate_backend under load
                killed += _terminate_api_connections(url)
                time.sleep(0.4)
            local.stop()  # a restart: the server is away for a while
            time.sleep(1.0)
            local.start()
            time.sleep(2.5)  # the service finds the server again on its own
            restarted.set()
            time.sleep(4.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
    total = sum(statuses.values())
    print(f"\n{total} requests over {killed} terminated connections and a restart: {dict(statuses)}; "
          f"after the restart: {dict(after_restart)}; transport errors: {len(transport_errors)}")
    assert killed >= 1
    assert total >= 100
    assert set(statuses) <= {200, 204, 503}, statuses
    assert not missing_retry_after
    assert not transport_errors, transport_errors[:5]
    # the service recovered by itself: it answers again, and its last answers are all successes
    assert after_restart[200] > 0, after_restart
    assert set(sequence[-40:]) <= {200, 204}, sequence[-40:]
