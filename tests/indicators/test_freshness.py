"""Gap layers never stale: the service's background refresher, the refresh lock, the CLI after an ingest.

Runs on a database of its own holding the small demo (real PostGIS); every test restores the demo at the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import geopandas as gpd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from shapely.geometry import Point
from typer.testing import CliRunner

from cim_service.app import create_app
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.freshness import REFRESH_LOCK, input_layers, refresh_stale
from cim_service.store.db import make_engine
from cim_service.store.layer_state import bump_version
from pipelines.demo import load_demo
from pipelines.load import load_geodataframe

DERIVED_LAYERS = ("gap_camera_hex", "gap_charging", "gap_5g", "gap_unsensored_sites", "suggested_sites")


@pytest.fixture(scope="module")
def demo_url(throwaway_database, catalog) -> Iterator[str]:
    """A database of its own with the small demo: no other service (e.g. the browser tests') refreshes it."""
    with throwaway_database("fresh") as url:
        eng = make_engine(url)
        load_demo(eng, catalog, scale="small")
        eng.dispose()
        yield url


@pytest.fixture
def demo(demo_url, catalog) -> Iterator[sa.Engine]:
    """Engine on the demo database; the small demo is loaded again afterwards (removes added cameras)."""
    eng = make_engine(demo_url)
    yield eng
    load_demo(eng, catalog, scale="small")
    eng.dispose()


@pytest.fixture
def app_settings(demo_url, tmp_path) -> Settings:
    return Settings(database_url=demo_url, environment="test", home=tmp_path)


def versions(eng: sa.Engine) -> dict[str, int]:
    with eng.connect() as conn:
        return dict(conn.execute(sa.text("SELECT layer_id, version FROM cim_meta.layer_state")).all())


def poll(check: Callable[[], object], seconds: float) -> object:
    """Call ``check`` until it returns something truthy or ``seconds`` pass; return its last value."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def pick_cell(eng: sa.Engine) -> dict:
    """A whole H3 cell inside the district with a camera deficit of at least 10: its counts and centre."""
    with eng.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT h3_index, town, cameras, deficit, ST_X(ST_Centroid(geom)) AS lon, ST_Y(ST_Centroid(geom)) AS lat "
            "FROM cim.gap_camera_hex WHERE deficit >= 10 AND town IS NOT NULL ORDER BY area_km2 DESC, h3_index "
            "LIMIT 1")).mappings().one()
    return dict(row)


def cell(eng: sa.Engine, h3_index: str) -> tuple[int, int]:
    with eng.connect() as conn:
        return tuple(conn.execute(sa.text("SELECT cameras, deficit FROM cim.gap_camera_hex WHERE h3_index = :h"),
                                  {"h": h3_index}).one())


def add_cameras(eng: sa.Engine, catalog, lon: float, lat: float, n: int) -> None:
    """Ingest ``n`` cameras at (lon, lat) through the pipeline loader (version bump + NOTIFY)."""
    base = 31011200001377000000 + uuid.uuid4().int % 100_000 * 10
    gdf = gpd.GeoDataFrame({"device_id": [str(base + i) for i in range(n)], "camera_type": ["dome"] * n},
                           geometry=[Point(lon, lat)] * n, crs="EPSG:4326")
    result = load_geodataframe(eng, catalog.get("cameras"), gdf, source_name="freshness-test.csv",
                               source_sha256=uuid.uuid4().hex, source_crs="wgs84")
    assert result.status == "committed" and result.inserted == n


def all_fresh(client: TestClient) -> bool:
    body = client.get("/indicators/gaps", params={"wait": "false"}).json()
    return not any(o["stale"] for o in body["outputs"].values())


def test_inputs_exclude_derived_layers():
    inputs = input_layers()
    assert {"cameras", "towns", "district", "charging_stations", "base_stations"} <= inputs
    assert not inputs & set(DERIVED_LAYERS)


def test_service_refreshes_gap_layers_after_an_ingest(demo, catalog, app_settings):
    with demo.begin() as conn:  # inputs changed while no service ran: start-up must refresh on its own
        bump_version(conn, "cameras", catalog.get("cameras").qualified_table)
    before_start = versions(demo)
    with TestClient(create_app(app_settings)) as client:
        refresher = client.app.state.gap_refresher
        assert poll(lambda: refresher.last is not None and refresher.idle, 40), "no start-up refresh"
        assert all_fresh(client)
        assert versions(demo)["gap_camera_hex"] > before_start["gap_camera_hex"]

        target = pick_cell(demo)
        v_before = versions(demo)
        add_cameras(demo, catalog, target["lon"], target["lat"], 5)
        committed = time.monotonic()
        body = client.get("/indicators/gaps", params={"wait": "false"}).json()
        assert body["outputs"]["gap_camera_hex"]["stale"] is True  # honest while the refresh is pending
        assert body["outputs"]["gap_charging"]["stale"] is False

        updated = poll(lambda: cell(demo, target["h3_index"])[0] == target["cameras"] + 5, 20)
        latency = time.monotonic() - committed
        assert updated, "gap_camera_hex did not follow the new cameras within 20 s"
        assert cell(demo, target["h3_index"]) == (target["cameras"] + 5, max(0, target["deficit"] - 5))
        v_after = versions(demo)
        assert v_after["gap_camera_hex"] > v_before["gap_camera_hex"]
        assert v_after["gap_charging"] == v_before["gap_charging"]  # its inputs did not change
        assert poll(lambda: refresher.idle and all_fresh(client), 20)  # suggestions and raster followed too
        assert versions(demo)["gap_camera_hex"] == v_before["gap_camera_hex"] + 1  # one refresh for five cameras
        print(f"\ngap_camera_hex current {latency:.1f} s after the ingest committed")

        # no loop: the refresh's own bumps of derived layers, or any other, do not trigger another one
        runs, settled = refresher.runs, versions(demo)
        with demo.begin() as conn:
            bump_version(conn, "gap_5g", catalog.get("gap_5g").qualified_table)
        time.sleep(app_settings.gap_refresh_debounce_s + 2)
        assert refresher.runs == runs
        after = versions(demo)
        assert after["gap_5g"] == settled["gap_5g"] + 1  # the direct bump only: not rewritten
        assert {k: after[k] for k in DERIVED_LAYERS if k != "gap_5g"} == \
            {k: settled[k] for k in DERIVED_LAYERS if k != "gap_5g"}
        assert all_fresh(client)


def test_refresh_after_reconnect_catches_missed_changes(demo, catalog, app_settings):
    with TestClient(create_app(app_settings)) as client:
        refresher = client.app.state.gap_refresher
        assert poll(lambda: refresher.listener.connected.is_set() and refresher.idle, 40)
        target = pick_cell(demo)
        changes, old_pid = refresher.changes, refresher.listener.server_pid
        with demo.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": old_pid}).scalar_one()
        add_cameras(demo, catalog, target["lon"], target["lat"], 3)  # committed while nobody listens
        assert poll(lambda: cell(demo, target["h3_index"])[0] == target["cameras"] + 3, 20)
        assert refresher.listener.server_pid != old_pid and refresher.changes == changes  # via the reconnect


def test_refresh_lock_keeps_other_processes_out(demo, catalog, app_settings):
    ind = IndicatorEngine(make_engine(app_settings.database_url), catalog, app_settings)
    try:
        with demo.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": REFRESH_LOCK}).scalar()
            started = time.monotonic()
            out = refresh_stale(ind, wait_seconds=0.6)
            assert out.busy and not out.refreshed and time.monotonic() - started >= 0.5
            assert "another process" in out.summary()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": REFRESH_LOCK})
        out = refresh_stale(ind)
        assert not out.busy and not out.failed
        with demo.connect() as conn:
            assert not ind.stale_keys(conn, [f"derived:{n}" for n in DERIVED_LAYERS])
            held = conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"k": REFRESH_LOCK}).scalar()
        assert held == 0  # released
    finally:
        ind.engine.dispose()


def test_cli_ingest_refreshes_gap_layers(demo, catalog, demo_url, tmp_path):
    from cim_service.cli import app

    env = {"CIM_DATABASE_URL": demo_url, "CIM_HOME": str(tmp_path), "COLUMNS": "200"}
    r = CliRunner().invoke(app, ["indicators", "gaps"], env=env)  # current before the ingest
    assert r.exit_code == 0, r.output
    target = pick_cell(demo)
    path = tmp_path / "new_cameras.csv"
    rows = [f"{31011200001366000000 + i},dome,{target['lon']},{target['lat']}" for i in range(4)]
    path.write_text("device_id,camera_type,lon,lat\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["ingest", "cameras", str(path), "--crs", "wgs84"], env=env)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("gap layers:"))
    assert "refreshed" in line and "gap_camera_hex" in line and "gap_charging" not in line
    assert cell(demo, target["h3_index"]) == (target["cameras"] + 4, max(0, target["deficit"] - 4))


def test_shutdown_cuts_off_a_refresh_that_overruns(demo, catalog, app_settings):
    from cim_service.indicators.engine import ENGINE_LOCK

    with demo.begin() as conn:
        bump_version(conn, "cameras", catalog.get("cameras").qualified_table)
    blocker = demo.connect()
    try:
        blocker.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ENGINE_LOCK})  # the refresh waits on it
        with TestClient(create_app(app_settings)) as client:
            refresher = client.app.state.gap_refresher
            assert poll(lambda: refresher.running, 20)
            time.sleep(0.5)
            assert refresher.running  # stuck behind the lock
            app_name = refresher.app_name
            stopping = time.monotonic()
        took = time.monotonic() - stopping
        assert took < refresher.grace_seconds + 5

        def leftovers() -> tuple[int, int]:
            with demo.connect() as conn:
                sessions = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                                        {"a": app_name}).scalar()
                locks = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k AND granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                    {"k": REFRESH_LOCK}).scalar()
            return sessions, locks

        assert poll(lambda: leftovers() == (0, 0), 5)  # its sessions ended, the refresh lock is free again
        assert not refresher.running
    finally:
        blocker.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ENGINE_LOCK})
        blocker.close()


def test_changes_during_a_refresh_get_one_follow_up(demo, catalog, demo_url, tmp_path):
    from cim_service.indicators.engine import ENGINE_LOCK

    quick = Settings(database_url=demo_url, environment="test", home=tmp_path, gap_refresh_debounce_s=0.3)
    with TestClient(create_app(quick)) as client:
        refresher = client.app.state.gap_refresher
        assert poll(lambda: refresher.last is not None and refresher.idle, 40)
        target = pick_cell(demo)
        runs = refresher.runs
        with demo.connect() as blocker:
            blocker.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ENGINE_LOCK})  # hold the refresh
            add_cameras(demo, catalog, target["lon"], target["lat"], 2)
            assert poll(lambda: refresher.running, 10)
            add_cameras(demo, catalog, target["lon"], target["lat"], 1)  # arrives while it runs
            add_cameras(demo, catalog, target["lon"], target["lat"], 1)
            time.sleep(0.5)
            assert refresher.running and refresher.runs == runs + 1  # never two at once
            blocker.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ENGINE_LOCK})
            blocker.commit()
        assert poll(lambda: refresher.idle and all_fresh(client), 30)
        assert refresher.runs == runs + 2  # the changes that came meanwhile: one follow-up run
        assert cell(demo, target["h3_index"])[0] == target["cameras"] + 4
