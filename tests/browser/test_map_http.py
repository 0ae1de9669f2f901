"""The /map routes without a browser: page, assets, address search."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.webmap.assets import check_vendored_loader, deck_bundle_path


@pytest.fixture(scope="module")
def client(map_settings):
    with TestClient(create_app(map_settings)) as c:
        yield c


def page_config(html: str) -> dict:
    match = re.search(r"window\.CIM_CONFIG = (\{.*?\});</script>", html, re.S)
    assert match, "page has no CIM_CONFIG"
    return json.loads(match.group(1))


def test_map_page_references_only_local_assets(client, catalog):
    response = client.get("/map")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert "/map/static/deck.js" in refs and "/map/static/map.js" in refs
    assert all(ref.startswith("/map/static/") or ref.startswith("data:") for ref in refs), refs
    config = page_config(html)
    public = [spec.id for spec in catalog if spec.access.value == "public"]  # the page is loaded without a key
    assert [layer["id"] for layer in config["layers"]] == public
    deck_ids = {layer["id"] for layer in config["deck"]["layers"]}
    assert set(public) <= deck_ids and not {"people", "organisations"} & deck_ids
    spec = json.dumps(config["deck"])
    assert "@@=" not in spec, "a literal string was turned into a pydeck accessor expression"
    assert "http" not in spec
    mvt = {layer["id"]: layer for layer in config["deck"]["layers"] if layer["@@type"] == "MVTLayer"}
    assert mvt["cameras"]["data"] == "/collections/cameras/tiles/WebMercatorQuad/{z}/{x}/{y}"
    assert mvt["cameras"]["minZoom"] == catalog.get("cameras").style.min_zoom
    minx, miny, maxx, maxy = config["district_bbox"]
    assert 121.1 < minx < maxx < 121.7 and 30.9 < miny < maxy < 31.35


def test_map_tiles_urls_answer(client):
    config = page_config(client.get("/map").text)
    template = next(layer["data"] for layer in config["deck"]["layers"] if layer["id"] == "cameras")
    response = client.get(template.format(z=11, x=1713, y=837))
    assert response.status_code in (200, 204)


def test_deck_bundle_served_with_etag(client):
    response = client.get("/map/static/deck.js")
    assert response.status_code == 200
    assert response.content == deck_bundle_path().read_bytes()
    assert b"MVTLayer" in response.content
    etag = response.headers["etag"]
    again = client.get("/map/static/deck.js", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_only_known_assets_are_served(client):
    assert client.get("/map/static/map.css").status_code == 200
    assert client.get("/map/static/loaders.gl-mvt.min.js").status_code == 200
    for name in ("nope.js", "..%2F..%2Fsettings.py", "vendor%2FLICENSE.loaders.gl"):
        assert client.get(f"/map/static/{name}").status_code == 404


def test_page_loads_its_modules_from_the_service(client):
    html = client.get("/map").text
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1))["imports"]
    assert imports and all(url.startswith("/map/static/js/") for url in imports.values())
    preloads = re.findall(r'<link rel="modulepreload" [^>]*href="([^"]+)">', html)
    assert sorted(preloads) == sorted(imports.values()), "every module is preloaded (no import waterfall)"
    assert '<script type="module" src="/map/static/map.js">' in html
    for url in ["/map/static/map.js", *imports.values()]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith("text/javascript"), (url, response.headers["content-type"])
        again = client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and not again.content, url
    assert client.get("/map/static/js/nope.js").status_code == 404
    assert client.get("/map/static/js/../../settings.py").status_code == 404


def test_vendored_mvt_loader_matches_bundle():
    assert check_vendored_loader() == "4.4.3"


def test_search_finds_a_demo_door_plate(client, engine):
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT full_address, road, lane, number, ST_X(geom) AS x, ST_Y(geom) AS y FROM cim.addresses "
            "WHERE road IS NOT NULL AND lane IS NOT NULL AND number IS NOT NULL AND building IS NULL "
            "ORDER BY id LIMIT 1")).one()
    query = f"{row.road}{row.lane}弄{row.number}号"
    response = client.get("/map/search", params={"q": query})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results and results[0]["match"] == "address"
    assert any(r["label"] == row.full_address for r in results)
    best = next(r for r in results if r["label"] == row.full_address)
    assert best["longitude"] == pytest.approx(row.x) and best["latitude"] == pytest.approx(row.y)
    for r in results:
        assert row.road in r["label"] and f"{row.lane}弄" in r["label"]


def test_search_treats_input_as_text(client):
    for q in ("%", "_", "'; DROP TABLE cim.addresses; --", "\\"):
        response = client.get("/map/search", params={"q": q})
        assert response.status_code == 200
        assert response.json()["results"] == []
    assert client.get("/map/search", params={"q": ""}).status_code == 400
    assert client.get("/map/search").status_code == 400
