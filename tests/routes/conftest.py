"""Fixtures of the Features/ops route tests: the small demo plus a few known rows in AREA, an app, API keys.

The demo also has features in AREA, so tests compare with the database (counts, ids, extremes), never with
the number of rows inserted here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import create_api_key
from cim_service.store.layer_state import bump_version

#: the fixture area (WGS84 lon/lat) around Maqiao, away from the tile tests' area
AREA = (121.330, 31.000, 121.360, 31.030)
N_CAMERAS = 250
CAMERA_TYPES = ["bullet", "dome", "ptz", "checkpoint", "panoramic"]


def _cameras(n: int) -> list[dict]:
    rng = np.random.default_rng(42)
    lon = rng.uniform(AREA[0] + 0.001, AREA[2] - 0.001, n)
    lat = rng.uniform(AREA[1] + 0.001, AREA[3] - 0.001, n)
    return [{"k": f"ftest-cam-{i}", "d": f"{31011200001310000000 + i}", "t": CAMERA_TYPES[i % 5],
             "dir": float(i % 360), "at": f"{2021 + i % 4}-{1 + i % 12:02d}-{1 + i % 28:02d}",
             "o": "闵行区公安分局" if i % 3 == 0 else "马桥镇", "x": float(lon[i]), "y": float(lat[i])}
            for i in range(n)]


FIXTURE_LAYERS = ("cameras", "towns", "organisations", "people")


@pytest.fixture(scope="module")
def features_data(demo_database_url, engine, catalog) -> Iterator[dict]:
    """On top of the small demo: cameras, towns, organisations (internal), residents (restricted) in AREA.

    The rows (feature keys ``ftest-*``) are removed again when the module ends, so later tests see the demo.
    """
    cams = _cameras(N_CAMERAS)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO cim.cameras (feature_key, device_id, camera_type, direction_deg, installed_at, owner, geom) "
            "VALUES (:k, :d, :t, :dir, CAST(:at AS date), :o, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"), cams)
        conn.execute(sa.text(
            "INSERT INTO cim.towns (feature_key, name, code, name_en, geom) VALUES "
            "('ftest-town-w', '测试西镇', '310112901', 'Test West', ST_Multi(ST_MakeEnvelope(121.33, 31.0, 121.345, "
            "31.03, 4326))), ('ftest-town-e', '测试东镇', '310112902', 'Test East', "
            "ST_Multi(ST_MakeEnvelope(121.345, 31.0, 121.36, 31.03, 4326)))"))
        conn.execute(sa.text(
            "INSERT INTO cim.organisations (feature_key, org_id, address_code, name, category, employees, geom) "
            "SELECT 'ftest-org-' || g, 'FO' || g, 'a00000000' || g, '测试单位' || g, 'enterprise', g * 10, "
            "ST_SetSRID(ST_MakePoint(121.34 + g * 0.001, 31.01), 4326) FROM generate_series(1, 3) g"))
        conn.execute(sa.text(
            "INSERT INTO cim.people (feature_key, person_id, address_code, name, id_number, phone, gender, "
            "birth_year, residence_type, geom) "
            "SELECT 'ftest-p' || g, 'FP' || g, 'a000000001', '测试居民' || g, '31011219800101123X', '13900000000', "
            "'F', 1980 + g, 'resident', ST_SetSRID(ST_MakePoint(121.335 + g * 0.0005, 31.005), 4326) "
            "FROM generate_series(1, 4) g"))
        for layer in FIXTURE_LAYERS:
            bump_version(conn, layer, catalog.get(layer).qualified_table)
    yield {"cameras": cams}
    with engine.begin() as conn:
        for layer in FIXTURE_LAYERS:
            spec = catalog.get(layer)
            conn.execute(sa.text(f"DELETE FROM {spec.qualified_table} WHERE feature_key LIKE 'ftest-%'"))
            bump_version(conn, layer, spec.qualified_table)


@pytest.fixture(scope="module")
def api(settings, features_data) -> Iterator[TestClient]:
    """The service under TestClient (lifespan runs: pool opened and closed)."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def officer(engine) -> dict[str, str]:
    """Headers with a fresh officer key (restricted layers and personal data)."""
    return {"X-API-Key": create_api_key(engine, f"test-officer-{uuid.uuid4().hex[:8]}", "officer")}


@pytest.fixture(scope="session")
def analyst(engine) -> dict[str, str]:
    """Headers (Bearer) with a fresh analyst key (internal layers only)."""
    return {"Authorization": "Bearer " + create_api_key(engine, f"test-analyst-{uuid.uuid4().hex[:8]}", "analyst")}


def db_count(engine, sql: str, **params) -> int:
    """Run a count query on the session database."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def run_async(make_coro):
    """Run ``make_coro()`` on a fresh plain-asyncio loop in its own thread (other tests may leave a loop running)."""
    import asyncio
    import threading

    result: dict = {}

    def target() -> None:
        loop = asyncio.SelectorEventLoop()
        try:
            result["value"] = loop.run_until_complete(make_coro())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc
        finally:
            loop.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
