"""As-of reads, a feature's history and a collection's changes over HTTP, on the three-ingest story.

N1 is inserted (T1), re-typed (T2) and moved (T3); N2 inserted (T1) and deleted (T3); N3 inserted (T2).
Each instant is read back through items, the single item, collection and multi-layer tiles (decoded MVT) and
changes; bad ``at``/``from``/``to`` are 400s naming the parameter; access control holds on history.
"""

from __future__ import annotations

import math
from collections import namedtuple
from datetime import timedelta

import mapbox_vector_tile
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import create_api_key
from cim_service.core.settings import Settings
from tests.history.conftest import STORY, T1, T2, T3

EXPECTED = {  # as of an instant: node id -> (sensor kind, lon)
    T1: {"N1": ("environment", 121.40), "N2": ("water", 121.41)},
    T2: {"N1": ("road", 121.40), "N2": ("water", 121.41), "N3": ("fire", 121.42)},
    T3: {"N1": ("road", 121.45), "N3": ("fire", 121.42)},
}


Tile = namedtuple("Tile", "x y")


def _tile(lon, lat, z):
    """The WebMercatorQuad tile holding a WGS84 point."""
    n = 2 ** z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return Tile(int((lon + 180) / 360 * n), int(y))


def _merc_x(lon):
    return math.radians(lon) * 6378137.0


def _z(t):
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def api(db_url, db, story, tmp_path_factory):
    settings = Settings(database_url=db_url, environment="test", home=tmp_path_factory.mktemp("home"))
    with TestClient(create_app(settings)) as client:
        yield client


def _state(api, at, **params):
    r = api.get("/collections/iot_nodes/items", params={"at": at, "limit": 100, **params})
    assert r.status_code == 200, r.text
    return {f["properties"]["node_id"]: (f["properties"]["sensor_kind"], round(f["geometry"]["coordinates"][0], 2))
            for f in r.json()["features"]}, r.json()


@pytest.mark.parametrize("at", [T1, T2, T3])
def test_items_as_of_each_ingest(api, at):
    state, doc = _state(api, _z(at))
    assert state == EXPECTED[at]
    assert doc["numberMatched"] == len(EXPECTED[at])
    # just before the next ingest the state is still this one; a day later too
    later, _ = _state(api, _z(at + timedelta(days=1)))
    assert later == EXPECTED[at]


def test_items_as_of_keeps_filters_bbox_and_crs(api):
    state, _ = _state(api, _z(T2), filter="sensor_kind = 'water'")
    assert state == {"N2": ("water", 121.41)}
    state, _ = _state(api, _z(T3), bbox="121.44,31.07,121.46,31.09")
    assert state == {"N1": ("road", 121.45)}
    state, _ = _state(api, _z(T1), sensor_kind="environment")
    assert state == {"N1": ("environment", 121.40)}
    r = api.get("/collections/iot_nodes/items", params={"at": _z(T1), "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"})
    assert r.status_code == 200 and r.headers["Content-Crs"].endswith("3857>")
    xs = sorted(round(f["geometry"]["coordinates"][0]) for f in r.json()["features"])
    assert xs == sorted(round(_merc_x(lon)) for lon in (121.40, 121.41))
    # current reads are unchanged
    now = api.get("/collections/iot_nodes/items").json()
    assert {f["properties"]["node_id"] for f in now["features"]} == {"N1", "N3"}


def test_single_item_as_of(api, story):
    n1, n2 = story["N1"], story["N2"]
    r = api.get(f"/collections/iot_nodes/items/{n1}", params={"at": _z(T1)})
    assert r.status_code == 200 and r.json()["properties"]["sensor_kind"] == "environment"
    assert api.get(f"/collections/iot_nodes/items/{n1}").json()["geometry"]["coordinates"][0] == pytest.approx(121.45)
    assert api.get(f"/collections/iot_nodes/items/{n2}", params={"at": _z(T2)}).status_code == 200
    assert api.get(f"/collections/iot_nodes/items/{n2}", params={"at": _z(T3)}).status_code == 404
    assert api.get(f"/collections/iot_nodes/items/{n2}").status_code == 404


def _tile_nodes(api, url, at, layer="iot_nodes"):
    r = api.get(url, params={"at": _z(at)} if at else {})
    assert r.status_code == 200, r.text
    layers = mapbox_vector_tile.decode(r.content)
    return sorted((f["properties"]["node_id"], f["properties"]["sensor_kind"])
                  for f in layers.get(layer, {}).get("features", []))


@pytest.mark.parametrize("at", [T1, T2, T3])
def test_tiles_as_of_each_ingest(api, at):
    t = _tile(121.43, 31.07, 12)  # holds every node of the story
    expected = sorted((k, v[0]) for k, v in EXPECTED[at].items())
    assert _tile_nodes(api, f"/collections/iot_nodes/tiles/WebMercatorQuad/12/{t.x}/{t.y}", at) == expected
    multi = f"/tiles/WebMercatorQuad/12/{t.x}/{t.y}?collections=iot_nodes"
    assert _tile_nodes(api, multi, at) == expected
    # a z16 tile (unthinned) around N1's position then
    lon = EXPECTED[at]["N1"][1]
    t16 = _tile(lon, 31.065 if lon < 121.45 else 31.08, 16)
    got = _tile_nodes(api, f"/collections/iot_nodes/tiles/WebMercatorQuad/16/{t16.x}/{t16.y}", at)
    assert ("N1", EXPECTED[at]["N1"][0]) in got


def test_tile_cache_keyed_with_at(api):
    t = _tile(121.43, 31.07, 12)
    url = f"/collections/iot_nodes/tiles/WebMercatorQuad/12/{t.x}/{t.y}"
    current = _tile_nodes(api, url, None)
    assert _tile_nodes(api, url, T1) != current
    assert _tile_nodes(api, url, None) == current == sorted((k, v[0]) for k, v in EXPECTED[T3].items())


def test_dataset_tile_as_of_all_layers_skips_derived_ones(api):
    t = _tile(121.43, 31.07, 12)
    r = api.get(f"/tiles/WebMercatorQuad/12/{t.x}/{t.y}", params={"at": _z(T2)})
    assert r.status_code == 200
    assert len(mapbox_vector_tile.decode(r.content)["iot_nodes"]["features"]) == 3


def test_history_of_a_feature(api, story):
    r = api.get(f"/collections/iot_nodes/items/{story['N1']}/history")
    assert r.status_code == 200
    versions = [f["properties"] for f in r.json()["features"]]
    assert [(v["op"], v["sensor_kind"]) for v in versions] == [("insert", "environment"), ("update", "road"),
                                                               ("update", "road")]
    assert [v["valid_from"][:10] for v in versions] == ["2021-06-01", "2022-06-01", "2023-06-01"]
    assert [v["valid_to"] and v["valid_to"][:10] for v in versions] == ["2022-06-01", "2023-06-01", None]
    assert versions[0]["actor"] == "ingest:nodes-2021.csv"
    deleted = api.get(f"/collections/iot_nodes/items/{story['N2']}/history").json()["features"]
    assert [f["properties"]["op"] for f in deleted] == ["insert", "delete"]
    assert api.get("/collections/iot_nodes/items/999999999/history").status_code == 404


def test_changes_in_intervals(api, story):
    def kinds(start, end):
        r = api.get("/collections/iot_nodes/changes", params={"from": _z(start), "to": _z(end)})
        assert r.status_code == 200, r.text
        return sorted((f["properties"]["node_id"], f["properties"]["change"]) for f in r.json()["features"])

    day = timedelta(days=1)
    assert kinds(T1, T1 + day) == [("N1", "insert"), ("N2", "insert")]
    assert kinds(T1 + day, T2 + day) == [("N1", "update"), ("N3", "insert")]
    assert kinds(T2 + day, T3 + day) == [("N1", "update"), ("N2", "delete")]
    assert kinds(T1, T3 + day) == sorted([("N1", "insert"), ("N2", "insert"), ("N1", "update"), ("N3", "insert"),
                                         ("N1", "update"), ("N2", "delete")])
    moved = api.get("/collections/iot_nodes/changes", params={"from": _z(T3), "to": _z(T3 + day)}).json()
    n1 = next(f for f in moved["features"] if f["properties"]["node_id"] == "N1")
    assert n1["geometry"]["coordinates"][0] == pytest.approx(121.45)
    assert len(STORY) == 3


@pytest.mark.parametrize(("params", "path", "words"), [
    ({"at": "yesterday"}, "/collections/iot_nodes/items", "'at'"),
    ({"at": ""}, "/collections/iot_nodes/items", "'at'"),
    ({"at": "2020-01-01T00:00:00Z"}, "/collections/iot_nodes/items", "begins at 2021-06-01"),
    ({"at": "2020-01-01"}, "/collections/iot_nodes/tiles/WebMercatorQuad/12/3430/1673", "begins at 2021-06-01"),
    ({"at": "2021-13-01"}, "/tiles/WebMercatorQuad/12/3430/1673", "'at'"),
    ({"at": "2022-01-01"}, "/collections/gap_5g/items", "no history"),
    ({"from": "2023-01-01", "to": "2022-01-01"}, "/collections/iot_nodes/changes", "'to' must be after"),
    ({"from": "2021-07-01", "to": "2099-01-01"}, "/collections/iot_nodes/changes", "exceeds"),
    ({"from": "2020-01-01", "to": "2022-01-01"}, "/collections/iot_nodes/changes", "begins at"),
    ({"from": "junk"}, "/collections/iot_nodes/changes", "'from'"),
    ({"to": "2022-01-01"}, "/collections/iot_nodes/changes", "'from' is required"),
])
def test_bad_instants_are_400(api, params, path, words):
    r = api.get(path, params=params)
    assert r.status_code == 400, r.text
    assert words in r.json()["description"]


def test_history_access_control_and_audit(api, db):
    with db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO cim.people (feature_key, person_id, address_code, name, id_number, phone, geom) "
            "VALUES ('hp1', 'HP1', 'a1', '旧名字', '310112198001011234', '13900000000', "
            "ST_SetSRID(ST_MakePoint(121.4, 31.1), 4326))"))
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE cim.people SET name = '新名字' WHERE feature_key = 'hp1'"))
        fid = conn.execute(sa.text("SELECT id FROM cim.people WHERE feature_key = 'hp1'")).scalar()
    url = f"/collections/people/items/{fid}/history"
    assert api.get(url).status_code == 404  # restricted layer: as if absent
    assert api.get("/collections/people/changes", params={"from": "2000-01-01"}).status_code == 404
    analyst = create_api_key(db, "hist-analyst", "analyst")
    assert api.get(url, headers={"X-API-Key": analyst}).status_code == 404
    officer = create_api_key(db, "hist-officer", "officer")
    names = [f["properties"]["name"] for f in api.get(url, headers={"X-API-Key": officer}).json()["features"]]
    assert names == ["旧名字", "新名字"]
    with db.connect() as conn:
        logged = conn.execute(sa.text(
            "SELECT principal, fields FROM cim_meta.access_log WHERE layer_id = 'people' AND action = 'history'"
        )).all()
    assert ("hist-officer", ) == tuple(r[0] for r in logged) and "name" in logged[0][1]
    # an officer-like role without personal_data must not see old names: properties=name is unknown to analysts
    people_admin = create_api_key(db, "hist-admin", "admin")
    r = api.get(f"/collections/people/items/{fid}", params={"at": "2000-01-01"}, headers={"X-API-Key": people_admin})
    assert r.status_code == 400 and "begins at" in r.json()["description"]


def test_map_config_passes_at_to_the_tiles(api):
    r = api.get("/map/config", params={"at": "2022-06-01T00:00:00+08:00"})
    assert r.status_code == 200, r.text
    config = r.json()
    assert config["at"] == "2022-05-31T16:00:00Z"
    urls = {layer["id"]: layer["data"] for layer in config["deck"]["layers"] if layer.get("@@type") == "MVTLayer"}
    assert urls["iot_nodes"].endswith("at=2022-05-31T16%3A00%3A00Z")
    assert "at=" not in urls["gap_5g"]  # derived layers have no history: shown as they are now
    assert "at=" not in api.get("/map/config").json()["deck"]["layers"][-2].get("data", "")
    page = api.get("/map", params={"at": "2022-06-01"})
    assert page.status_code == 200 and "at=2022-06-01T00%3A00%3A00Z" in page.text
    bad = api.get("/map", params={"at": "2020-01-01"})
    assert bad.status_code == 400 and "begins at" in bad.json()["description"]
