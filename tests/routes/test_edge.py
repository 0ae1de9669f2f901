"""The edge of the service: links from a trusted origin only, client addresses, HEAD/OPTIONS, request bounds."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from tests.routes.conftest import db_count

#: every kind of document that carries links (features, tiles, TileJSON, rasters, map, indicators, landing)
LINKED = ["/", "/?f=html", "/conformance?f=html", "/collections", "/collections?f=html", "/collections/cameras",
          "/collections/cameras?f=html", "/collections/cameras/queryables", "/collections/cameras/items?limit=3",
          "/collections/cameras/items?limit=3&f=html", "/collections/cameras/items/{fid}",
          "/collections/cameras/items/{fid}?f=html", "/collections/cameras/tiles",
          "/collections/cameras/tiles/WebMercatorQuad", "/collections/cameras/tiles/WebMercatorQuad/tilejson.json",
          "/tiles", "/tiles/WebMercatorQuad", "/tiles/WebMercatorQuad/tilejson.json", "/tileMatrixSets",
          "/rasters", "/map", "/map/config", "/api", "/api.html", "/indicators/gaps?wait=false"]


def _first_id(client: TestClient) -> int:
    """Id of an existing camera (other tests reload the demo, so ids are not fixed)."""
    return client.get("/collections/cameras/items?limit=1").json()["features"][0]["id"]


def _collect(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    out = {}
    fid = _first_id(client)
    for path in (p.format(fid=fid) for p in LINKED):
        r = client.get(path, headers=headers)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        out[path] = r.text + " " + " ".join(f"{k}: {v}" for k, v in r.headers.items())
    return out


def test_an_untrusted_host_header_is_never_echoed_into_links(api):
    bodies = _collect(api, {"Host": "evil.example", "X-Forwarded-Host": "evil2.example",
                            "X-Forwarded-Proto": "https", "Forwarded": "host=evil3.example;proto=https"})
    for path, text in bodies.items():
        assert "evil" not in text, path
    doc = api.get("/collections/cameras", headers={"Host": "evil.example"}).json()
    assert doc["links"][0]["href"].startswith("http://testserver/collections/cameras")


@pytest.fixture(scope="module")
def public_api(settings, features_data) -> Iterator[TestClient]:
    """The service with a configured public base URL under a path prefix."""
    s = settings.model_copy(update={"public_url": "https://cim.example.gov.cn/minhang"})
    with TestClient(create_app(s)) as client:
        yield client


def test_links_come_from_the_configured_public_url(public_api):
    bodies = _collect(public_api, {"Host": "evil.example"})
    for path, text in bodies.items():
        assert "evil" not in text and "testserver" not in text, path
    doc = public_api.get("/collections/cameras/items?limit=2", headers={"Host": "evil.example"}).json()
    hrefs = [link["href"] for link in doc["links"]]
    assert all(h.startswith("https://cim.example.gov.cn/minhang/collections/cameras/items") for h in hrefs), hrefs
    tj = public_api.get("/collections/cameras/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj["tiles"][0].startswith("https://cim.example.gov.cn/minhang/collections/cameras/tiles/")
    landing = public_api.get("/").json()
    assert {link["href"] for link in landing["links"]} >= {"https://cim.example.gov.cn/minhang/collections"}
    # the routes still answer under their own paths (the prefix is stripped by the proxy)
    assert public_api.get(f"/collections/cameras/items/{_first_id(public_api)}").status_code == 200


PROXY = ("10.1.2.3", 40000)


@pytest.fixture(scope="module")
def proxied(settings, features_data) -> Iterator[TestClient]:
    """The service behind a trusted proxy at 10.1.2.3 (the test client connects from that address)."""
    s = settings.model_copy(update={"trusted_proxies": ["10.1.2.3/32"]})
    with TestClient(create_app(s), client=PROXY) as client:
        yield client


def test_trusted_proxy_headers_give_the_public_origin(proxied):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gis.minhang.gov.cn",
               "X-Forwarded-Prefix": "/cim", "Host": "backend:8000"}
    doc = proxied.get("/collections/cameras", headers=headers).json()
    assert doc["links"][0]["href"] == "https://gis.minhang.gov.cn/cim/collections/cameras"
    fwd = proxied.get("/collections/cameras", headers={"Forwarded": 'for=203.0.113.9;proto=https;host="gis.example"'})
    assert fwd.json()["links"][0]["href"] == "https://gis.example/collections/cameras"


def test_proxy_headers_from_an_untrusted_peer_are_ignored(settings, features_data):
    s = settings.model_copy(update={"trusted_proxies": ["10.1.2.3/32"]})
    with TestClient(create_app(s), client=("10.9.9.9", 5000)) as client:
        doc = client.get("/collections/cameras", headers={"X-Forwarded-Host": "evil.example",
                                                          "X-Forwarded-Proto": "https"}).json()
    assert doc["links"][0]["href"].startswith("http://testserver/")


def _last_client(engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT client FROM cim_meta.access_log ORDER BY id DESC LIMIT 1")).scalar()


def test_x_forwarded_for_is_written_to_the_access_log_only_from_a_trusted_proxy(api, proxied, officer, engine):
    before = db_count(engine, "SELECT count(*) FROM cim_meta.access_log")
    r = api.get("/collections/people/items?limit=1", headers={**officer, "X-Forwarded-For": "6.6.6.6"})
    assert r.status_code == 200
    assert db_count(engine, "SELECT count(*) FROM cim_meta.access_log") == before + 1
    assert _last_client(engine) == "testclient"  # the peer, not the header
    r = proxied.get("/collections/people/items?limit=1",
                    headers={**officer, "X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
    assert r.status_code == 200
    assert _last_client(engine) == "203.0.113.7"  # right-most address the trusted proxy saw
    r = proxied.get("/collections/people/items?limit=1", headers={**officer, "Forwarded": "for=198.51.100.4"})
    assert _last_client(engine) == "198.51.100.4"
    r = proxied.get("/collections/people/items?limit=1", headers=officer)
    assert _last_client(engine) == PROXY[0]


def test_trusted_proxies_setting_refuses_a_bad_entry(settings):
    with pytest.raises(ValueError, match="not-an-address"):
        settings.model_validate({**settings.model_dump(), "trusted_proxies": "10.0.0.1,not-an-address"})


# -- HEAD and OPTIONS ------------------------------------------------------------------------------

SAMPLE = {"collectionId": "cameras", "featureId": "1", "tileMatrixSetId": "WebMercatorQuad", "z": "12",
          "x": "3429", "y": "1675", "indicator_id": "camera_density", "name": "deck.js"}


def _get_paths(app) -> list[str]:
    """A concrete URL for every GET route, from the OpenAPI document (it lists the routes of every router)."""
    paths = []
    for template, operations in app.openapi()["paths"].items():
        if "get" not in operations or template.startswith("/rasters/{name}"):
            continue  # raster routes need a raster built by the indicators: covered by the tile tests
        paths.append(re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "x"), template))
    return [*paths, "/api", "/api.html", "/map/static/deck.js", "/map/static/map.css"]


def test_head_on_every_get_route_has_the_get_headers_and_no_body(api):
    SAMPLE["featureId"] = str(_first_id(api))
    paths = _get_paths(api.app)
    assert len(paths) >= 25
    for path in paths:
        if path.startswith("/indicators/gaps"):
            path += "?wait=false"
        get = api.get(path)
        head = api.head(path)
        assert head.status_code == get.status_code != 405, (path, head.status_code, get.status_code)
        assert head.content == b"", path
        assert head.headers.get("content-type") == get.headers.get("content-type"), path
        if "timeStamp" not in get.text and path != "/map/config":
            assert head.headers.get("content-length") == get.headers.get("content-length"), path


def test_options_answers_allow(api):
    r = api.options("/collections/cameras/items")
    assert r.status_code == 204
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}  # Part 4: create
    assert api.options("/api-static/swagger-ui.css").headers["allow"] == "GET, HEAD, OPTIONS"
    assert api.options("/no/such/path").status_code == 404
    r = api.post("/collections")
    assert r.status_code == 405 and "GET" in r.headers.get("allow", "")


def test_head_of_a_cached_tile_is_answered_by_the_fast_path(api):
    url = "/collections/cameras/tiles/WebMercatorQuad/12/3429/1675"
    get = api.get(url)
    head = api.head(url, headers={"If-None-Match": get.headers["etag"]})
    assert head.status_code == 304 and head.content == b""
    head = api.head(url)
    assert head.status_code == get.status_code and head.headers["etag"] == get.headers["etag"]


# -- request bounds --------------------------------------------------------------------------------

def test_oversized_requests_are_refused_naming_the_limit(api, settings):
    r = api.get("/healthz", headers={"X-Big": "a" * (settings.max_header_bytes + 1)})
    assert r.status_code == 431 and "x-big" in r.json()["description"]
    many = {f"X-H{i}": "b" * 900 for i in range(40)}
    r = api.get("/healthz", headers=many)
    assert r.status_code == 431 and "together" in r.json()["description"]
    r = api.get("/healthz", headers={f"X-N{i}": "1" for i in range(settings.max_header_count + 1)})
    assert r.status_code == 431
    r = api.get("/collections/cameras/items", params={"filter": "a" * (settings.max_query_bytes + 1)})
    assert r.status_code == 414 and set(r.json()) == {"code", "description"}
    r = api.post("/collections/cameras/items", content=b"x" * (settings.max_body_bytes + 1))
    assert r.status_code == 413
    assert api.get("/healthz").status_code == 200


def test_html_pages_are_limited(api, settings):
    r = api.get("/collections/cameras/items", params={"limit": 10_000, "f": "html"})
    assert r.status_code == 200
    assert r.text.count("<tr") <= settings.max_html_limit + 1
    assert api.get("/collections/cameras/items", params={"limit": 1000}).json()["numberReturned"] == 1000


def test_cached_tiles_are_served_under_a_public_path_prefix(public_api, monkeypatch):
    """The cached-tile fast path still answers when the origin carries a path prefix (root_path)."""
    from cim_service.tiles import fastpath

    class Hits:
        n = 0

        def inc(self) -> None:
            self.n += 1

    hits = Hits()
    monkeypatch.setattr(fastpath, "TILE_CACHE_HITS", hits)
    url = "/collections/cameras/tiles/WebMercatorQuad/12/3429/1675"
    first = public_api.get(url)
    again = public_api.get(url)
    assert again.status_code == first.status_code and again.content == first.content
    assert hits.n >= 1
