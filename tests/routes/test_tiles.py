"""Vector tiles: tiles decoded and compared with the database, thinning, multi-layer, access, errors."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import create_api_key
from cim_service.store.layer_state import bump_version
from cim_service.tiles.mvt import THIN_BELOW_ZOOM, THIN_GRID

WMQ = morecantile.tms.get("WebMercatorQuad")
#: the test area (WGS84): a few km² of Minhang around Xinzhuang
AREA = (121.380, 31.100, 121.400, 31.115)
N_CAMERAS = 400


def _insert_cameras(conn: sa.Connection, n: int, bbox: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lon = rng.uniform(bbox[0], bbox[2], n)
    lat = rng.uniform(bbox[1], bbox[3], n)
    types = ["bullet", "dome", "ptz", "checkpoint", "panoramic"]
    rows = [{"k": f"tiletest-{seed}-{i}", "d": f"{31011200001320000000 + seed * 10_000 + i}",
             "t": types[i % 5], "dir": float(i % 360), "at": f"2023-0{1 + i % 9}-15",
             "x": float(lon[i]), "y": float(lat[i])} for i in range(n)]
    conn.execute(sa.text(
        "INSERT INTO cim.cameras (feature_key, device_id, camera_type, direction_deg, installed_at, geom) "
        "VALUES (:k, :d, :t, :dir, CAST(:at AS date), ST_SetSRID(ST_MakePoint(:x, :y), 4326))"), rows)


@pytest.fixture(scope="module")
def tile_data(demo_database_url, engine, catalog) -> Iterator[None]:
    """Cameras, a town polygon, a road and residents in the test area, on top of the small demo; removed after."""
    with engine.begin() as conn:
        _insert_cameras(conn, N_CAMERAS, AREA, seed=1)
        conn.execute(sa.text(
            "INSERT INTO cim.towns (feature_key, name, code, geom) VALUES ('tiletest-town', '测试镇', '310112999', "
            "ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(121.39, 31.107), 4326), 0.01, 64)))"))
        conn.execute(sa.text(
            "INSERT INTO cim.main_roads (feature_key, road_id, name, grade, geom) VALUES ('tiletest-road', 'R1', "
            "'测试路', 'arterial', ST_Multi(ST_GeomFromText('LINESTRING(121.37 31.105, 121.41 31.108)', 4326)))"))
        conn.execute(sa.text(
            "INSERT INTO cim.people (feature_key, person_id, address_code, name, id_number, phone, gender, geom) "
            "SELECT 'tiletest-p' || g, 'P' || g, 'a000000001', '张三' || g, '31011219800101123X', '13800000000', 'M', "
            "ST_SetSRID(ST_MakePoint(121.385 + g * 0.0005, 31.105), 4326) FROM generate_series(1, 5) g"))
        for layer in ("cameras", "towns", "main_roads", "people"):
            bump_version(conn, layer, catalog.get(layer).qualified_table)
    yield
    with engine.begin() as conn:  # leave the demo as it was for the other test modules
        for layer in ("cameras", "towns", "main_roads", "people"):
            spec = catalog.get(layer)
            conn.execute(sa.text(f"DELETE FROM {spec.qualified_table} WHERE feature_key LIKE 'tiletest-%'"))
            bump_version(conn, layer, spec.qualified_table)


@pytest.fixture(scope="module")
def client(settings, tile_data):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def officer_key(engine) -> str:
    return create_api_key(engine, f"tiles-officer-{uuid.uuid4().hex[:6]}", "officer")


def tiles_of(bbox: tuple, z: int) -> list[morecantile.Tile]:
    return list(WMQ.tiles(*bbox, zooms=[z]))


def decode(content: bytes) -> dict:
    return mapbox_vector_tile.decode(content) if content else {}


def get_tile(client, path: str, **kw):
    r = client.get(path, **kw)
    assert r.status_code in (200, 204), r.text
    if r.status_code == 200:
        assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return r


def db_ids(engine, table: str, tile: morecantile.Tile, buffer_units: int = 0) -> set[int]:
    b = WMQ.xy_bounds(tile)
    margin = (b.right - b.left) * buffer_units / 4096
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT id FROM cim."{table}" WHERE ST_Intersects(geom_3857, '
            "ST_Expand(ST_MakeEnvelope(:a, :b, :c, :d, 3857), :m))"),
            {"a": b.left, "b": b.bottom, "c": b.right, "d": b.top, "m": margin}).scalars()
        return set(rows)


def layer_ids(content: bytes, layer: str) -> set[int]:
    return {f["id"] for f in decode(content).get(layer, {}).get("features", [])}


def test_tile_matrix_sets(client):
    r = client.get("/tileMatrixSets")
    assert r.status_code == 200
    ids = [t["id"] for t in r.json()["tileMatrixSets"]]
    assert ids == ["WebMercatorQuad", "WorldCRS84Quad"]
    d = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert d["id"] == "WebMercatorQuad" and len(d["tileMatrices"]) == 25
    assert client.get("/tileMatrixSets/Nope").status_code == 404


def test_z14_tiles_match_database(client, engine):
    tiles = tiles_of(AREA, 14)
    assert len(tiles) >= 2
    union: set[int] = set()
    for t in tiles:
        ids = layer_ids(get_tile(client, f"/collections/cameras/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}").content,
                        "cameras")
        inside, buffered = db_ids(engine, "cameras", t), db_ids(engine, "cameras", t, 64)
        assert inside <= ids <= buffered
        union |= ids
    with engine.connect() as conn:
        in_area = set(conn.execute(sa.text(
            "SELECT id FROM cim.cameras WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
            dict(zip("abcd", AREA, strict=True))).scalars())
    assert len(in_area) >= N_CAMERAS and in_area <= union


def test_tile_properties_equal_database_row(client, engine):
    t = tiles_of(AREA, 14)[0]
    feats = decode(client.get(f"/collections/cameras/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}").content)
    feature = feats["cameras"]["features"][0]
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT device_id, camera_type, direction_deg, installed_at::text AS installed_at "
            "FROM cim.cameras WHERE id = :i"), {"i": feature["id"]}).mappings().one()
    props = feature["properties"]
    assert props["count"] == 1
    for name in ("device_id", "camera_type", "direction_deg", "installed_at"):
        if row[name] is not None:
            assert props[name] == row[name]
    assert "feature_key" not in props and "batch_id" not in props


def test_world_crs84_tiles_hold_the_same_points(client, engine):
    tms = morecantile.tms.get("WorldCRS84Quad")
    got: set[int] = set()
    for t in tms.tiles(*AREA, zooms=[14]):
        got |= layer_ids(get_tile(client, f"/collections/cameras/tiles/WorldCRS84Quad/14/{t.x}/{t.y}").content,
                         "cameras")
    with engine.connect() as conn:
        in_area = set(conn.execute(sa.text(
            "SELECT id FROM cim.cameras WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
            dict(zip("abcd", AREA, strict=True))).scalars())
    assert in_area <= got


def test_low_zoom_points_thinned_with_exact_counts(client, engine):
    z = THIN_BELOW_ZOOM - 3
    t = tiles_of(AREA, z)[0]
    feats = decode(client.get(f"/collections/cameras/tiles/WebMercatorQuad/{z}/{t.x}/{t.y}").content)
    got = {(f["id"], f["properties"]["count"]) for f in feats["cameras"]["features"]}
    # expected, computed here from raw coordinates: one feature per grid cell (tile + 64-unit buffer),
    # the smallest id of the cell, with the number of points in the cell
    b = WMQ.xy_bounds(t)
    cell = (b.right - b.left) / THIN_GRID
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, ST_X(geom_3857), ST_Y(geom_3857) FROM cim.cameras "
            "WHERE geom_3857 && ST_Expand(ST_MakeEnvelope(:a, :b, :c, :d, 3857), :m)"),
            {"a": b.left, "b": b.bottom, "c": b.right, "d": b.top, "m": (b.right - b.left) * 64 / 4096}).all()
    cells: dict[tuple[int, int], list[int]] = {}
    for i, x, y in rows:
        cells.setdefault((math.floor((x - b.left) / cell), math.floor((y - b.bottom) / cell)), []).append(i)
    assert got == {(min(ids), len(ids)) for ids in cells.values()}
    assert sum(c for _, c in got) == len(rows) >= N_CAMERAS
    assert len(got) < len(rows) and max(c for _, c in got) > 1  # really thinned


def test_polygons_and_lines(client, engine):
    t = tiles_of(AREA, 13)[0]
    for layer in ("towns", "main_roads"):
        ids = layer_ids(get_tile(client, f"/collections/{layer}/tiles/WebMercatorQuad/13/{t.x}/{t.y}").content,
                        layer)
        assert db_ids(engine, layer, t) <= ids <= db_ids(engine, layer, t, 64)
        assert ids


def test_multi_layer_tile(client):
    t = WMQ.tile(121.39, 31.1065, 14)  # on the road, in the town, among the cameras
    r = get_tile(client, f"/tiles/WebMercatorQuad/14/{t.x}/{t.y}?collections=cameras,towns,main_roads")
    layers = decode(r.content)
    assert set(layers) == {"cameras", "towns", "main_roads"}
    single = client.get(f"/collections/cameras/tiles/WebMercatorQuad/14/{t.x}/{t.y}").content
    assert layer_ids(r.content, "cameras") == layer_ids(single, "cameras")
    default = decode(client.get(f"/tiles/WebMercatorQuad/14/{t.x}/{t.y}").content)
    assert "cameras" in default and "people" not in default  # anonymous: public layers only
    assert client.get(f"/tiles/WebMercatorQuad/14/{t.x}/{t.y}?collections=cameras,nope").status_code == 404
    no_filter = client.get(f"/tiles/WebMercatorQuad/14/{t.x}/{t.y}?collections=cameras&filter=camera_type='ptz'")
    assert no_filter.status_code == 400 and "filter" in no_filter.json()["description"]


def test_properties_selection(client):
    t = tiles_of(AREA, 14)[0]
    r = get_tile(client, f"/collections/cameras/tiles/WebMercatorQuad/14/{t.x}/{t.y}?properties=camera_type")
    props = decode(r.content)["cameras"]["features"][0]["properties"]
    assert set(props) == {"camera_type", "count"}
    bad = client.get(f"/collections/cameras/tiles/WebMercatorQuad/14/{t.x}/{t.y}?properties=nope")
    assert bad.status_code == 400 and "nope" in bad.json()["description"]


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/collections/cameras/tiles/WebMercatorQuad/40/0/0", 404, "zoom"),
    ("/collections/cameras/tiles/WebMercatorQuad/3/8/0", 404, "x=8"),
    ("/collections/cameras/tiles/WebMercatorQuad/3/0/-1", 404, "y=-1"),
    ("/collections/cameras/tiles/NoSuchTMS/3/0/0", 404, "NoSuchTMS"),
    ("/collections/cameras/tiles/WebMercatorQuad/a/0/0", 400, "z"),
    ("/collections/cameras/tiles/WebMercatorQuad/3/0/0?f=png", 400, "'f'"),
    ("/collections/nope/tiles/WebMercatorQuad/3/0/0", 404, "nope"),
    ("/tiles/WebMercatorQuad/40/0/0", 404, "zoom"),
])
def test_bad_requests(client, path, status, words):
    r = client.get(path)
    assert r.status_code == status
    body = r.json()
    assert words in body["description"] and "select" not in body["description"].lower()


def test_empty_tile_is_204(client):
    r = client.get("/collections/cameras/tiles/WebMercatorQuad/14/0/0")
    assert r.status_code == 204 and not r.content and r.headers["etag"]


def test_restricted_layer_and_personal_fields(client, engine, officer_key):
    t = tiles_of(AREA, 14)
    path = next(f"/collections/people/tiles/WebMercatorQuad/14/{x.x}/{x.y}" for x in t
                if db_ids(engine, "people", x))
    assert client.get(path).status_code == 404
    assert client.get(path.replace("/collections/people/tiles", "/tiles") + "?collections=people").status_code == 404
    analyst = create_api_key(engine, f"tiles-analyst-{uuid.uuid4().hex[:6]}", "analyst")
    assert client.get(path, headers={"X-API-Key": analyst}).status_code == 404
    r = client.get(path, headers={"X-API-Key": officer_key})
    assert r.status_code == 200 and r.headers["cache-control"] == "private, no-store"
    props = decode(r.content)["people"]["features"][0]["properties"]
    assert {"name", "id_number", "phone"} <= set(props)
    with engine.connect() as conn:
        n = conn.execute(sa.text(
            "SELECT count(*) FROM cim_meta.access_log WHERE layer_id = 'people' AND action = 'tile' "
            "AND 'id_number' = ANY(fields)")).scalar_one()
    assert n >= 1


def test_personal_fields_need_scope(client, engine, officer_key, catalog, settings):
    """A role with `restricted` but without `personal_data` would not see personal fields: checked via the helper."""
    from cim_service.auth import Principal
    from cim_service.tiles.params import select_fields

    spec = catalog.get("people")
    no_personal = Principal("x", "custom", frozenset({"internal", "restricted"}))
    fields = select_fields(spec, no_personal, None)
    assert not set(fields) & {"name", "id_number", "phone"} and "gender" in fields
    with pytest.raises(Exception, match="unknown property 'id_number'"):
        select_fields(spec, no_personal, "gender,id_number")


def test_tilejson_and_tileset_metadata(client, officer_key):
    tj = client.get("/collections/cameras/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].endswith("/collections/cameras/tiles/WebMercatorQuad/{z}/{x}/{y}")
    assert tj["vector_layers"][0]["id"] == "cameras"
    assert tj["vector_layers"][0]["fields"]["camera_type"] == "String"
    people = client.get("/collections/people/tiles/WebMercatorQuad/tilejson.json",
                        headers={"X-API-Key": officer_key})
    assert "id_number" in people.json()["vector_layers"][0]["fields"]
    assert client.get("/collections/people/tiles/WebMercatorQuad/tilejson.json").status_code == 404
    meta = client.get("/collections/cameras/tiles/WebMercatorQuad").json()
    assert meta["dataType"] == "vector" and meta["tileMatrixSetURI"].endswith("WebMercatorQuad")
    assert any(link["rel"] == "item" and "{tileMatrix}" in link["href"] for link in meta["links"])
    limits = {lim["tileMatrix"]: lim for lim in meta["tileMatrixSetLimits"]}
    t = tiles_of(AREA, 14)[0]
    assert limits["14"]["minTileCol"] <= t.x <= limits["14"]["maxTileCol"]
    listing = client.get("/collections/cameras/tiles").json()
    assert [s["tileMatrixSetURI"].rsplit("/", 1)[1] for s in listing["tilesets"]] == ["WebMercatorQuad",
                                                                                        "WorldCRS84Quad"]
    dataset = client.get("/tiles/WebMercatorQuad/tilejson.json?collections=cameras,towns").json()
    assert [v["id"] for v in dataset["vector_layers"]] == ["towns", "cameras"] or \
        {v["id"] for v in dataset["vector_layers"]} == {"towns", "cameras"}
    assert client.get("/tiles").status_code == 200
    crs84 = client.get("/collections/cameras/tiles/WorldCRS84Quad/tilejson.json")
    assert crs84.status_code == 404 and "WebMercatorQuad" in crs84.json()["description"]
    assert client.get("/collections/cameras/tiles/WorldCRS84Quad").json()["crs"].endswith("CRS84")


def _db_ids_where(engine, tile: morecantile.Tile, where: str, buffer_units: int) -> set[int]:
    b = WMQ.xy_bounds(tile)
    margin = (b.right - b.left) * buffer_units / 4096
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT id FROM cim.cameras WHERE ST_Intersects(geom_3857, "
            f"ST_Expand(ST_MakeEnvelope(:a, :b, :c, :d, 3857), :m)) AND {where}"),
            {"a": b.left, "b": b.bottom, "c": b.right, "d": b.top, "m": margin}).scalars())


def test_filter_on_tiles(client, engine):
    t = WMQ.tile(121.39, 31.1065, 14)
    base = f"/collections/cameras/tiles/WebMercatorQuad/14/{t.x}/{t.y}"
    text = get_tile(client, base, params={"filter": "camera_type = 'ptz' AND direction_deg < 200"})
    feats = decode(text.content)["cameras"]["features"]
    assert feats and all(f["properties"]["camera_type"] == "ptz" for f in feats)
    ids = {f["id"] for f in feats}
    where = "camera_type = 'ptz' AND direction_deg < 200"
    assert _db_ids_where(engine, t, where, 0) <= ids <= _db_ids_where(engine, t, where, 64)
    cql_json = ('{"op": "and", "args": [{"op": "=", "args": [{"property": "camera_type"}, "ptz"]}, '
                '{"op": "<", "args": [{"property": "direction_deg"}, 200]}]}')
    as_json = get_tile(client, base, params={"filter": cql_json, "filter-lang": "cql2-json"})
    assert layer_ids(as_json.content, "cameras") == ids
    polygon = "POLYGON((121.385 31.1, 121.395 31.1, 121.395 31.11, 121.385 31.11, 121.385 31.1))"
    spatial = get_tile(client, base, params={"filter": f"S_INTERSECTS(geom, {polygon})"})
    sp_where = f"ST_Intersects(geom, ST_GeomFromText('{polygon}', 4326))"
    sp_ids = layer_ids(spatial.content, "cameras")
    assert sp_ids and _db_ids_where(engine, t, sp_where, 0) <= sp_ids <= _db_ids_where(engine, t, sp_where, 64)
    assert layer_ids(get_tile(client, base).content, "cameras") > ids  # unfiltered tile is not the cached filtered one
    for bad, word in (("camera_type = ", "filter"), ("nope = 1", "nope"), ("name = 'x'", "name")):
        r = client.get(base, params={"filter": bad})
        assert r.status_code == 400 and word in r.json()["description"]


def test_discovery_links_and_conformance(client):
    landing = client.get("/").json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"].endswith("/tileMatrixSets")
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"].endswith("/tiles")
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in classes
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets" in classes
    collection = client.get("/collections/cameras").json()
    tiles = next(link["href"] for link in collection["links"] if link["rel"].endswith("tilesets-vector"))
    assert client.get(tiles.replace("http://testserver", "")).status_code == 200
    described = client.get("/api").json()["paths"]
    assert "/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}" in described
