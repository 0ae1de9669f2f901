"""Bounded computations: statement_timeout and lock_timeout cut a computation off; the previous results stay.

A computation that runs or waits too long must not hold the engine (and every later refresh) hostage: it
is cut off, logged in one line, and readers keep the results and gap rows of the last computation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.settings import Settings
from cim_service.indicators.engine import ENGINE_LOCK, IndicatorComputationError, IndicatorEngine, IndicatorEngineBusy
from cim_service.indicators.freshness import REFRESH_LOCK, refresh_stale
from cim_service.indicators.refresher import _REFRESHING, GapRefresher
from cim_service.store.db import make_engine
from cim_service.store.versions import VersionListener


def settings_for(url: str, home, statement_ms: int, lock_ms: int) -> Settings:
    return Settings(database_url=url, environment="test", home=home, gap_refresh=False,
                    indicator_statement_timeout_ms=statement_ms, indicator_lock_timeout_ms=lock_ms)


def stored(engine: sa.Engine, key: str) -> tuple:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT result->>'value', computed_at FROM cim_meta.indicator_result "
                                    "WHERE key = :k"), {"k": key}).one()


@pytest.fixture
def blocker(hand: sa.Engine) -> Iterator[sa.Connection]:
    """Another session with an open transaction (its locks are held until the test ends)."""
    conn = hand.connect()
    conn.begin()
    yield conn
    conn.rollback()
    conn.close()


def cut_off_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "cut off" in r.getMessage()]


def test_a_lock_held_elsewhere_cuts_a_refresh_off_and_keeps_the_previous_gap_layer(
        hand, hand_url, catalog, put, sq, tmp_path, blocker, caplog):
    put("towns", sq(0, 0, 4000), name="丙镇")
    put("charging_stations", "POINT(2000 2000)", station_id="c1")
    ind = IndicatorEngine(hand, catalog, settings_for(hand_url, tmp_path, 60_000, 300))
    assert not refresh_stale(ind).failed
    with hand.connect() as conn:
        before = conn.execute(sa.text("SELECT gap_id, area_km2 FROM cim.gap_charging")).all()
    put("charging_stations", "POINT(500 500)", station_id="c2")  # the gap layer is stale now
    blocker.execute(sa.text("LOCK TABLE cim.gap_charging IN SHARE MODE"))  # readers pass, writers wait
    with caplog.at_level(logging.WARNING, logger="cim_service.indicators.engine"):
        out = refresh_stale(ind)
    assert out.failed == ["gap_charging"] and "FAILED gap_charging" in out.summary()
    (line,) = cut_off_lines(caplog)
    assert line.exc_info is None and "\n" not in line.getMessage()
    assert "derived:gap_charging was cut off by lock_timeout" in line.getMessage()
    assert "previous result is kept" in line.getMessage()
    with hand.connect() as conn:  # readers still see the previous rows, and the refresh lock is free again
        assert conn.execute(sa.text("SELECT gap_id, area_km2 FROM cim.gap_charging")).all() == before
        assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": REFRESH_LOCK}).scalar()
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": REFRESH_LOCK})
    blocker.rollback()
    out = refresh_stale(ind)
    assert "gap_charging" in out.refreshed and not out.failed
    with hand.connect() as conn:
        (after,) = conn.execute(sa.text("SELECT area_km2 FROM cim.gap_charging")).scalars().all()
    assert after < before[0][1]


def test_a_statement_timeout_cuts_an_indicator_off_and_keeps_its_previous_result(
        hand, hand_url, catalog, put, sq, tmp_path, blocker, caplog):
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("cameras", "POINT(100 100)", device_id="1" * 20, camera_type="dome")
    relaxed = IndicatorEngine(hand, catalog, settings_for(hand_url, tmp_path, 60_000, 10_000))
    ind = IndicatorEngine(hand, catalog, settings_for(hand_url, tmp_path, 400, 60_000))
    assert relaxed.results(["cameras_total"])[0]["value"] == 1
    previous = stored(hand, "indicator:cameras_total")
    put("cameras", "POINT(200 200)", device_id="2" * 20, camera_type="dome")
    blocker.execute(sa.text("LOCK TABLE cim.cameras IN ACCESS EXCLUSIVE MODE"))  # every read of cameras waits
    with caplog.at_level(logging.WARNING, logger="cim_service.indicators.engine"):
        with pytest.raises(IndicatorComputationError) as err:
            ind.results(["cameras_total", "camera_density"])
    assert err.value.keys == ["indicator:cameras_total", "indicator:camera_density"]
    lines = cut_off_lines(caplog)
    assert len(lines) == 2 and all("statement_timeout 400 ms" in r.getMessage() and r.exc_info is None
                                   for r in lines)
    blocker.rollback()
    assert stored(hand, "indicator:cameras_total") == previous  # nothing half-computed replaced it
    assert relaxed.results(["cameras_total"])[0]["value"] == 2


def test_waiting_for_another_computation_is_bounded(hand, hand_url, catalog, put, sq, tmp_path, blocker):
    put("towns", sq(0, 0, 1000), name="甲镇")
    settings = settings_for(hand_url, tmp_path, 300, 300)
    ind = IndicatorEngine(hand, catalog, settings)
    blocker.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ENGINE_LOCK})  # a computation that never ends
    with pytest.raises(IndicatorEngineBusy, match="running for more than 0.3 s; retry later"):
        ind.results(["cameras_total"])
    assert refresh_stale(ind).busy  # the refresher comes back later instead of failing
    with TestClient(create_app(settings)) as client:
        r = client.get("/indicators/cameras_total")
    assert r.status_code == 503 and r.json()["code"] == "IndicatorEngineBusy"
    blocker.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ENGINE_LOCK})
    relaxed = IndicatorEngine(hand, catalog, settings_for(hand_url, tmp_path, 60_000, 10_000))
    assert relaxed.results(["cameras_total"])[0]["status"] == "no_data"  # no camera loaded


def test_the_refresher_sessions_are_bounded(hand_url, catalog, tmp_path):
    """A refresh's sessions (out of the engine it shares with requests) carry the limits, and lose them after."""
    settings = settings_for(hand_url, tmp_path, 1234, 567)
    engine = make_engine(hand_url)
    try:
        refresher = GapRefresher(IndicatorEngine(engine, catalog, settings), VersionListener(hand_url))
        seen: list[tuple] = []

        def in_refresh_thread() -> None:
            _REFRESHING.set((refresher.app_name, str(settings.indicator_statement_timeout_ms),
                             str(settings.indicator_lock_timeout_ms)))
            with engine.connect() as conn:
                seen.append(tuple(conn.execute(sa.text(
                    "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
                    "current_setting('application_name')")).one()))

        worker = threading.Thread(target=in_refresh_thread)
        worker.start()
        worker.join()
        with engine.connect() as conn:  # a request's session afterwards: the connection's own settings again
            after = tuple(conn.execute(sa.text("SELECT current_setting('lock_timeout'), "
                                               "current_setting('application_name')")).one())
    finally:
        engine.dispose()
    assert seen == [("1234ms", "567ms", refresher.app_name)]
    assert after == ("0", "minhang-cim")
