"""Compression: gzip and Brotli by Accept-Encoding for JSON, CSV, HTML, tiles and static files; ETags per
coding and their 304s; cached tiles keep their compressed bytes; HEAD; what is never compressed."""

from __future__ import annotations

import gzip

import brotli
import mapbox_vector_tile
import morecantile
import orjson
import pytest
from fastapi.testclient import TestClient

from cim_service import encoding
from cim_service.app import create_app
from cim_service.metrics import REGISTRY

from .conftest import AREA

ITEMS = "/collections/cameras/items?limit=200"
WMQ = morecantile.tms.get("WebMercatorQuad")
_TILE = WMQ.tile((AREA[0] + AREA[2]) / 2, (AREA[1] + AREA[3]) / 2, 14)
TILE = f"/collections/cameras/tiles/WebMercatorQuad/14/{_TILE.x}/{_TILE.y}"
DECODE = {"gzip": gzip.decompress, "br": brotli.decompress, "identity": lambda b: b}


def raw(client: TestClient, path: str, coding: str | None, method: str = "GET", **headers: str):
    """Status, headers and the bytes on the wire (not decoded) of a request sending ``Accept-Encoding``."""
    sent = {"Accept-Encoding": coding or "identity", **{k.replace("_", "-"): v for k, v in headers.items()}}
    with client.stream(method, path, headers=sent) as r:
        return r.status_code, r.headers, b"".join(r.iter_raw())


@pytest.fixture(scope="module")
def web(settings, features_data):
    with TestClient(create_app(settings)) as client:
        yield client


def _without_timestamp(body: bytes) -> dict:
    doc = orjson.loads(body)
    doc.pop("timeStamp", None)
    return doc


@pytest.mark.parametrize("coding", ["br", "gzip"])
def test_items_page_is_compressed_in_the_accepted_coding(web, coding):
    status, plain_headers, plain = raw(web, ITEMS, None)
    assert status == 200 and "content-encoding" not in plain_headers
    assert "accept-encoding" in plain_headers["vary"].lower()
    status, headers, wire = raw(web, ITEMS, f"{coding}, deflate")
    assert status == 200 and headers["content-encoding"] == coding
    assert "accept-encoding" in headers["vary"].lower()
    assert int(headers["content-length"]) == len(wire) < len(plain) / 3
    assert _without_timestamp(DECODE[coding](wire)) == _without_timestamp(plain)
    assert headers["content-type"].startswith("application/geo+json")


def test_preference_and_q_values():
    assert encoding.negotiate("gzip, deflate, br") == "br"
    assert encoding.negotiate("br;q=0.5, gzip") == "gzip"
    assert encoding.negotiate("br;q=0, gzip;q=0") == "identity"
    assert encoding.negotiate("*") == "br"
    assert encoding.negotiate("*;q=0.1, br;q=0") == "gzip"
    assert encoding.negotiate("deflate") == "identity"
    assert encoding.negotiate(None) == "identity"
    assert encoding.negotiate("gzip;q=bogus, br") == "br"


def test_etags_differ_per_coding_and_304_names_the_held_coding(web):
    tags = {}
    for coding in ("identity", "gzip", "br"):
        status, headers, _ = raw(web, ITEMS, coding)
        assert status == 200
        tags[coding] = headers["etag"]
    assert len(set(tags.values())) == 3
    assert tags["gzip"] == encoding.coded_etag(tags["identity"], "gzip")
    for coding, tag in tags.items():
        status, headers, body = raw(web, ITEMS, coding, If_None_Match=tag)
        assert status == 304 and body == b"" and headers["etag"] == tag
    status, _, _ = raw(web, ITEMS, "br", If_None_Match='"something-else-br"')
    assert status == 200


def test_csv_and_html_are_compressed(web):
    status, headers, wire = raw(web, ITEMS + "&f=csv", "gzip")
    assert status == 200 and headers["content-encoding"] == "gzip"
    text = gzip.decompress(wire).decode("utf-8-sig")
    assert text.startswith("id,") and "\r\n" in text
    status, headers, wire = raw(web, ITEMS + "&f=html", "br")
    assert status == 200 and headers["content-encoding"] == "br"
    assert b"<html" in brotli.decompress(wire).lower()


def test_short_bodies_are_sent_as_they_are_with_vary(web):
    status, headers, body = raw(web, "/collections/cameras/items/999999999", "br")
    assert status == 404 and "content-encoding" not in headers
    assert orjson.loads(body)["code"] == "NotFound"
    status, headers, body = raw(web, "/healthz", "br")
    assert "content-encoding" not in headers and len(body) < encoding.MIN_BYTES


def test_streamed_static_file_is_compressed(web):
    status, page_headers, page = raw(web, "/api.html", None)
    script = next(p for p in page.decode().split('"') if p.endswith("swagger-ui-bundle.js"))
    status, plain_headers, plain = raw(web, script, None)
    status, headers, wire = raw(web, script, "gzip")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(wire) == plain and len(wire) < len(plain) / 2


def test_head_reports_the_coded_length_without_a_body(web):
    _, headers, wire = raw(web, ITEMS, "gzip")
    status, head_headers, body = raw(web, ITEMS, "gzip", method="HEAD")
    assert status == 200 and body == b""
    assert head_headers["content-encoding"] == "gzip"
    assert head_headers["etag"] == headers["etag"]


def _hits() -> float:
    return REGISTRY.get_sample_value("cim_tile_cache_hits_total") or 0.0


@pytest.mark.parametrize("coding", ["br", "gzip"])
def test_cached_tiles_keep_their_compressed_bytes(settings, features_data, coding):
    with TestClient(create_app(settings)) as client:
        status, plain_headers, plain = raw(client, TILE, None)
        assert status == 200 and "content-encoding" not in plain_headers
        assert "accept-encoding" in plain_headers["vary"].lower()
        hits = _hits()
        status, headers, wire = raw(client, TILE, coding)  # identity cached; this coding made now, once
        assert status == 200 and headers["content-encoding"] == coding
        assert DECODE[coding](wire) == plain and len(wire) < len(plain)
        assert headers["etag"] == encoding.coded_etag(plain_headers["etag"], coding)
        entries = [t for t in client.app.state.tiles.cache._entries.values() if t.content == plain]
        assert len(entries) == 1 and entries[0].coded[coding] == wire
        status, again_headers, again = raw(client, TILE, coding)  # now the fast path: same bytes
        assert again == wire and again_headers["etag"] == headers["etag"]
        assert _hits() >= hits + 2
        status, _, body = raw(client, TILE, coding, If_None_Match=headers["etag"])
        assert status == 304 and body == b""
        status, _, _ = raw(client, TILE, None, If_None_Match=headers["etag"])
        assert status == 200  # the identity representation has another tag
        features = mapbox_vector_tile.decode(DECODE[coding](wire))["cameras"]["features"]
        assert features


def test_cache_counts_compressed_bytes_in_its_bound():
    from cim_service.tiles.cache import ENTRY_OVERHEAD, CachedTile, TileCache

    cache = TileCache(10_000)
    tile = CachedTile.of(b"x" * 3000)
    cache.put("a", tile)
    assert cache.size_bytes == 3000 + ENTRY_OVERHEAD
    cache.add_coding("a", tile, "gzip", encoding.compress(tile.content, "gzip"))
    assert cache.size_bytes == 3000 + ENTRY_OVERHEAD + len(tile.coded["gzip"])
    other = CachedTile.of(b"y" * 6000)
    cache.put("b", other)
    cache.add_coding("b", other, "br", b"z" * 2000)  # over the bound: the least recently used entry goes
    assert cache.get("a") is None and cache.get("b") is other
    assert cache.size_bytes == 8000 + ENTRY_OVERHEAD


def test_png_and_errors_from_the_edge_are_not_compressed(web):
    status, headers, _ = raw(web, "/api-static/favicon-32x32.png", "br")
    assert status == 200 and "content-encoding" not in headers


def test_single_item_etag_and_304(web):
    fid = web.get("/collections/cameras/items", params={"limit": 1}).json()["features"][0]["id"]
    path = f"/collections/cameras/items/{fid}"
    status, headers, body = raw(web, path, None)
    assert status == 200 and headers["etag"].startswith('"')
    status, again, body = raw(web, path, None, If_None_Match=headers["etag"])
    assert status == 304 and body == b"" and again["etag"] == headers["etag"]
    assert again["content-crs"] == headers["content-crs"]
    status, _, _ = raw(web, path + "?crs=http://www.opengis.net/def/crs/EPSG/0/3857", None,
                       If_None_Match=headers["etag"])
    assert status == 200  # another representation of the feature


def test_cors_origins_setting():
    from cim_service.core.settings import Settings

    assert Settings(cors_origins="off").cors_origins == []
    assert Settings(cors_origins="https://a.example, http://b.example:8080").cors_origins == [
        "https://a.example", "http://b.example:8080"]
    with pytest.raises(ValueError, match="CIM_CORS_ORIGINS"):
        Settings(cors_origins="https://a.example/path")


@pytest.mark.parametrize("coding", ["br", "gzip"])
def test_uncached_tiles_are_compressed_at_the_fast_level(settings, features_data, coding):
    """With the cache off a tile is compressed for one response at the fast level (decoding to the same MVT),
    while a cached tile keeps the stored level's bytes."""
    off = settings.model_copy(update={"tile_cache": False})
    with TestClient(create_app(off)) as client:
        assert client.app.state.tiles.cache is None
        status, plain_headers, plain = raw(client, TILE, None)
        assert status == 200 and len(plain) >= encoding.MIN_BYTES
        for path in (TILE, TILE + "?f=mvt"):  # the fast path before routing, and the route
            status, headers, wire = raw(client, path, coding)
            assert status == 200 and headers["content-encoding"] == coding
            assert DECODE[coding](wire) == plain
            assert wire == encoding.compress_fast(plain, coding)
            assert headers["etag"] == encoding.coded_etag(plain_headers["etag"], coding)
    with TestClient(create_app(settings)) as client:
        raw(client, TILE, None)
        status, headers, wire = raw(client, TILE, coding)
        assert status == 200 and wire == encoding.compress(plain, coding)
