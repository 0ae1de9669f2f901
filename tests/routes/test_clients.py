"""Real clients against `cim serve` in a subprocess: GDAL (ogrinfo, pyogrio), OWSLib, schemathesis."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pyogrio
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from owslib.ogcapi.features import Features

from cim_service.commands.serve import tcp_listener
from tests.routes.conftest import AREA, db_count, run_async
from tests.routes.serving import cim_serve

SERVER_LOGS: dict = {}


@pytest.fixture(scope="module")
def server(settings, features_data, tmp_path_factory) -> Iterator[str]:
    """`cim serve` on a free loopback port (two workers, plain asyncio loop), against the session database.

    uvloop sets TCP_NODELAY on every accepted socket by itself; the asyncio loop does so only when the listener
    has ``proto=IPPROTO_TCP``, so running on asyncio is what lets the Nagle test below fail without our listener.
    """
    logs = tmp_path_factory.mktemp("serve")
    with cim_serve(settings.database_url, settings.home, logs, workers=2, loop="asyncio") as url:
        SERVER_LOGS["stdout"] = logs / "stdout.log"
        yield url


def public_counts(engine, catalog) -> dict[str, int]:
    return {s.id: db_count(engine, f"SELECT count(*) FROM {s.qualified_table}")
            for s in catalog if s.access.value == "public"}


def test_ogrinfo_lists_every_public_collection_with_counts(server, engine, catalog):
    out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", f"OAPIF:{server}"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    counts = dict(re.findall(r"Layer name: (\w+).*?Feature Count: (\d+)", out.stdout, flags=re.S))
    expected = public_counts(engine, catalog)
    assert set(counts) == set(expected)
    assert {k: int(v) for k, v in counts.items()} == expected


def test_pyogrio_reads_all_features_through_paging(server, engine):
    df = pyogrio.read_dataframe(f"OAPIF:{server}", layer="cameras")
    assert len(df) == db_count(engine, "SELECT count(*) FROM cim.cameras")
    assert {"device_id", "camera_type", "installed_at"} <= set(df.columns)
    inside = df.cx[AREA[0]:AREA[2], AREA[1]:AREA[3]]
    assert len(inside) == db_count(engine, "SELECT count(*) FROM cim.cameras WHERE "
                                           "geom && ST_MakeEnvelope(121.33, 31.0, 121.36, 31.03, 4326)")


def test_owslib_reads_items_with_bbox_and_filter(server, engine):
    api = Features(server)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert "cameras" in ids and "people" not in ids
    assert any(c.endswith("ogcapi-features-3/1.0/conf/filter") for c in api.conformance()["conformsTo"])
    doc = api.collection_items("cameras", bbox=list(AREA), limit=500, filter="camera_type = 'dome'")
    with engine.connect() as conn:
        expected = set(conn.execute(sa.text(
            "SELECT id FROM cim.cameras WHERE camera_type = 'dome' AND "
            "geom && ST_MakeEnvelope(121.33, 31.0, 121.36, 31.03, 4326)")).scalars())
    assert {f["id"] for f in doc["features"]} == expected and expected
    assert "device_id" in api.collection_queryables("cameras")["properties"]


def test_listener_keeps_tcp_nodelay():
    """Accepted sockets of our listener get TCP_NODELAY from asyncio (uvicorn's proto=0 listener does not)."""
    sock = tcp_listener("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    port = sock.getsockname()[1]
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def main():
        srv = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.02)
        writer.close()
        srv.close()

    run_async(main)
    assert seen and seen[0] != 0


def test_multi_worker_metrics_are_merged_and_requests_logged_as_json(server):
    import json

    for _ in range(4):
        assert httpx.get(f"{server}/collections/cameras/items", params={"limit": 1, "f": "json"}).status_code == 200
    time.sleep(0.2)
    lines = [json.loads(ln) for ln in SERVER_LOGS["stdout"].read_text().splitlines() if ln.startswith("{")]
    items = [ln for ln in lines if ln["route"] == "/collections/{collectionId}/items"]
    assert len(items) >= 4 and items[-1]["path"] == "/collections/cameras/items" and items[-1]["status"] == 200
    assert all({"method", "route", "status", "ms"} <= set(ln) for ln in lines)
    text = httpx.get(f"{server}/metrics").text
    counts = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
              if ln.startswith("cim_http_request_duration_seconds_count{")
              and 'route="/collections/{collectionId}/items"' in ln]
    assert counts and sum(counts) >= 4  # merged across the two workers


def test_schemathesis_get_operations(server):
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{server}/api")
    operations = [r.ok() for r in schema.get_all_operations()]
    ours = [op for op in operations if op.method.upper() == "GET"
            and (op.path in ("/", "/conformance", "/healthz") or op.path.startswith("/collections")
                 and "/tiles" not in op.path)]
    assert len(ours) >= 7
    failures: list[str] = []
    statuses: list[int] = []
    for op in ours:
        _fuzz(op, server, failures, statuses)
    assert len(statuses) >= 100 and 200 in statuses and 400 in statuses
    assert not failures, "\n".join(failures[:10])


def _fuzz(op, server: str, failures: list[str], statuses: list[int]) -> None:
    """Run 30 generated GET requests against one operation; collect check failures."""
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    pinned = {"collectionId": "cameras"} if "{collectionId}" in op.path else None
    strategy = op.as_strategy(path_parameters=pinned) if pinned else op.as_strategy()

    @hsettings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        response = case.call(base_url=server)
        statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                                        status_code_conformance, content_type_conformance])
        except Exception as exc:  # noqa: BLE001 - collected and reported by the caller
            failures.append(f"{op.method} {op.path} {case.query} -> {response.status_code}: {exc}"[:500])

    run()


def test_keep_alive_requests_are_not_delayed_by_nagle(server):
    """With two workers, keep-alive responses must not wait ~40 ms for delayed ACKs (TCP_NODELAY kept)."""
    import statistics

    with httpx.Client(base_url=server, headers={"Accept-Encoding": "identity"}) as client:
        client.get("/conformance")
        times = []
        for _ in range(25):
            started = time.perf_counter()
            assert client.get("/collections/cameras/items", params={"limit": 50}).status_code == 200
            times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.030, times  # ~44 ms each with uvicorn's own listener on asyncio
