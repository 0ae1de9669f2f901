"""Hand-computable indicator cases on a separate database (geometry drawn in EPSG:4549 metres)."""

from __future__ import annotations

import math

import pytest

from cim_service.indicators.engine import IndicatorEngine


@pytest.fixture
def ind(hand, catalog, settings):
    return IndicatorEngine(hand, catalog, settings)


def one(ind, indicator_id, **kw):
    return ind.results([indicator_id], **kw)[0]


def town(result, name):
    return next(t for t in result["towns"] if t["town"] == name)


def test_four_cameras_in_one_square_km(ind, put, sq):
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 2000), name="乙镇")
    for x, y in [(100, 100), (900, 100), (500, 500), (100, 900)]:
        put("cameras", f"POINT({x} {y})", device_id=f"{x:010d}{y:010d}", camera_type="dome")
    r = one(ind, "camera_density")
    a = town(r, "甲镇")
    assert a["value"] == pytest.approx(4.0, rel=1e-6)
    assert a["status"] == "not_met"
    assert a["gap_value"] == 176 and "甲镇 needs 176 more cameras" in a["gap"]
    b = town(r, "乙镇")
    assert b["value"] == 0 and b["gap_value"] == 720  # 4 km² x 180
    # district = union of towns (no district layer): 4 cameras / 5 km²
    assert r["value"] == pytest.approx(0.8, rel=1e-6)
    total = one(ind, "cameras_total")
    assert total["value"] == 4
    # count targets are apportioned by area: 70,000 x 1/5 and x 4/5
    assert town(total, "甲镇")["target"] == 14_000 and town(total, "乙镇")["target"] == 56_000


def test_charging_disc_at_town_centre_is_analytic(ind, put, sq):
    put("towns", sq(0, 0, 4000), name="丙镇")
    put("charging_stations", "POINT(2000 2000)", station_id="c1")
    r = one(ind, "charging_area_coverage")
    # no planning zones: 1.5 km everywhere; disc fully inside the 4 km square
    expected = 100 * math.pi * 1500**2 / 4000**2
    assert r["value"] == pytest.approx(expected, rel=2e-3)
    assert town(r, "丙镇")["value"] == pytest.approx(expected, rel=2e-3)
    assert r["status"] == "not_met"


def test_charging_zones_use_their_radius(ind, put, sq):
    put("towns", sq(0, 0, 4000), name="丙镇")
    put("planning_zones", sq(0, 0, 2000), zone="inside_s20", name="外环内", charging_radius_m=900)
    put("planning_zones", "MULTIPOLYGON(((2000 0, 4000 0, 4000 4000, 0 4000, 0 2000, 2000 2000, 2000 0)))",
        zone="outside_s20", name="外环外", charging_radius_m=1500)
    put("charging_stations", "POINT(2000 2000)", station_id="c1")
    r = one(ind, "charging_area_coverage")
    # a quarter of a 900 m disc in the inside square + three quarters of a 1500 m disc outside
    expected = 100 * (math.pi * 900**2 / 4 + 3 * math.pi * 1500**2 / 4) / 4000**2
    assert r["value"] == pytest.approx(expected, rel=2e-3)


def test_sensors_at_some_metro_entrances(ind, put, sq, settings):
    put("towns", sq(0, 0, 2000), name="丁镇")
    for i in range(5):
        put("metro_entrances", f"POINT({200 + 300 * i} 500)", entrance_id=f"e{i}", station_name="站")
    # 30 m away from entrances 0 and 3 (within 50 m), 80 m from entrance 4 (not within)
    put("waterlogging_sensors", "POINT(200 530)", sensor_id="s0", site_kind="地铁出入口")
    put("waterlogging_sensors", "POINT(1100 470)", sensor_id="s3", site_kind="地铁出入口")
    put("waterlogging_sensors", "POINT(1480 500)", sensor_id="s4", site_kind="地铁出入口")
    r = one(ind, "waterlogging_metro")
    assert settings.sensor_site_radius_m == 50
    assert r["value"] == pytest.approx(40.0) and r["numerator"] == 2 and r["denominator"] == 5
    assert town(r, "丁镇")["gap_value"] == 3


def test_empty_input_is_no_data(ind, put, sq):
    put("towns", sq(0, 0, 1000), name="甲镇")
    r = one(ind, "waterlogging_bus")
    assert r["status"] == "no_data" and r["value"] is None
    assert all(t["status"] == "no_data" for t in r["towns"])
