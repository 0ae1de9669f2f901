"""Operations: health, metrics, JSON request logs, statement timeout, database outage and reconnection."""

from __future__ import annotations

import json
import logging
import socket
import time

import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.settings import Settings


def test_healthz_ok(api):
    r = api.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["postgis"].startswith("3.")


def test_metrics_expose_latency_by_route_template_and_tile_counters(api):
    for _ in range(3):
        assert api.get("/collections/cameras/items", params={"limit": 1}).status_code == 200
    assert api.get("/collections/nope/items").status_code == 404
    text = api.get("/metrics").text
    line = [ln for ln in text.splitlines() if ln.startswith("cim_http_request_duration_seconds_count{")
            and 'route="/collections/{collectionId}/items"' in ln and 'status="200"' in ln]
    assert line and float(line[0].rsplit(" ", 1)[1]) >= 3
    assert 'route="/collections/{collectionId}/items",status="404"' in text
    assert "cim_tile_cache_hits_total" in text and "cim_tile_cache_misses_total" in text
    assert 'cim_features_returned_total{collection="cameras"}' in text


def test_one_json_log_line_per_request(api, caplog):
    with caplog.at_level(logging.INFO, logger="cim.access"):
        api.get("/collections/cameras/items", params={"limit": 2})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cim.access"]
    assert len(records) == 1
    rec = records[0]
    assert rec["method"] == "GET" and rec["route"] == "/collections/{collectionId}/items"
    assert rec["status"] == 200 and rec["ms"] > 0


def test_survives_terminated_database_connections(api, engine):
    assert api.get("/collections/cameras/items", params={"limit": 1}).status_code == 200
    with engine.connect() as conn:
        killed = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'minhang-cim-api' AND datname = current_database()")).scalar_one()
    assert killed >= 1
    time.sleep(0.2)
    r = api.get("/collections/cameras/items", params={"limit": 1})
    assert r.status_code == 200 and r.json()["numberReturned"] == 1
    assert api.get("/healthz").status_code == 200


def test_statement_timeout_is_504(settings, features_data, engine):
    slow = settings.model_copy(update={"statement_timeout_ms": 300})
    with TestClient(create_app(slow)) as client:
        assert client.get("/healthz").status_code == 200
        with engine.connect() as conn:
            conn.execute(sa.text("LOCK TABLE cim.cameras IN ACCESS EXCLUSIVE MODE"))  # holds until rollback
            started = time.monotonic()
            r = client.get("/collections/cameras/items", params={"limit": 1})
            elapsed = time.monotonic() - started
            conn.rollback()
    assert r.status_code == 504, r.text
    assert r.json()["code"] == "QueryTimeout" and "statement timeout" in r.json()["description"]
    assert elapsed < 5


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_down_is_503(tmp_path):
    down = Settings(database_url=f"postgresql://cim@127.0.0.1:{_closed_port()}/none", environment="test",
                    pool_min_size=0, home=tmp_path)
    app = create_app(down)
    with TestClient(app) as client:
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["code"] == "ServiceUnavailable"
        r = client.get("/collections")
        assert r.status_code == 503 and "database" in r.json()["description"]
        assert "Traceback" not in r.text and "127.0.0.1" not in r.text


def test_unexpected_errors_are_generic_500(settings, features_data):
    from cim_service.auth import get_principal

    app = create_app(settings)

    def boom():
        raise RuntimeError("secret SQL text SELECT * FROM cim_meta.api_key")

    app.dependency_overrides[get_principal] = boom
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/collections")
    assert r.status_code == 500
    assert r.json() == {"code": "ServerError", "description": "internal server error"}


def test_cors_only_for_configured_origins(settings, features_data):
    allowed = settings.model_copy(update={"cors_origins": ["http://planner.example"]})
    with TestClient(create_app(allowed)) as client:
        r = client.get("/collections", headers={"Origin": "http://planner.example"})
        assert r.headers["access-control-allow-origin"] == "http://planner.example"
        assert "content-crs" in r.headers["access-control-expose-headers"].lower()
        other = client.get("/collections", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_api_docs_are_served_without_a_cdn(api):
    import re

    r = api.get("/api.html")
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    assert not re.findall(r"https?://", r.text)
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert len(assets) == 3
    for asset in assets:
        got = api.get(asset)
        assert got.status_code == 200 and len(got.content) > 500
