"""Indicators on the small demo, checked against an independent geopandas computation in EPSG:4549."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from cim_service.core.settings import Settings
from cim_service.indicators.catalog import load_indicators
from cim_service.indicators.engine import IndicatorEngine
from cim_service.store.db import make_engine

M = 4549


@pytest.fixture(scope="module")
def demo(demo_database_url, catalog, tmp_path_factory):
    from pipelines.demo import load_demo

    eng = make_engine(demo_database_url)
    load_demo(eng, catalog, scale="small")  # a no-op unless another test changed a layer
    settings = Settings(database_url=demo_database_url, environment="test", home=tmp_path_factory.mktemp("ind"))
    ind = IndicatorEngine(eng, catalog, settings)
    results = {r["id"]: r for r in ind.results(refresh=True)}
    yield eng, ind, results
    eng.dispose()


def frame(eng, table, cols="*", where="TRUE"):
    return gpd.read_postgis(f"SELECT {cols} FROM cim.{table} WHERE {where}", eng, geom_col="geom")


def by_town(result):
    return {t["town"]: t for t in result["towns"]}


def test_camera_density_per_town(demo):
    eng, _, results = demo
    towns = frame(eng, "towns", "name, geom")
    cams = frame(eng, "cameras", "id, geom")
    assert len(towns) == 14 and len(cams) > 500
    joined = gpd.sjoin(cams, towns, predicate="intersects")
    counts = joined.drop_duplicates("id").groupby("name").size()
    km2 = towns.to_crs(M).set_index("name").area / 1e6
    got = by_town(results["camera_density"])
    for name, area in km2.items():
        expected = counts.get(name, 0) / area
        assert got[name]["value"] == pytest.approx(expected, rel=1e-3), name
    district = frame(eng, "district", "geom").to_crs(M).area.sum() / 1e6
    inside = int((~frame(eng, "cameras", "outside_district, geom")["outside_district"]).sum())
    assert results["camera_density"]["value"] == pytest.approx(inside / district, rel=1e-3)
    assert results["cameras_total"]["value"] == inside


def _charging_covered(eng) -> tuple[gpd.GeoSeries, shapely.Geometry]:
    district = shapely.union_all(frame(eng, "district", "geom").to_crs(M).geometry.values)
    zones = frame(eng, "planning_zones", "zone, charging_radius_m, geom").to_crs(M)
    stations = frame(eng, "charging_stations", "geom").to_crs(M).geometry
    parts, zoned = [], []
    for _, z in zones.iterrows():
        zone = z.geom.intersection(district)
        zoned.append(zone)
        discs = shapely.union_all(stations.buffer(z.charging_radius_m, quad_segs=16).values)
        parts.append(discs.intersection(zone))
    rest = district.difference(shapely.union_all(zoned))
    if rest.area > 1:
        parts.append(shapely.union_all(stations.buffer(1500, quad_segs=16).values).intersection(rest))
    return shapely.union_all(parts), district


def test_charging_area_coverage_matches_geopandas(demo):
    eng, _, results = demo
    covered, district = _charging_covered(eng)
    expected = 100 * covered.area / district.area
    r = results["charging_area_coverage"]
    assert 0 < expected < 100
    assert r["value"] == pytest.approx(expected, rel=5e-3)
    towns = frame(eng, "towns", "name, geom").to_crs(M)
    got = by_town(r)
    for _, t in towns.iterrows():
        share = 100 * covered.intersection(t.geom).area / t.geom.area
        assert got[t["name"]]["value"] == pytest.approx(share, rel=5e-3, abs=1e-3), t["name"]


def test_site_and_flag_shares_match_geopandas(demo, settings):
    eng, _, results = demo
    sensors = frame(eng, "waterlogging_sensors", "geom").to_crs(M)
    entrances = frame(eng, "metro_entrances", "id, outside_district, geom").to_crs(M)
    entrances = entrances[~entrances["outside_district"]]
    near = gpd.sjoin_nearest(entrances, sensors, max_distance=settings.sensor_site_radius_m, how="inner")
    with_sensor = near["id"].nunique()
    r = results["waterlogging_metro"]
    assert r["denominator"] == len(entrances)
    assert abs(r["numerator"] - with_sensor) <= 1  # geography vs 4549 distance: only a 50.0 m tie could differ
    stops = frame(eng, "bus_stops", "has_esign, outside_district, geom")
    stops = stops[~stops["outside_district"]]
    assert results["bus_esign_coverage"]["value"] == pytest.approx(100 * stops["has_esign"].fillna(False).mean(),
                                                                   abs=1e-4)


def test_every_town_has_every_indicator(demo):
    _, _, results = demo
    assert len(results) == len(load_indicators().ids)
    for r in results.values():
        assert r["status"] in ("met", "not_met", "no_data")
        assert len(r["towns"]) == 14
        for t in r["towns"]:
            assert t["status"] in ("met", "not_met", "no_data") and t["gap"]
    totals = pd.Series({t["town"]: t["target"] for t in results["g5_stations"]["towns"]})
    assert totals.sum() == pytest.approx(5000, abs=14)  # area-apportioned targets add up (rounding)
    assert np.all(totals > 0)


def test_gap_layers_on_demo(demo):
    eng, ind, results = demo
    out = ind.derived()
    assert out["gap_camera_hex"]["features"] > 400  # ~372 km² / 0.74 km² cells
    hexes = frame(eng, "gap_camera_hex", "cameras, area_km2, geom")
    district = frame(eng, "district", "geom").to_crs(M).area.sum() / 1e6
    assert hexes["area_km2"].sum() == pytest.approx(district, rel=1e-3)
    assert hexes["cameras"].sum() == results["cameras_total"]["value"]
    gaps = frame(eng, "gap_charging", "area_km2, geom")
    uncovered = results["charging_area_coverage"]["denominator"] - results["charging_area_coverage"]["numerator"]
    town_total = sum(t["denominator"] - t["numerator"] for t in results["charging_area_coverage"]["towns"])
    assert gaps["area_km2"].sum() == pytest.approx(town_total, rel=1e-3)
    assert town_total == pytest.approx(uncovered, rel=0.02)  # towns partition the outline (almost)
    assert out["suggested_sites"]["charging"]["closes_gap"] is True
