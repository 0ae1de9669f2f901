"""Tile cache: hits and misses, ETag/304, invalidation after an ingest, listener reconnect, CIM_TILE_CACHE=off."""

from __future__ import annotations

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
from cim_service.metrics import REGISTRY
from cim_service.migrate import bump_layer_state
from cim_service.tiles.cache import CachedTile, TileCache
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
        bump_layer_state(conn, "cameras", spec.qualified_table)
    yield ids
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cim.cameras WHERE feature_key LIKE 'cachetest-%' OR device_id = ANY(:d)"),
                     {"d": INGESTED})
        conn.execute(sa.text("DELETE FROM cim_meta.ingest_batch WHERE file_name = 'cache-test.csv'"))
        bump_layer_state(conn, "cameras", spec.qualified_table)


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
        bump_layer_state(conn, "cameras", catalog.get("cameras").qualified_table)
    r = _poll(client, PATH, lambda r: _ids(r.content)[target]["camera_type"] == "checkpoint")
    assert _ids(r.content)[target]["camera_type"] == "checkpoint"


def test_listener_reconnects_after_drop(client, engine, catalog, cameras):
    state = client.app.state.tiles
    old_pid = state.listener.server_pid
    assert state.versions.live and old_pid
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": old_pid}).scalar_one()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (state.versions.live and state.listener.server_pid != old_pid):
        time.sleep(0.05)
    assert state.versions.live and state.listener.server_pid != old_pid
    client.get(PATH)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cim.cameras SET camera_type = 'bullet' WHERE id = :i"), {"i": cameras[1]})
        bump_layer_state(conn, "cameras", catalog.get("cameras").qualified_table)
    r = _poll(client, PATH, lambda r: _ids(r.content)[cameras[1]]["camera_type"] == "bullet")
    assert _ids(r.content)[cameras[1]]["camera_type"] == "bullet"


def test_cache_off(settings, engine, cameras):
    off = settings.model_copy(update={"tile_cache": False})
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
