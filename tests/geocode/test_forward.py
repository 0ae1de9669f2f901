"""GET /geocode on the real Minhang addresses: ranked candidates, match levels, CRS, bounds and errors."""

from __future__ import annotations

import pytest

from cim_service.core.crs import wgs84_to_gcj02

from .conftest import rows


@pytest.fixture(scope="module")
def lane_address(geo_engine, address_table):
    """A real address of the file with a road and a lane and no number (the file's commonest form)."""
    return rows(geo_engine, f"SELECT id, full_address, road, lane, town, address_code, ST_X(geom) x, ST_Y(geom) y "
                            f"FROM {address_table} WHERE road IS NOT NULL AND lane IS NOT NULL AND number IS NULL "
                            f"ORDER BY id LIMIT 1")[0]


def test_door_plate_first(geo_api, lane_address):
    a = lane_address
    r = geo_api.get("/geocode", params={"q": f"{a.road}{a.lane}弄"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    top = doc["features"][0]
    assert top["id"] == a.id
    assert top["properties"]["match_level"] == "door_plate"
    assert top["properties"]["address_code"] == a.address_code
    assert top["properties"]["town"] == a.town
    assert top["geometry"]["coordinates"] == pytest.approx([a.x, a.y], abs=1e-7)
    scores = [f["properties"]["score"] for f in doc["features"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1


def test_building_and_room_in_the_text_still_find_the_lane(geo_api, lane_address):
    a = lane_address
    r = geo_api.get("/geocode", params={"q": f"上海市闵行区{a.road}{a.lane}弄12号3幢502室", "limit": 1})
    top = r.json()["features"][0]
    assert top["id"] == a.id and top["properties"]["match_level"] == "door_plate"


def test_unknown_plate_on_a_known_road_is_road_level(geo_api, geo_engine, address_table, lane_address):
    a = lane_address
    r = geo_api.get("/geocode", params={"q": f"{a.road}99999弄", "limit": 3})
    feats = r.json()["features"]
    assert feats and all(f["properties"]["match_level"] == "road" for f in feats)
    on_road = {row.id for row in rows(geo_engine, f"SELECT id FROM {address_table} WHERE road = :r", r=a.road)}
    assert {f["id"] for f in feats} <= on_road
    assert feats[0]["properties"]["score"] < 0.9


def test_village_is_community_level(geo_api, geo_engine, address_table):
    v = rows(geo_engine, f"SELECT id, community FROM {address_table} WHERE community LIKE '%村' AND road IS NULL "
                         f"ORDER BY id LIMIT 1")[0]
    feats = geo_api.get("/geocode", params={"q": v.community}).json()["features"]
    assert feats[0]["properties"]["match_level"] == "community"
    got = {f["id"] for f in feats}
    assert v.id in got or rows(geo_engine, f"SELECT count(*) FROM {address_table} WHERE community = :c",
                               c=v.community)[0][0] > len(feats)


def test_town_only_is_town_level_at_the_mean_of_its_addresses(geo_api, geo_engine, address_table):
    mean = rows(geo_engine, f"SELECT avg(ST_X(geom)), avg(ST_Y(geom)) FROM {address_table} WHERE town = '七宝镇'")[0]
    doc = geo_api.get("/geocode", params={"q": "闵行区七宝镇"}).json()
    (f,) = doc["features"]
    assert f["properties"]["match_level"] == "town" and f["properties"]["town"] == "七宝镇"
    assert f["geometry"]["coordinates"] == pytest.approx([mean[0], mean[1]], abs=1e-7)


def test_gcj02_output(geo_api, lane_address):
    a = lane_address
    r = geo_api.get("/geocode", params={"q": f"{a.road}{a.lane}弄", "limit": 1, "crs": "urn:cim:crs:gcj02"})
    assert r.headers["content-crs"] == "<urn:cim:crs:gcj02>"
    gx, gy = wgs84_to_gcj02(a.x, a.y)
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([float(gx), float(gy)], abs=1e-7)


def test_lat_lon_order_for_epsg_4326(geo_api, lane_address):
    a = lane_address
    r = geo_api.get("/geocode", params={"q": f"{a.road}{a.lane}弄", "limit": 1,
                                        "crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([a.y, a.x], abs=1e-7)


def test_nothing_found_is_an_empty_collection(geo_api):
    doc = geo_api.get("/geocode", params={"q": "火星基地不存在路1号"}).json()
    assert doc["features"] == [] and doc["numberReturned"] == 0


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"q": ""}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "莘松路", "limit": 0}, "limit"),
        ({"q": "莘松路", "limit": 51}, "limit"),
        ({"q": "莘松路", "limit": "many"}, "limit"),
        ({"q": "莘松路", "crs": "EPSG:9999"}, "crs"),
        ({"q": "莘松路", "bogus": "1"}, "bogus"),
        ({}, "q"),
    ],
)
def test_bad_parameters_are_400_naming_them(geo_api, params, named):
    r = geo_api.get("/geocode", params=params)
    assert r.status_code == 400, r.text
    assert named in r.json()["description"]


def test_index_follows_the_layer_version(geo_api, geo_engine, catalog, address_table):
    """A standard address added (and its version bumped, as every writer does) is found by the next request."""
    import sqlalchemy as sa

    from cim_service.core.address import address_code, parse_address
    from cim_service.core.catalog import Role
    from cim_service.store.layer_state import bump_version

    spec = catalog.require_role(Role.standard_addresses)
    p = parse_address("上海市闵行区测试新路7788弄", town_hint="七宝镇")
    assert geo_api.get("/geocode", params={"q": "测试新路7788弄"}).json()["features"] == []
    with geo_engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO {address_table} (feature_key, address_code, full_address, district, town, road, lane, geom) "
            "VALUES (:k, :k, :f, '闵行区', '七宝镇', :r, :l, ST_SetSRID(ST_MakePoint(121.35, 31.15), 4326))"),
            {"k": address_code(p), "f": p.standard_address(), "r": p.road, "l": p.lane})
        bump_version(conn, spec.id, spec.qualified_table)
    try:
        top = geo_api.get("/geocode", params={"q": "测试新路7788弄"}).json()["features"][0]
        assert top["properties"]["address_code"] == address_code(p)
        assert top["properties"]["match_level"] == "door_plate"
    finally:
        with geo_engine.begin() as conn:
            conn.execute(sa.text(f"DELETE FROM {address_table} WHERE feature_key = :k"), {"k": address_code(p)})
            bump_version(conn, spec.id, spec.qualified_table)
