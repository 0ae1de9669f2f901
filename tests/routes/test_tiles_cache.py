"""Tile cache: hits and misses, ETag/304, invalidation after an ingest, listener reconnect, CIM_TILE_CACHE=off."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from shapely.geometry import Point

from cim_service.app import create_app
from cim_service.core.settings import Settings
from cim_service.metrics import REGISTRY
from cim_service.store.layer_state import bump_version
from cim_service.tiles.cache import CachedTile, TileCache
from cim_service.tiles.fastpath import CachedTileFastPath
from pipelines.load import load_geodataframe

WMQ = morecantile.tms.get("WebMercatorQuad")
#: a separate area from test_tiles.py, so changes made here do not touch its tiles
CENTER = (121.455, 31.055)
TILE = WMQ.tile(*CENTER, 15)
PATH = f"/collections/cameras/tiles/WebMercatorQuad/15/{TILE.x}/{TILE.y}"
#: device ids ingested by the tests, removed at the end
INGESTED: list[str] = []


def _counter(name: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total") or 0.0


def _ids(content: bytes) -> dict[int, dict]:
    if not content:
        return {}
    return {f["id"]: f["properties"] for f in mapbox_vector_tile.decode(content)["cameras"]["features"]}


@pytest.fixture(scope="module")
def cameras(demo_database_url, engine, catalog) -> Iterator[list[int]]:
    """Twenty cameras of our own in a corner of the demo; they and anything ingested here are removed after."""
    spec = catalog.get("cameras")
    with engine.begin() as conn:
        ids = conn.execute(sa.text(
            "INSERT INTO cim.cameras (feature_key, device_id, camera_type, geom) "
            "SELECT 'cachetest-' || g, (31011200001390000000 + g)::text, 'dome', "
            "ST_SetSRID(ST_MakePoint(:x + g * 0.0001, :y), 4326) FROM generate_series(1, 20) g RETURNING id"),
            {"x": CENTER[0] - 0.001, "y": CENTER[1]}).scalars().all()
        bump_version(conn, "cameras", spec.qualified_table)
    yield ids
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cim.cameras WHERE feature_key LIKE 'cachetest-%' OR device_id = ANY(:d)"),
                     {"d": INGESTED})
        conn.execute(sa.text("DELETE FROM cim_meta.ingest_batch WHERE file_name = 'cache-test.csv'"))
        bump_version(conn, "cameras", spec.qualified_table)


@pytest.fixture(scope="module")
def client(settings, cameras):
    with TestClient(create_app(settings)) as c:
        yield c


def _poll(client, path: str, until, seconds: float = 3.0):
    deadline = time.monotonic() + seconds
    while True:
        r = client.get(path)
        if until(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.02)


def test_hits_misses_etag_and_304(client, cameras):
    misses, hits = _counter("cim_tile_cache_misses"), _counter("cim_tile_cache_hits")
    first = client.get(PATH + "?properties=camera_type")
    assert first.status_code == 200 and set(cameras) <= set(_ids(first.content))
    assert _counter("cim_tile_cache_misses") == misses + 1
    second = client.get(PATH + "?properties=camera_type")
    assert _counter("cim_tile_cache_hits") == hits + 1 and second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=60"
    r304 = client.get(PATH + "?properties=camera_type", headers={"If-None-Match": first.headers["etag"]})
    assert r304.status_code == 304 and not r304.content
    other = client.get(PATH + "?properties=camera_type", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_multi_layer_reuses_layer_cache(client):
    client.get(PATH)
    client.get(PATH.replace("cameras", "towns"))
    misses, hits = _counter("cim_tile_cache_misses"), _counter("cim_tile_cache_hits")
    r = client.get(f"/tiles/WebMercatorQuad/15/{TILE.x}/{TILE.y}?collections=cameras,towns")
    assert r.status_code == 200
    assert _counter("cim_tile_cache_hits") == hits + 2 and _counter("cim_tile_cache_misses") == misses


def test_no_stale_tile_after_ingest(client, engine, catalog):
    before = _ids(client.get(PATH).content)
    assert _ids(client.get(PATH).content) == before  # cached now
    device = f"{31011200001399000000 + int(uuid.uuid4().int % 1000)}"
    INGESTED.append(device)
    gdf = gpd.GeoDataFrame({"device_id": [device], "camera_type": ["ptz"]},
                           geometry=[Point(CENTER[0] + 0.0005, CENTER[1] + 0.0003)], crs="EPSG:4326")
    result = load_geodataframe(engine, catalog.get("cameras"), gdf, source_name="cache-test.csv",
                               source_sha256=uuid.uuid4().hex, source_crs="wgs84")
    assert result.status == "committed"
    start = time.monotonic()
    after = _poll(client, PATH, lambda r: _ids(r.content).keys() != before.keys())
    assert time.monotonic() - start < 3.0
    added = set(_ids(after.content)) - set(before)
    assert len(added) == 1 and _ids(after.content)[added.pop()]["device_id"] == device


def test_sql_update_with_bump_invalidates(client, engine, catalog, cameras):
    target = cameras[0]
    assert _ids(client.get(PATH).content)[target]["camera_type"] == "dome"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cim.cameras SET camera_type = 'checkpoint' WHERE id = :i"), {"i": target})
        bump_version(conn, "cameras", catalog.get("cameras").qualified_table)
    r = _poll(client, PATH, lambda r: _ids(r.content)[target]["camera_type"] == "checkpoint")
    assert _ids(r.content)[target]["camera_type"] == "checkpoint"


def test_listener_reconnects_after_drop(client, engine, catalog, cameras):
    state = client.app.state.tiles
    old_pid = state.listener.server_pid
    assert state.versions.live and old_pid
    client.get(PATH)
    assert len(state.cache) > 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": old_pid}).scalar_one()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (state.versions.live and state.listener.server_pid != old_pid):
        time.sleep(0.05)
    assert state.versions.live and state.listener.server_pid != old_pid
    assert len(state.cache) == 0  # cleared on reconnect: changes while disconnected are unknown
    client.get(PATH)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cim.cameras SET camera_type = 'bullet' WHERE id = :i"), {"i": cameras[1]})
        bump_version(conn, "cameras", catalog.get("cameras").qualified_table)
    r = _poll(client, PATH, lambda r: _ids(r.content)[cameras[1]]["camera_type"] == "bullet")
    assert _ids(r.content)[cameras[1]]["camera_type"] == "bullet"


def test_cache_off(settings, engine, cameras, monkeypatch):
    monkeypatch.setenv("CIM_TILE_CACHE", "off")
    off = Settings(database_url=settings.database_url, environment="test", home=settings.home)
    assert off.tile_cache is False
    with TestClient(create_app(off)) as c:
        assert c.app.state.tiles.cache is None and c.app.state.tiles.listener is None
        hits = _counter("cim_tile_cache_hits")
        assert _ids(c.get(PATH).content)
        with engine.begin() as conn:  # deliberately NO version bump: only an uncached service sees it
            conn.execute(sa.text("UPDATE cim.cameras SET direction_deg = 123 WHERE id = :i"), {"i": cameras[2]})
        assert _ids(c.get(PATH).content)[cameras[2]]["direction_deg"] == 123
        assert _counter("cim_tile_cache_hits") == hits


def test_lru_is_bounded_by_bytes():
    cache = TileCache(max_bytes=3 * (1000 + 256))
    for i in range(5):
        cache.put(i, CachedTile.of(bytes(1000)))
        assert cache.size_bytes <= cache.max_bytes
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) is not None
    cache.get(2)
    cache.put(5, CachedTile.of(bytes(1000)))
    assert cache.get(2) is not None and cache.get(3) is None  # 2 was used recently, 3 was the oldest
    cache.put("huge", CachedTile.of(bytes(10_000)))
    assert cache.get("huge") is None and len(cache) == 3


def _through_fast_path(client, path: str, query: bytes = b"", headers: list | None = None) -> tuple[bool, int]:
    """Send one request through the fast path alone, on the app's own event loop (its database pool's); tell
    whether it passed the request on, and the status."""
    passed, status = [], []

    async def inner(scope, receive, send):
        passed.append(scope["path"])

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
             "headers": headers or [], "app": client.app, "scheme": "http", "server": ("testserver", 80),
             "root_path": "", "http_version": "1.1"}
    client.portal.call(CachedTileFastPath(inner), scope, receive, send)
    return bool(passed), (status or [0])[0]


def test_fast_path_serves_only_anonymous_public_tiles(client, engine, monkeypatch):
    via_route = client.get(PATH)  # fills the cache (or hits it)
    hits = _counter("cim_tile_cache_hits")
    again = client.get(PATH)
    assert again.content == via_route.content and again.headers["etag"] == via_route.headers["etag"]
    assert again.headers["cache-control"] == "public, max-age=60"
    assert again.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert _counter("cim_tile_cache_hits") == hits + 1
    label = {"method": "GET", "route": "/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
             "status": "304"}
    before = REGISTRY.get_sample_value("cim_http_request_duration_seconds_count", label) or 0
    assert client.get(PATH, headers={"If-None-Match": again.headers["etag"]}).status_code == 304
    assert REGISTRY.get_sample_value("cim_http_request_duration_seconds_count", label) == before + 1

    assert _through_fast_path(client, PATH) == (False, 200)  # answered from the cache, the app not called
    plain = client.get(PATH, headers={"Accept-Encoding": "identity"})  # the fast path below sends no coding
    assert "content-encoding" not in plain.headers and plain.headers["etag"] != again.headers["etag"]
    assert _through_fast_path(client, PATH, headers=[(b"if-none-match", plain.headers["etag"].encode())]) \
        == (False, 304)
    assert _through_fast_path(client, PATH, headers=[(b"if-none-match", again.headers["etag"].encode())]) \
        == (False, 200)
    assert _through_fast_path(client, PATH, headers=[(b"if-none-match", again.headers["etag"].encode()),
                                                     (b"accept-encoding", b"gzip, br")]) == (False, 304)
    assert _through_fast_path(client, PATH, b"properties=camera_type")[0]  # parameters: the route decides
    assert _through_fast_path(client, PATH, headers=[(b"x-api-key", b"whatever")])[0]  # credentials: the route
    assert _through_fast_path(client, PATH.replace("cameras", "people"))[0]  # restricted layer: never here
    assert _through_fast_path(client, PATH.replace("/15/", "/40/"))[0]  # invalid tile: the route answers 404

    # a miss is rendered here too (and cached), with the same bytes and tag as the route's answer
    miss = f"/collections/cameras/tiles/WebMercatorQuad/15/{TILE.x + 1}/{TILE.y}"
    misses = _counter("cim_tile_cache_misses")
    assert _through_fast_path(client, miss, headers=[(b"accept-encoding", b"gzip")])[0] is False
    assert _counter("cim_tile_cache_misses") == misses + 1
    routed = client.get(miss, params={"f": "mvt"}, headers={"Accept-Encoding": "gzip"})  # a parameter: the route
    fast = client.get(miss, headers={"Accept-Encoding": "gzip"})
    assert fast.status_code == routed.status_code and fast.content == routed.content
    assert fast.headers["etag"] == routed.headers["etag"]

    # a rendering that fails is handed to the route, which renders it again and maps the error to its status
    async def failing(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(client.app.state.tiles, "tile", failing)
    assert _through_fast_path(client, f"/collections/cameras/tiles/WebMercatorQuad/15/{TILE.x + 2}/{TILE.y}")[0]


def test_fast_path_responses_carry_cors_headers(settings, cameras):
    with TestClient(create_app(settings.model_copy(update={"cors_origins": ["http://map.example"]}))) as c:
        c.get(PATH)
        hit = c.get(PATH, headers={"Origin": "http://map.example"})
        assert hit.status_code == 200
        assert hit.headers["access-control-allow-origin"] == "http://map.example"
        assert "ETag" in hit.headers["access-control-expose-headers"]


def test_versions_reload_replaces_and_keeps_newer_notifications():
    from cim_service.store.versions import LayerVersions

    class FakeConn:
        def __init__(self, versions):
            self.rows, self.during = [{"layer_id": k, "version": v} for k, v in versions.items()], None

        async def fetch(self, _sql):
            if self.during:
                self.during()  # a notification delivered while the query runs
            return self.rows

    v = LayerVersions()
    v.apply_notification("cameras:9")
    v.apply_notification("cameras:3")  # out of order: ignored
    v.apply_notification("garbage")  # malformed: ignored
    assert v.get("cameras") == 9
    asyncio.run(v.reload(FakeConn({"cameras": 2, "towns": 1})))  # restored database: versions went down
    assert v.get("cameras") == 2 and v.get("towns") == 1
    conn = FakeConn({"cameras": 2, "towns": 1})
    conn.during = lambda: v.apply_notification("towns:5")
    asyncio.run(v.reload(conn))
    assert v.get("towns") == 5 and v.get("cameras") == 2
