"""The deterministic demo dataset: structure, figures, plausibility, validity of identifiers, loading."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from geopandas.testing import assert_geodataframe_equal
from typer.testing import CliRunner

from cim_service.core.address import address_code, parse_address
from cim_service.core.catalog import Catalog
from cim_service.store.db import make_engine
from pipelines.demo import SCALES, build_demo, frame_sha256, load_demo
from pipelines.demo.geo import area_km2
from pipelines.demo.identifiers import valid_credit_code, valid_id_number
from pipelines.demo.outline import district_outline
from pipelines.demo.towns import TOWNS, town

POINT_LAYERS = ["addresses", "houses", "organisations", "people", "cameras", "base_stations", "iot_nodes",
                "charging_stations", "smart_poles", "smart_lockers", "metro_stations", "metro_entrances",
                "bus_stops", "underground_spaces", "waterlogging_sensors"]


@pytest.fixture(scope="module")
def small() -> dict[str, gpd.GeoDataFrame]:
    return build_demo("small")


@pytest.fixture(scope="module")
def baseline() -> dict[str, gpd.GeoDataFrame]:
    return build_demo("baseline")


def test_same_seed_gives_identical_frames_and_another_seed_differs(small):
    again = build_demo("small")
    assert list(again) == list(small)
    for layer, gdf in small.items():
        assert frame_sha256(again[layer]) == frame_sha256(gdf), layer
        assert_geodataframe_equal(again[layer], gdf)
    other = build_demo("small", seed=7)
    for layer in ("cameras", "people", "addresses", "bus_stops"):
        assert frame_sha256(other[layer]) != frame_sha256(small[layer]), layer
    # the fixed layers do not depend on the seed
    assert frame_sha256(other["towns"]) == frame_sha256(small["towns"])


def test_a_fresh_process_builds_the_same_data(small):
    code = ("import json; from pipelines.demo import build_demo, frame_sha256; "
            "print(json.dumps({k: frame_sha256(v) for k, v in build_demo('small').items()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {k: frame_sha256(v) for k, v in small.items()}


def test_every_source_layer_is_generated_with_catalog_columns(small, catalog: Catalog):
    sources = {s.id for s in catalog if s.kind == "source"}
    assert sources <= set(small)
    for layer_id in sources:
        spec, gdf = catalog.get(layer_id), small[layer_id]
        assert len(gdf) > 0, layer_id
        assert gdf.crs.to_epsg() == 4326
        extra = set(gdf.columns) - set(spec.field_names) - {"geometry"}
        assert not extra, (layer_id, extra)
        for f in spec.fields:
            if f.required:
                assert f.name in gdf.columns and gdf[f.name].notna().all(), (layer_id, f.name)
            if f.name in gdf.columns and f.enum:
                values = set(gdf[f.name].dropna())
                assert values <= set(f.enum), (layer_id, f.name, values - set(f.enum))
            if f.name in gdf.columns and f.pattern:
                bad = [v for v in gdf[f.name].dropna() if not re.search(f.pattern, str(v))]
                assert not bad, (layer_id, f.name, bad[:3])
        for k in spec.key:
            assert gdf[k].is_unique, (layer_id, k)


def test_baseline_matches_the_plan_figures(baseline):
    assert len(baseline["cameras"]) == 18_778
    tech = baseline["base_stations"]["technology"].value_counts()
    assert tech["5G"] == 3_480 and tech["4G"] == 3_237
    assert len(baseline["waterlogging_sensors"]) == 305
    assert len(baseline["bus_stops"]) == 1_500
    assert int(baseline["bus_stops"]["has_esign"].sum()) == 463
    assert len(baseline["iot_nodes"]) == 20_000
    assert len(baseline["addresses"]) == 60_000
    for layer, key in (("addresses", "address_code"), ("people", "id_number"), ("cameras", "device_id")):
        assert baseline[layer][key].is_unique, layer
    assert len(baseline["people"]) == 40_000
    assert baseline["cameras"]["installed_at"].max() <= np.datetime64("2020-12-31")


def test_small_and_plan_scales(small):
    s = SCALES["small"]
    assert len(small["cameras"]) == s.cameras and len(small["people"]) == s.people
    assert len(small["addresses"]) == s.addresses and len(small["waterlogging_sensors"]) == s.waterlogging
    kinds = small["waterlogging_sensors"]["site_kind"].value_counts()
    assert set(kinds.index) == {"地铁出入口", "公交站点", "地下空间", "小区道路"}
    assert int(small["bus_stops"]["has_esign"].sum()) == s.bus_esign
    assert SCALES["baseline"].cameras / s.cameras == pytest.approx(20, rel=0.01)
    p = SCALES["plan"]
    assert (p.cameras, p.base_5g, p.iot_nodes) == (70_000, 5_000, 100_000)
    assert p.addresses >= 300_000 and p.people >= 300_000


def test_all_points_inside_the_district(small, baseline):
    outline = district_outline()
    for frames in (small, baseline):
        for layer in POINT_LAYERS:
            g = frames[layer].geometry
            inside = shapely.contains_xy(outline, g.x.to_numpy(), g.y.to_numpy())
            assert inside.all(), (layer, int((~inside).sum()))
    for layer in ("main_roads", "towns", "planning_zones"):
        assert small[layer].geometry.within(outline.buffer(1e-9)).all(), layer


def test_district_area_is_372_km2(small):
    assert area_km2(small["district"].geometry.iloc[0]) == pytest.approx(372, abs=2)
    assert small["district"]["adcode"].tolist() == ["310112"]


def test_towns_partition_the_outline(small):
    t = small["towns"]
    assert len(t) == 14 and set(t["name"]) == {tw.name for tw in TOWNS}
    codes = dict(zip(t["name"], t["code"], strict=True))
    assert codes["七宝镇"] == "310112102" and codes["江川路街道"] == "310112001" and codes["莘庄工业区"] == "310112501"
    metric = t.to_crs(32651)
    outline_area = gpd.GeoSeries([district_outline()], crs=4326).to_crs(32651).area.iloc[0]
    assert metric.area.sum() == pytest.approx(outline_area, rel=1e-6)
    assert shapely.union_all(metric.geometry.to_numpy()).area == pytest.approx(outline_area, rel=1e-6)
    overlap = sum(metric.geometry.iloc[i].intersection(metric.geometry.iloc[j]).area
                  for i in range(14) for j in range(i + 1, 14))
    assert overlap < 100.0  # m², i.e. floating-point noise only
    areas = dict(zip(t["name"], metric.area / 1e6, strict=True))
    assert max(areas, key=areas.get) == "浦江镇" and areas["浦江镇"] > 70
    for name, a in areas.items():
        assert a == pytest.approx(town(name).area_km2, rel=0.2), name


def test_planning_zones_split_the_district_at_the_s20(small):
    z = small["planning_zones"].set_index("zone")
    assert z.loc["inside_s20", "charging_radius_m"] == 900 and z.loc["outside_s20", "charging_radius_m"] == 1500
    inside, outside = area_km2(z.loc["inside_s20", "geometry"]), area_km2(z.loc["outside_s20", "geometry"])
    assert 20 < inside < 80 and inside + outside == pytest.approx(area_km2(district_outline()), rel=1e-6)
    # 古美 (121.392, 31.146) is inside the outer ring, 马桥 (121.355, 31.025) is not
    assert z.loc["inside_s20", "geometry"].contains(shapely.Point(121.392, 31.146))
    assert z.loc["outside_s20", "geometry"].contains(shapely.Point(121.355, 31.025))


def _per_km2(frame: gpd.GeoDataFrame, towns: gpd.GeoDataFrame, name: str) -> float:
    poly = towns.set_index("name").geometry[name]
    g = frame.geometry
    return int(shapely.contains_xy(poly, g.x.to_numpy(), g.y.to_numpy()).sum()) / area_km2(poly)


@pytest.mark.parametrize("layer", ["cameras", "addresses", "iot_nodes", "base_stations"])
def test_density_is_higher_in_qibao_and_xinzhuang_than_in_pujiang(baseline, layer):
    towns = baseline["towns"]
    pujiang = _per_km2(baseline[layer], towns, "浦江镇")
    for dense in ("七宝镇", "莘庄镇"):
        assert _per_km2(baseline[layer], towns, dense) > 2 * pujiang, dense


def test_charging_stations_leave_gaps_in_the_south(baseline):
    lat = baseline["charging_stations"].geometry.y
    north, south = (lat > 31.05).sum(), (lat <= 31.05).sum()
    assert south > 0 and north > 4 * south


def test_identifiers_are_valid(small):
    p = small["people"]
    assert p["id_number"].map(valid_id_number).all()
    assert p["id_number"].is_unique
    assert not valid_id_number(p["id_number"].iloc[0][:17] + ("0" if p["id_number"].iloc[0][17] != "0" else "1"))
    births = p["id_number"].str.slice(6, 14).map(lambda s: date(int(s[:4]), int(s[4:6]), int(s[6:8])))
    assert (births.map(lambda d: d.year) == p["birth_year"]).all()
    assert births.min() >= date(1925, 1, 1) and births.max() <= date(2020, 12, 31)
    male = p["id_number"].str.slice(16, 17).astype(int) % 2 == 1
    assert (male == (p["gender"] == "M")).all()
    registered = p["residence_type"] == "registered"
    assert (p.loc[registered, "id_number"].str.slice(0, 6) == "310112").all()
    assert p["phone"].dropna().str.fullmatch(r"1[3-9]\d{9}").all()
    assert small["organisations"]["credit_code"].map(valid_credit_code).all()
    assert not valid_credit_code("91310112MA1FL3XY3U")


def test_people_houses_and_organisations_link_to_existing_addresses(small):
    a = small["addresses"].set_index("address_code")
    for layer in ("people", "houses", "organisations"):
        linked = small[layer]
        assert linked["address_code"].isin(a.index).all(), layer
        at = a.loc[linked["address_code"]]
        assert np.allclose(at.geometry.x.to_numpy(), linked.geometry.x.to_numpy()), layer
    assert a.loc[small["people"]["address_code"], "residential"].all()
    buildings = a[a["parse_level"].isin(["number", "building"])]
    assert sorted(small["houses"]["address_code"]) == sorted(buildings.index)


def test_addresses_are_the_parsers_own(small):
    a = small["addresses"]
    assert set(a["parse_level"]) == {"number", "building", "room"}
    assert a["full_address"].str.contains("幢").any() and a["full_address"].str.contains("单元").any()
    assert not a["full_address"].str.contains("号.*幢").any()
    assert a["address_code"].is_unique
    for row in a.sample(200, random_state=1).itertuples():
        p = parse_address(row.full_address)
        assert address_code(p) == row.address_code
        got = [p.road, p.lane, p.number, p.building, p.unit, p.room, p.level()]
        fields = (row.road, row.lane, row.number, row.building, row.unit, row.room)
        want = [None if pd.isna(v) else v for v in fields]
        assert got == [*want, row.parse_level]
        assert row.full_address.startswith(f"上海市闵行区{row.town}")


def test_metro_stations_are_real_minhang_stations(small):
    s = small["metro_stations"].set_index("name")
    for name in ("莘庄", "外环路", "七宝", "虹桥火车站", "紫藤路", "江月路", "沈杜公路", "东川路"):
        assert name in s.index, name
    assert "1号线" in s.loc["莘庄", "lines"] and "5号线" in s.loc["莘庄", "lines"]
    e = small["metro_entrances"]
    per_station = e["station_name"].value_counts()
    assert set(per_station.index) == set(s.index) and per_station.between(2, 4).all()


def _counts(engine, catalog: Catalog, layers) -> dict[str, int]:
    with engine.connect() as conn:
        return {layer: conn.execute(sa.text(f"SELECT count(*) FROM {catalog.get(layer).qualified_table}")).scalar()
                for layer in layers}


def _versions(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT layer_id, version FROM cim_meta.layer_state")).all())


def test_load_into_postgis_is_complete_and_idempotent(demo_database_url, catalog: Catalog, small):
    engine = make_engine(demo_database_url)
    try:
        load_demo(engine, catalog, scale="small")  # restores any layer another test changed
        assert _counts(engine, catalog, small) == {k: len(v) for k, v in small.items()}
        with engine.connect() as conn:
            outside = conn.execute(sa.text("SELECT count(*) FROM cim.cameras WHERE outside_district")).scalar()
            codes = set(conn.execute(sa.text("SELECT address_code FROM cim.addresses")).scalars())
        assert outside == 0 and codes == set(small["addresses"]["address_code"])
        before = _versions(engine)
        results = load_demo(engine, catalog, scale="small")
        assert {r.status for r in results.values()} == {"unchanged"}
        assert _versions(engine) == before
    finally:
        engine.dispose()


def test_loading_another_seed_replaces_the_demo_then_restores(demo_database_url, catalog: Catalog, small):
    engine = make_engine(demo_database_url)
    try:
        other = build_demo("small", seed=7)
        results = load_demo(engine, catalog, scale="small", seed=7, frames=other)
        assert results["cameras"].status == "committed"
        assert _counts(engine, catalog, other) == {k: len(v) for k, v in other.items()}
        with engine.connect() as conn:
            ids = set(conn.execute(sa.text("SELECT device_id FROM cim.cameras")).scalars())
        assert ids == set(other["cameras"]["device_id"])
    finally:
        load_demo(engine, catalog, scale="small")
        restored = _counts(engine, catalog, small)
        engine.dispose()
    assert restored == {k: len(v) for k, v in small.items()}


def test_cim_demo_command_reports_an_unchanged_rerun(demo_database_url, monkeypatch):
    from cim_service.cli import app

    monkeypatch.setenv("CIM_DATABASE_URL", demo_database_url)
    result = CliRunner().invoke(app, ["demo", "--scale", "small"])
    assert result.exit_code == 0, result.output
    assert "waterlogging_sensors" in result.output and "committed" not in result.output
    assert result.output.count("unchanged") >= 20
    bad = CliRunner().invoke(app, ["demo", "--scale", "huge"])
    assert bad.exit_code != 0


def test_cim_demo_without_a_database_fails_with_one_line(monkeypatch):
    from cim_service.cli import app

    monkeypatch.setenv("CIM_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    result = CliRunner().invoke(app, ["demo", "--scale", "small"])
    assert result.exit_code == 1
    assert "cannot connect to the database" in result.output and "Traceback" not in result.output


def test_a_command_on_a_database_that_does_not_exist_fails_with_one_line(db_url, monkeypatch):
    """A reachable server without the database (SQLSTATE 3D000) is a connection problem too, said in one line."""
    from sqlalchemy.engine import make_url

    from cim_service.cli import app

    missing = make_url(db_url).set(database="cim_no_such_database").render_as_string(hide_password=False)
    monkeypatch.setenv("CIM_DATABASE_URL", missing.replace("postgresql+psycopg://", "postgresql://"))
    result = CliRunner().invoke(app, ["demo", "--scale", "small"])
    assert result.exit_code == 1
    assert "cannot connect to the database" in result.output and "Traceback" not in result.output
