"""Gap layers, the density raster and site suggestions on hand-drawn cases (EPSG:4549 metres)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import sqlalchemy as sa
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate

from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.suggest import greedy


@pytest.fixture
def ind(hand, catalog, settings):
    return IndicatorEngine(hand, catalog, settings)


def rows(engine, sql):
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def test_greedy_picks_the_biggest_cluster_first():
    demand = np.array([[0, 0], [10, 0], [20, 0], [1000, 0], [1010, 0]], dtype=float)
    cand = np.array([[10, 0], [1005, 0], [500, 0]], dtype=float)
    picks, adds = greedy(cand, demand, 50.0, np.ones(5), 10)
    assert picks == [0, 1] and adds == [3.0, 2.0]
    picks, adds = greedy(cand, demand, 50.0, np.array([1, 1, 1, 5, 5.0]), 1)
    assert picks == [1] and adds == [10.0]


def test_camera_hex_counts_and_deficits(ind, put, sq, hand):
    put("towns", sq(0, 0, 1000), name="甲镇")
    for x, y in [(100, 100), (900, 100), (500, 500), (100, 900)]:
        put("cameras", f"POINT({x} {y})", device_id=f"{x:010d}{y:010d}", camera_type="dome")
    ind.derived(["gap_camera_hex"])
    (n, cams, km2, deficit), = rows(hand, "SELECT count(*), sum(cameras), sum(area_km2), sum(deficit) "
                                         "FROM cim.gap_camera_hex")
    assert n >= 2 and cams == 4
    assert km2 == pytest.approx(1.0, rel=1e-3)  # cells clipped to the 1 km² district
    assert deficit >= 176  # per-cell rounding up can only add
    for _cell, c, a, d in rows(hand, "SELECT h3_index, cameras, area_km2, deficit FROM cim.gap_camera_hex"):
        assert d == max(0, math.ceil(180 * a - c - 1e-9))


def test_uncovered_charging_area_is_square_minus_disc(ind, put, sq, hand):
    put("towns", sq(0, 0, 4000), name="丙镇")
    put("charging_stations", "POINT(2000 2000)", station_id="c1")
    ind.derived(["gap_charging"])
    (town, zone, radius, km2), = rows(hand, "SELECT town, zone, radius_m, area_km2 FROM cim.gap_charging")
    assert (town, zone, radius) == ("丙镇", "other", 1500)
    assert km2 == pytest.approx(16 - math.pi * 2.25, rel=2e-3)
    (version,) = rows(hand, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'gap_charging'")[0]
    ind.derived(["gap_charging"])  # fresh: not rewritten
    assert rows(hand, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'gap_charging'")[0][0] == version


def test_unsensored_sites(ind, put, sq, hand):
    put("towns", sq(0, 0, 2000), name="丁镇")
    for i in range(3):
        put("metro_entrances", f"POINT({200 + 300 * i} 500)", entrance_id=f"e{i}", station_name="站")
    put("bus_stops", "POINT(1500 1500)", stop_id="b1", name="公交站")
    put("waterlogging_sensors", "POINT(200 530)", sensor_id="s0", site_kind="地铁出入口")
    put("waterlogging_sensors", "POINT(820 500)", sensor_id="s2", site_kind="地铁出入口")
    ind.derived(["gap_unsensored_sites"])
    got = {r[0]: (r[1], r[2], r[3]) for r in rows(
        hand, "SELECT site_key, site_kind, town, nearest_sensor_m FROM cim.gap_unsensored_sites")}
    assert set(got) == {"metro_entrances:e1", "bus_stops:b1"}
    assert got["metro_entrances:e1"][0] == "地铁出入口" and got["metro_entrances:e1"][1] == "丁镇"
    assert got["metro_entrances:e1"][2] == pytest.approx(math.hypot(300, 30), abs=1.0)


def test_charging_suggestions_close_the_address_gap(ind, put, sq, hand):
    put("towns", sq(0, 0, 10000), name="戊镇")
    put("charging_stations", "POINT(500 500)", station_id="c1")
    for i in range(6):  # a cluster far from the station
        put("addresses", f"POINT({8000 + 20 * i} 8000)", address_code=f"a{i:08d}", full_address=f"a{i}",
            residential=True)
    for i in range(3):  # another cluster
        put("addresses", f"POINT({2000 + 20 * i} 9000)", address_code=f"b{i:08d}", full_address=f"b{i}",
            residential=True)
    put("addresses", "POINT(600 600)", address_code="c00000000", full_address="c", residential=True)
    summary = ind.derived(["suggested_sites"])["suggested_sites"]
    assert summary["charging"]["closes_gap"] is True and summary["charging"]["sites"] == 2
    sites = rows(hand, "SELECT rank, added, cumulative_value FROM cim.suggested_sites "
                       "WHERE kind = 'charging' ORDER BY rank")
    assert [(r, a) for r, a, _ in sites] == [(1, 6.0), (2, 3.0)]
    assert sites[0][2] == pytest.approx(70.0) and sites[1][2] == pytest.approx(100.0)
    after = ind.results(["charging_address_coverage"])[0]
    assert after["value"] == pytest.approx(10.0)  # only the address next to the station


def test_density_raster_is_a_cog(ind, put, sq, settings, origin):
    X0, Y0 = origin
    put("towns", sq(0, 0, 3000), name="己镇")
    for i in range(50):
        put("cameras", f"POINT({1500 + (i % 5) * 10} {1500 + (i // 5) * 10})", device_id=f"{i:020d}",
            camera_type="dome")
    info = ind.derived(["camera_density_raster"])["camera_density_raster"]
    path = settings.home / "rasters" / "camera_density.tif"
    assert info["path"] == str(path) and path.exists()
    assert cog_validate(str(path))[0]
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 4549
        x, y = src.xy(*src.index(X0 + 1520, Y0 + 1545))
        val = next(src.sample([(x, y)]))[0]
    assert val == pytest.approx(50 / (np.pi * 0.5642**2), rel=0.1)  # all 50 in the 1 km² disc
    assert info["max_density"] == pytest.approx(val, rel=0.1)
    # served as web tiles by rio-tiler (the tiles engineer reads <home>/rasters/*.tif)
    import morecantile
    from rio_tiler.io import Reader

    lon, lat = Transformer.from_crs(4549, 4326, always_xy=True).transform(X0 + 1520, Y0 + 1545)
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 13)
    with Reader(str(path)) as cog:
        img = cog.tile(tile.x, tile.y, tile.z)
    assert img.data.max() > 0


def test_gaps_without_towns_use_the_district(ind, put, sq, hand):
    put("district", sq(0, 0, 4000), adcode="310112", name="闵行区")
    put("base_stations", "POINT(2000 2000)", station_id="g1", technology="5G", cell_type="macro")
    put("base_stations", "POINT(500 500)", station_id="g2", technology="4G", cell_type="macro")
    ind.derived(["gap_5g"])
    (town, km2), = rows(hand, "SELECT town, area_km2 FROM cim.gap_5g")
    assert town is None and km2 == pytest.approx(16 - math.pi * 0.25**2, rel=1e-3)  # the 4G one does not count
    r = ind.results(["g5_area_coverage", "g5_stations"])
    assert r[0]["value"] == pytest.approx(100 * math.pi * 0.0625 / 16, rel=2e-3) and r[0]["towns"] == []
    assert r[1]["value"] == 1
