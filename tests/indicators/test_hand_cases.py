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


def test_smart_pole_road_coverage(ind, put, sq):
    put("towns", sq(0, 0, 2000), name="甲镇")
    put("towns", sq(2000, 0, 2000), name="乙镇")
    put("main_roads", "MULTILINESTRING((100 1000, 3900 1000))", road_id="r1", name="路")  # 1.9 km in each town
    put("smart_poles", "POINT(500 1000)", pole_id="p1")  # covers 100 m of road (radius 50 m)
    put("smart_poles", "POINT(2000 1020)", pole_id="p2")  # straddles the border: 2 x sqrt(50²-20²) m of road
    r = one(ind, "smart_pole_road_coverage")
    half = math.sqrt(50**2 - 20**2)
    assert r["denominator"] == pytest.approx(3.8, rel=1e-6)
    assert r["numerator"] == pytest.approx((100 + 2 * half) / 1000, rel=2e-3)
    assert town(r, "乙镇")["numerator"] == pytest.approx(half / 1000, rel=2e-3)
    assert "km of main roads lack a smart pole" in r["gap"]


def test_bus_esign_share_and_target(ind, put, sq):
    put("towns", sq(0, 0, 1000), name="甲镇")
    for i in range(10):
        put("bus_stops", f"POINT({50 + 90 * i} 500)", stop_id=f"b{i}", name=f"站{i}", has_esign=i < 7)
    r = one(ind, "bus_esign_coverage")
    assert r["value"] == pytest.approx(70.0) and r["target"] == 90
    assert r["gap_value"] == 2 and "needs 2 more bus stops with an electronic sign" in r["gap"]
    put("bus_stops", "POINT(5000 5000)", outside=True, stop_id="x", name="外", has_esign=False)
    assert one(ind, "bus_esign_coverage")["value"] == pytest.approx(70.0)  # outside the district: not counted


def test_g5_radius_per_cell_type_and_address_coverage(ind, put, sq, settings):
    put("towns", sq(0, 0, 2000), name="甲镇")
    put("base_stations", "POINT(500 500)", station_id="m", technology="5G", cell_type="macro")
    put("base_stations", "POINT(1500 1500)", station_id="s", technology="5G", cell_type="small")
    put("base_stations", "POINT(1500 500)", station_id="old", technology="4G", cell_type="macro")
    for i, (x, y) in enumerate([(500, 700), (500, 800), (1500, 1580), (1500, 1650), (1500, 520)]):
        put("addresses", f"POINT({x} {y})", address_code=f"a{i:08d}", full_address=f"a{i}")
    area = one(ind, "g5_area_coverage")
    expected = 100 * math.pi * (settings.g5_macro_radius_m**2 + settings.g5_small_radius_m**2) / 4e6
    assert area["value"] == pytest.approx(expected, rel=2e-3)
    addr = one(ind, "g5_address_coverage")
    assert (addr["numerator"], addr["denominator"]) == (2, 5)  # 200 m from the macro, 80 m from the small cell


def test_smart_lockers_count_since_2021_with_area_targets(ind, put, sq):
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 3000), name="乙镇")
    put("smart_lockers", "POINT(500 500)", locker_id="l1", installed_at="2020-06-01")
    put("smart_lockers", "POINT(600 500)", locker_id="l2", installed_at="2021-03-01")
    put("smart_lockers", "POINT(1600 500)", locker_id="l3", installed_at="2024-03-01")
    r = one(ind, "smart_lockers_new")
    assert r["value"] == 2 and r["binding"] == "binding"
    assert town(r, "甲镇")["target"] == 200 and town(r, "乙镇")["target"] == 1800  # 2,000 by area: 1 and 9 km²
    assert town(r, "乙镇")["gap"] == "乙镇 needs 1,799 more smart lockers (target 1,800)"


def test_key_areas_have_their_own_targets(ind, put, sq):
    put("towns", sq(0, 0, 2000), name="甲镇")
    put("key_areas", sq(0, 0, 500), name="虹桥商务区", g5_target_coverage=0.95)
    put("base_stations", "POINT(250 250)", station_id="m", technology="5G", cell_type="macro")
    r = one(ind, "g5_area_coverage")
    (k,) = r["key_areas"]
    assert k["name"] == "虹桥商务区" and k["baseline"] == 95 and k["target"] == pytest.approx(95.0)
    assert k["value"] == pytest.approx(100 * math.pi * 250**2 / 500**2, rel=2e-3)
    assert k["status"] == "not_met"


def test_one_failing_indicator_does_not_stop_the_others(ind, put, sq, monkeypatch):
    from cim_service.indicators import compute
    from cim_service.indicators.catalog import Kind
    from cim_service.indicators.engine import IndicatorComputationError

    put("towns", sq(0, 0, 1000), name="甲镇")
    put("bus_stops", "POINT(10 10)", stop_id="b", name="站", has_esign=True)
    put("cameras", "POINT(20 20)", device_id="1" * 20, camera_type="dome")

    def broken(ctx, spec):
        ctx.execute("CREATE TEMP TABLE _ind_broken ON COMMIT DROP AS SELECT 1 AS x")
        ctx.prepared.add("_ind_broken")
        ctx.execute("SELECT 1 / 0")

    monkeypatch.setitem(compute.MEASURES, Kind.flag_share, broken)
    with pytest.raises(IndicatorComputationError) as err:
        ind.results(["bus_esign_coverage", "cameras_total", "camera_density"])
    assert err.value.keys == ["indicator:bus_esign_coverage"] and "division" not in str(err.value)
    with ind.engine.connect() as conn:
        assert ind.stale(conn, ["bus_esign_coverage", "cameras_total", "camera_density"]) == ["bus_esign_coverage"]
    monkeypatch.undo()
    assert one(ind, "bus_esign_coverage")["value"] == pytest.approx(100.0)


def test_gap_sentences_in_english_and_chinese():
    from cim_service.indicators.catalog import load_indicators
    from cim_service.indicators.results import area_result

    spec = {s.id: s for s in load_indicators()}["camera_density"]
    res = area_result(spec, "七宝镇", 1_000.0, 10.0, 180.0, None)
    assert res["status"] == "not_met" and res["gap_value"] == 800
    assert res["gap"] == "七宝镇 needs 800 more cameras to reach 180/km²"
    assert res["gap_zh"] == "七宝镇还需新增视频监控设备800个,方可达到每平方公里180个"
    met = area_result(spec, "七宝镇", 2_000.0, 10.0, 180.0, None)
    assert (met["status"], met["gap_zh"]) == ("met", "七宝镇已达标")


def test_english_gap_sentences_name_the_town_in_english():
    from cim_service.indicators.catalog import load_indicators
    from cim_service.indicators.results import area_result

    spec = {s.id: s for s in load_indicators()}["camera_density"]
    res = area_result(spec, "七宝镇", 1_000.0, 10.0, 180.0, None, "Qibao Town")
    assert res["gap"] == "Qibao Town needs 800 more cameras to reach 180/km²"
    assert res["gap_zh"] == "七宝镇还需新增视频监控设备800个,方可达到每平方公里180个"
    met = area_result(spec, "七宝镇", 2_000.0, 10.0, 180.0, None, "Qibao Town")
    assert (met["gap"], met["gap_zh"]) == ("Qibao Town meets the target", "七宝镇已达标")
    none = area_result(spec, "七宝镇", None, None, 180.0, None, "Qibao Town")
    assert none["gap"] == "no data: no cameras to measure in Qibao Town" and none["gap_zh"] == "七宝镇暂无数据"
