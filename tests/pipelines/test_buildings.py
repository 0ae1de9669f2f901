"""Buildings (白模) and the basemap layers: the demo's city and the floors-only ingest rule."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from pipelines.demo import build_demo
from pipelines.ingest import ingest_file


@pytest.fixture(scope="module")
def baseline() -> dict[str, gpd.GeoDataFrame]:
    return build_demo("baseline")


def _median_height(b: gpd.GeoDataFrame, towns: list[str]) -> float:
    return float(b.loc[b["town"].isin(towns), "height_m"].median())


def test_heights_follow_each_towns_form(baseline):
    b = baseline["buildings"]
    assert len(b) > 10_000
    dense = _median_height(b, ["莘庄镇", "七宝镇", "古美街道"])
    high = _median_height(b, ["虹桥镇"])
    village = _median_height(b, ["浦江镇"])
    assert 15 <= dense <= 45, dense  # mid-rise: 6-18 storeys mostly
    assert high >= 60 and high > 1.8 * dense, (high, dense)
    assert village <= 12, village  # 2-3 storey village houses
    towers = b[b["town"] == "虹桥镇"]
    assert (towers["floors"] >= 18).mean() > 0.5
    # heights are storeys × a storey height (3-6 m) plus a parapet, never less than the storeys
    ratio = b["height_m"] / b["floors"]
    assert ratio.between(3.0, 8.0).all()


DENSE = ["莘庄镇", "七宝镇", "古美街道", "梅陇镇"]
VILLAGES = ["浦江镇", "马桥镇", "华漕镇"]


def _coverage(baseline, town: str) -> float:
    """Footprint area / built-up area of ``town`` (the built-up layer's cells of the town)."""
    b, built = baseline["buildings"], baseline["built_up"]
    footprint = b[b["town"] == town].to_crs(32651).area.sum()
    return float(footprint / built[built["town"] == town].to_crs(32651).area.sum())


def test_each_town_type_has_its_coverage_and_storeys(baseline):
    """The per-town profile of pipelines.demo.urbanform: dense blocks, Hongqiao's towers, 浦江's low villages."""
    b = baseline["buildings"]
    cover = {t: _coverage(baseline, t) for t in DENSE + VILLAGES}
    for town in DENSE:  # continuous blocks: ~8 % when the buildings were scattered over the town
        assert cover[town] >= 0.12, (town, cover)
    assert np.mean([cover[t] for t in DENSE]) > 1.3 * np.mean([cover[t] for t in VILLAGES]), cover
    # the built-up part of a dense town is its blocks, not the whole town (it was ~90 % with scattered buildings)
    areas = baseline["towns"].set_index("name").to_crs(32651).area
    built = baseline["built_up"].to_crs(32651)
    assert built[baseline["built_up"]["town"] == "莘庄镇"].area.sum() < 0.7 * areas["莘庄镇"]

    homes = b[b["use"] == "residential"]
    dense = homes[homes["town"].isin(DENSE)]["floors"]
    assert 6 <= dense.median() <= 18, dense.describe()
    assert 0.08 <= (dense >= 25).mean() <= 0.35, (dense >= 25).mean()  # a share of 25-33 storey towers
    assert dense.max() <= 33
    hongqiao = homes[homes["town"] == "虹桥镇"]["floors"]
    assert hongqiao.median() >= 18 and hongqiao.quantile(0.75) >= 25, hongqiao.describe()
    village = homes[homes["town"].isin(VILLAGES)]["floors"]
    assert village.median() <= 3 and village.quantile(0.8) <= 6, village.describe()  # 村宅, a few walk-ups
    # the industrial zone is sheds; its storeys are few
    zone = b[(b["town"] == "莘庄工业区") & ~b["use"].isin(["residential", "mixed"])]
    assert (zone["use"] == "industrial").mean() > 0.6 and zone["floors"].median() <= 3


def test_buildings_are_valid_disjoint_footprints_out_of_the_water(baseline):
    b = baseline["buildings"]
    geoms = np.asarray(b.geometry.array, dtype=object)
    assert shapely.is_valid(geoms).all()
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    assert not (i != j).any(), "footprints overlap"
    water = shapely.union_all(np.asarray(baseline["water"].geometry.array, dtype=object))
    assert not shapely.intersects(water, geoms).any()
    area_m2 = b.to_crs(32651).area
    assert area_m2.between(10, 7000).all() and area_m2.median() > 300


def test_houses_and_addresses_link_to_their_buildings(baseline):
    b = baseline["buildings"].set_index("building_id")
    houses = baseline["houses"]
    linked = houses[houses["building_id"].notna()]
    assert len(linked) / len(houses) > 0.9
    assert linked["building_id"].isin(b.index).all()
    # a house's storeys and address are its building's
    at = b.loc[linked["building_id"]]
    assert (at["floors"].to_numpy() == linked["floors"].to_numpy()).all()
    assert (at["address_code"].to_numpy() == linked["address_code"].to_numpy()).all()
    # every building stands at a building address; rooms are linked through their building
    addresses = baseline["addresses"]
    assert b["address_code"].isin(addresses["address_code"]).all()
    rooms = addresses[addresses["room"].notna()]
    assert rooms["building_id"].notna().mean() > 0.9
    pts = gpd.GeoSeries(rooms.geometry.values, crs=4326)
    sample = rooms[rooms["building_id"].notna()].head(200)
    inside = shapely.contains_xy(np.asarray(b.loc[sample["building_id"]].geometry.array, dtype=object),
                                 sample.geometry.x.to_numpy(), sample.geometry.y.to_numpy())
    assert inside.all() and len(pts) == len(rooms)


def test_same_seed_same_city():
    a, b = build_demo("small")["buildings"], build_demo("small")["buildings"]
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert shapely.equals_exact(np.asarray(a.geometry.array), np.asarray(b.geometry.array), 1e-12).all()


def test_basemap_layers_have_chinese_and_english_labels(baseline):
    water = baseline["water"].set_index("water_id")
    assert water.loc["HPJ", "name"] == "黄浦江" and water.loc["HPJ", "name_en"] == "Huangpu River"
    assert shapely.area(water.loc["HPJ"].geometry) > 0
    for layer in ("water", "parks", "main_roads"):
        frame = baseline[layer]
        assert frame["name"].notna().all() and frame["name_en"].notna().all(), layer
    assert set(baseline["main_roads"]["grade"]) >= {"expressway", "arterial", "secondary"}
    # the built-up areas cover the buildings, the dense grade where buildings are many
    built = baseline["built_up"]
    covered = shapely.union_all(np.asarray(built.geometry.array, dtype=object))
    cent = shapely.centroid(np.asarray(baseline["buildings"].geometry.array, dtype=object))
    assert shapely.covers(covered, cent).mean() > 0.99
    dense = built[built["density"] == "dense"]
    assert set(dense["town"]) & {"莘庄镇", "七宝镇", "古美街道"}


def _feature(i: int, floors, height=None, extra=None) -> dict:
    x, y = 121.3800 + i * 0.0010, 31.1100
    ring = [[x, y], [x + 0.0004, y], [x + 0.0004, y + 0.0002], [x, y + 0.0002], [x, y]]
    props = {"bldg_id": f"T{i}", "storeys": floors, **({"height": height} if height is not None else {}),
             **(extra or {})}
    return {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_ingest_derives_height_from_floors(tmp_path, db, catalog):
    """A hand-made GeoJSON with storeys only (aliases ``bldg_id``, ``storeys``): height = storeys × 3.0 m."""
    feats = [_feature(0, 6), _feature(1, 18), _feature(2, 5, height=21.5), _feature(3, "7"),
             _feature(4, "two")]
    path = tmp_path / "buildings.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False),
                    encoding="utf-8")
    result = ingest_file(db, catalog, "buildings", path)
    assert result.inserted == 4 and result.rejected == 1
    with db.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT building_id, height_m FROM cim.buildings")).all())
    assert rows == {"T0": 18.0, "T1": 54.0, "T2": 21.5, "T3": 21.0}
