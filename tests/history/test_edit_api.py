"""Editing over HTTP (OGC API Features Part 4): scopes, ETag/If-Match, CRS (GCJ-02), validation, history, tiles."""

from __future__ import annotations

import json
import math
import time

import mapbox_vector_tile
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import create_api_key
from cim_service.core.crs import wgs84_to_gcj02
from cim_service.core.settings import Settings

LON, LAT = 121.3812, 31.1127  # in 莘庄, well inside Shanghai


def _feature(device_id="31011201001321900001", lon=LON, lat=LAT, **props):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"device_id": device_id, "camera_type": "dome", "direction_deg": 90.0,
                           "installed_at": "2024-05-01", "owner": "测试单位", **props}}


@pytest.fixture(scope="module")
def env(db_url, db, tmp_path_factory):
    settings = Settings(database_url=db_url, environment="test", home=tmp_path_factory.mktemp("home"))
    keys = {role: create_api_key(db, f"edit-{role}", role) for role in ("analyst", "editor", "officer")}
    with TestClient(create_app(settings)) as client:
        yield client, {r: {"X-API-Key": k} for r, k in keys.items()}


def _state(db):
    with db.connect() as conn:
        return (conn.execute(sa.text("SELECT count(*) FROM cim.cameras")).scalar(),
                conn.execute(sa.text("SELECT version FROM cim_meta.layer_state WHERE layer_id = 'cameras'")).scalar(),
                conn.execute(sa.text("SELECT count(*) FROM cim_hist.cameras")).scalar())


def _post(api, headers, doc, **extra):
    return api.post("/collections/cameras/items", content=json.dumps(doc),
                    headers={**headers, "Content-Type": "application/geo+json", **extra})


def test_editor_scope(env, db):
    api, keys = env
    before = _state(db)
    assert _post(api, {}, _feature()).status_code == 401
    assert _post(api, keys["analyst"], _feature()).status_code == 403
    assert api.delete("/collections/cameras/items/1", headers=keys["analyst"]).status_code == 403
    assert _state(db) == before
    assert _post(api, keys["editor"], _feature("31011201001321900010")).status_code == 201
    assert _post(api, keys["officer"], _feature("31011201001321900011")).status_code == 201
    # a derived layer is not editable
    r = api.post("/collections/gap_5g/items", content=json.dumps(_feature()), headers=keys["editor"])
    assert r.status_code == 403


def test_create_read_etag_if_match_and_history(env, db):
    api, keys = env
    r = _post(api, keys["editor"], _feature("31011201001321900020"))
    assert r.status_code == 201, r.text
    url, tag = r.headers["Location"], r.headers["ETag"]
    path = url[url.index("/collections/"):]
    got = api.get(path)
    assert got.status_code == 200 and got.headers["ETag"].startswith(tag[:-1] + ".")  # "<version>.<representation>"
    tag = got.headers["ETag"]
    assert got.json()["properties"]["camera_type"] == "dome"
    assert got.json()["geometry"]["coordinates"] == pytest.approx([LON, LAT])
    assert api.get(path, headers={"If-None-Match": tag}).status_code == 304
    # update with the current tag
    r = api.patch(path, content=json.dumps({"type": "Feature", "properties": {"camera_type": "ptz"}}),
                  headers={**keys["editor"], "If-Match": tag})
    assert r.status_code == 204, r.text
    new_tag = api.get(path).headers["ETag"]
    assert new_tag != tag and new_tag.startswith(r.headers["ETag"][:-1] + ".")
    body = api.get(path).json()
    assert body["properties"]["camera_type"] == "ptz" and body["properties"]["owner"] == "测试单位"
    # a stale tag is a conflict, and changes nothing
    before = _state(db)
    r = api.put(path, content=json.dumps(_feature("31011201001321900020", camera_type="bullet")),
                headers={**keys["editor"], "If-Match": tag})
    assert r.status_code == 412 and r.headers["ETag"] == new_tag.split(".")[0] + "\""
    assert _state(db) == before and api.get(path).json()["properties"]["camera_type"] == "ptz"
    # PUT replaces: absent properties become null
    doc = _feature("31011201001321900020")
    del doc["properties"]["owner"]
    r = api.put(path, content=json.dumps(doc), headers={**keys["editor"], "If-Match": new_tag})
    assert r.status_code == 204
    assert api.get(path).json()["properties"]["owner"] is None
    r = api.delete(path, headers={**keys["editor"], "If-Match": tag})
    assert r.status_code == 412
    assert api.delete(path, headers=keys["editor"]).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path, headers=keys["editor"]).status_code == 404
    versions = api.get(path + "/history").json()["features"]
    assert [v["properties"]["op"] for v in versions] == ["insert", "update", "update", "delete"]
    assert {v["properties"]["actor"] for v in versions} == {"edit-editor"}
    with db.connect() as conn:
        actions = [r[0] for r in conn.execute(sa.text(
            "SELECT action FROM cim_meta.access_log WHERE principal = 'edit-editor' AND layer_id = 'cameras' "
            "AND (detail->>'id')::bigint = :id ORDER BY id"), {"id": int(path.rsplit("/", 1)[1])})]
    assert actions == ["edit:create", "edit:update", "edit:replace", "edit:delete"]


def test_content_crs_gcj02_and_lat_lon_order(env, db):
    api, keys = env
    gx, gy = wgs84_to_gcj02(LON, LAT)
    gx, gy = float(gx), float(gy)
    assert abs(gx - LON) > 1e-3  # the GCJ-02 offset is hundreds of metres here
    r = _post(api, keys["editor"], _feature("31011201001321900030", gx, gy), **{"Content-Crs": "<urn:cim:crs:gcj02>"})
    assert r.status_code == 201, r.text
    coords = api.get(r.headers["Location"][r.headers["Location"].index("/collections/"):]).json()["geometry"]
    assert coords["coordinates"] == pytest.approx([LON, LAT], abs=2e-6)
    r = _post(api, keys["editor"], _feature("31011201001321900031", LAT, LON),
              **{"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4326>"})
    assert r.status_code == 201, r.text
    coords = api.get(r.headers["Location"][r.headers["Location"].index("/collections/"):]).json()["geometry"]
    assert coords["coordinates"] == pytest.approx([LON, LAT])
    r = _post(api, keys["editor"], _feature("31011201001321900032"), **{"Content-Crs": "EPSG:9999"})
    assert r.status_code == 400 and "Content-Crs" in r.json()["description"]


@pytest.mark.parametrize(("doc", "status", "words"), [
    (_feature(camera_type="tripod"), 422, "camera_type"),
    (_feature(direction_deg=400), 422, "direction_deg"),
    (_feature(device_id="12ab"), 422, "device_id"),
    (_feature(device_id=None), 422, "device_id"),
    (_feature(installed_at="2024-02-30"), 422, "installed_at"),
    (_feature(colour="red"), 400, "colour"),
    ({**_feature(), "geometry": {"type": "LineString", "coordinates": [[LON, LAT], [LON + 0.01, LAT]]}}, 422,
     "geometry"),
    ({**_feature(), "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}}, 422, "geometry"),
    ({**_feature(), "geometry": {"type": "Point", "coordinates": "here"}}, 400, "geometry"),
    ({**_feature(), "geometry": None}, 422, "geometry"),
    ({"type": "FeatureCollection", "features": []}, 400, "Feature"),
    ("not json", 400, "JSON"),
])
def test_bad_edits_name_the_field_and_change_nothing(env, db, doc, status, words):
    api, keys = env
    before = _state(db)
    body = doc if isinstance(doc, str) else json.dumps(doc)
    r = api.post("/collections/cameras/items", content=body, headers=keys["editor"])
    assert r.status_code == status, r.text
    assert words in r.json()["description"]
    assert _state(db) == before


def test_duplicate_key_and_body_bound(env, db):
    api, keys = env
    assert _post(api, keys["editor"], _feature("31011201001321900040")).status_code == 201
    before = _state(db)
    r = _post(api, keys["editor"], _feature("31011201001321900040"))
    assert r.status_code == 422 and "device_id" in r.json()["description"]
    r = _post(api, keys["editor"], _feature("31011201001321900041", owner="x" * 300_000))
    assert r.status_code == 413
    assert _state(db) == before


def _tile_xy(lon, lat, z):
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def test_edit_is_visible_in_a_fresh_tile(env):
    api, keys = env
    r = _post(api, keys["editor"], _feature("31011201001321900050", camera_type="panoramic"))
    path = r.headers["Location"][r.headers["Location"].index("/collections/"):]
    x, y = _tile_xy(LON, LAT, 16)
    tile = f"/collections/cameras/tiles/WebMercatorQuad/16/{x}/{y}"

    def kinds():
        feats = mapbox_vector_tile.decode(api.get(tile).content).get("cameras", {}).get("features", [])
        return {f["properties"]["device_id"]: f["properties"]["camera_type"] for f in feats}

    deadline = time.monotonic() + 5
    while kinds().get("31011201001321900050") != "panoramic" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kinds()["31011201001321900050"] == "panoramic"  # cached now
    assert api.patch(path, content=json.dumps({"type": "Feature", "properties": {"camera_type": "checkpoint"}}),
                     headers=keys["editor"]).status_code == 204
    deadline = time.monotonic() + 5
    while kinds().get("31011201001321900050") != "checkpoint" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kinds()["31011201001321900050"] == "checkpoint"


def test_an_edit_is_in_the_next_tile_request(env):
    """Read your own writes: the tile asked for right after an edit's answer shows it (no wait for the NOTIFY to come
    back through the listener), for a PATCH, a POST and a DELETE, on the collection and the multi-layer tile."""
    api, keys = env
    lon, lat = LON + 0.002, LAT + 0.001
    x, y = _tile_xy(lon, lat, 16)
    tiles = [f"/collections/cameras/tiles/WebMercatorQuad/16/{x}/{y}",
             f"/tiles/WebMercatorQuad/16/{x}/{y}?collections=cameras"]

    def kinds(tile):
        r = api.get(tile)
        feats = mapbox_vector_tile.decode(r.content).get("cameras", {}).get("features", []) if r.content else []
        return {f["properties"]["device_id"]: f["properties"]["camera_type"] for f in feats}

    device = "31011201001321900060"
    for tile in tiles:
        kinds(tile)  # the tile before the edit, in the service's cache
    r = _post(api, keys["editor"], _feature(device, lon=lon, lat=lat, camera_type="bullet"))
    assert r.status_code == 201, r.text
    path = r.headers["Location"][r.headers["Location"].index("/collections/"):]
    assert [kinds(t).get(device) for t in tiles] == ["bullet", "bullet"]
    for kind in ("ptz", "dome", "checkpoint", "panoramic", "bullet", "ptz"):
        r = api.patch(path, content=json.dumps({"type": "Feature", "properties": {"camera_type": kind}}),
                      headers=keys["editor"])
        assert r.status_code == 204, r.text
        assert [kinds(t).get(device) for t in tiles] == [kind, kind]
    assert api.delete(path, headers=keys["editor"]).status_code == 204
    assert [device in kinds(t) for t in tiles] == [False, False]


def test_conformance_lists_part_4(env):
    api, _ = env
    classes = api.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete" in classes
