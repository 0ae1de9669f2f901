"""OGC API Styles: the catalog's style as MapLibre GL style JSON (checked by the MapLibre validator, its tile
source served by us) and SLD 1.1 (applied by a real QGIS, whose rendering shows the catalog's colours)."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import mapbox_vector_tile
import morecantile
import pytest
from PIL import Image

from cim_service.core.settings import PROJECT_ROOT
from cim_service.tiles.labels import has_label_points, label_layer_name
from tests.routes.conftest import AREA
from tests.routes.serving import cim_serve

NODE = "/usr/bin/node"
VALIDATOR = PROJECT_ROOT / "tools" / "stylespec" / "node_modules" / "@maplibre" / "maplibre-gl-style-spec" / \
    "dist" / "gl-style-validate.mjs"
QGIS_PYTHON = "/usr/bin/python3"
RENDER = Path(__file__).resolve().parent.parent / "clients" / "qgis_render_sld.py"
SE = "{http://www.opengis.net/se}"


def _rgba(css: str) -> list[int]:
    parts = [p.strip() for p in css.removeprefix("rgba(").removesuffix(")").split(",")]
    return [int(parts[0]), int(parts[1]), int(parts[2]), round(float(parts[3]) * 255)]


def test_styles_listing(api):
    doc = api.get("/styles").json()
    assert doc["default"] == "default" and [s["id"] for s in doc["styles"]] == ["default"]
    types = {link["type"] for link in doc["styles"][0]["links"]}
    assert {"application/vnd.mapbox.style+json", "application/vnd.ogc.sld+xml;version=1.1"} <= types
    assert api.get("/styles/other").status_code == 404
    assert api.get("/styles/default", params={"f": "png"}).status_code == 400
    assert api.get("/collections/cameras/styles").json()["default"] == "default"
    assert api.get("/collections/people/styles").status_code == 404  # restricted: as if absent


def test_mapbox_style_validates_and_follows_the_catalog(api, catalog, tmp_path, officer):
    r = api.get("/styles/default", params={"f": "mapbox"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.mapbox.style+json")
    style = r.json()
    path = tmp_path / "style.json"
    path.write_text(json.dumps(style))
    assert VALIDATOR.exists(), "run scripts/bootstrap (npm ci in tools/stylespec)"
    res = subprocess.run([NODE, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr
    broken = {**style, "layers": [*style["layers"], {"id": "x", "type": "circle", "source": "nowhere"}]}
    path.write_text(json.dumps(broken))  # the validator does refuse a wrong style
    assert subprocess.run([NODE, str(VALIDATOR), str(path)], capture_output=True, timeout=60).returncode != 0

    public = [s for s in catalog if s.access.value == "public"]
    by_layer = {}
    for layer in style["layers"]:
        by_layer.setdefault(layer.get("source-layer"), []).append(layer)
    labelled = {label_layer_name(s) for s in public if has_label_points(s)}
    assert labelled  # a town is labelled from its one label point, not from its polygon in every tile
    assert set(by_layer) - {None} == {s.id for s in public} | labelled
    for name in labelled:
        (label,) = by_layer[name]
        assert label["type"] == "symbol" and label["layout"]["symbol-placement"] == "point"
    assert "labels=true" in style["sources"]["cim"]["tiles"][0]
    shown = api.get("/styles/default", params={"f": "mapbox", "visible": "true"}).json()
    assert {layer.get("source-layer") for layer in shown["layers"]} - {None} == \
        {s.id for s in public if s.style.visible} | {label_layer_name(s) for s in public
                                                     if s.style.visible and has_label_points(s)}
    cams = by_layer["cameras"][0]
    spec = catalog.get("cameras")
    assert cams["type"] == "circle" and _rgba(cams["paint"]["circle-color"]) == spec.style.fill
    assert cams["minzoom"] == spec.style.min_zoom
    towns = {layer["type"]: layer for layer in by_layer["towns"]}
    assert _rgba(towns["fill"]["paint"]["fill-color"]) == catalog.get("towns").style.fill
    hidden = [s for s in public if not s.style.visible]
    assert hidden and all(by_layer[s.id][0]["layout"]["visibility"] == "none" for s in hidden)
    # the source is our multi-layer tiles: a tile of the template holds the styled layers
    t = morecantile.tms.get("WebMercatorQuad").tile(AREA[0] + 0.01, AREA[1] + 0.01, 14)
    url = style["sources"]["cim"]["tiles"][0].replace("{z}", "14").replace("{x}", str(t.x)).replace("{y}", str(t.y))
    tile = api.get(url.removeprefix("http://testserver"))
    assert tile.status_code == 200 and "cameras" in mapbox_vector_tile.decode(tile.content)
    with_key = api.get("/styles/default", headers=officer).json()
    assert "people" in {layer.get("source-layer") for layer in with_key["layers"]}


def test_sld_per_collection(api, catalog):
    r = api.get("/collections/cameras/styles/default", params={"f": "sld"})
    assert r.status_code == 200 and "sld" in r.headers["content-type"]
    root = ET.fromstring(r.content)
    assert root.get("version") == "1.1.0"
    fill = {p.get("name"): p.text for p in root.iter(f"{SE}SvgParameter")}
    r_, g, b, _ = catalog.get("cameras").style.fill
    assert fill["fill"] == f"#{r_:02x}{g:02x}{b:02x}"
    assert root.find(f".//{SE}PointSymbolizer") is not None
    towns = ET.fromstring(api.get("/collections/towns/styles/default?f=sld").content)
    assert towns.find(f".//{SE}PolygonSymbolizer/{SE}Stroke") is not None
    assert api.get("/collections/cameras/styles/default", headers={"Accept": "application/vnd.ogc.sld+xml"}) \
        .headers["content-type"].startswith("application/vnd.ogc.sld+xml")


@pytest.fixture(scope="module")
def server(settings, features_data, tmp_path_factory):
    with cim_serve(settings.database_url, settings.home, tmp_path_factory.mktemp("serve-styles")) as url:
        yield url


def test_qgis_renders_the_sld_in_the_catalog_colours(server, catalog, tmp_path):
    import httpx

    sld_file = tmp_path / "cameras.sld"
    sld_file.write_bytes(httpx.get(f"{server}/collections/cameras/styles/default?f=sld").content)
    png = tmp_path / "cameras.png"
    bbox = ",".join(str(v) for v in AREA)
    res = subprocess.run([QGIS_PYTHON, str(RENDER), server, "cameras", str(sld_file), str(png), bbox],
                         capture_output=True, text=True, timeout=300, cwd=RENDER.parent)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["valid"] and out["sld_loaded"] and out["saved"], out
    r, g, b, a = catalog.get("cameras").style.fill
    alpha = a / 255  # drawn over white
    want = tuple(round(c * alpha + 255 * (1 - alpha)) for c in (r, g, b))
    pixels = Image.open(png).convert("RGB").getdata()
    close = sum(1 for p in pixels if all(abs(p[i] - want[i]) <= 12 for i in range(3)))
    assert close >= 20, (want, close)  # QGIS's default symbol (random colour) would not give these


def test_qgis_draws_the_sld_labels(server, tmp_path):
    """The towns' TextSymbolizer becomes QGIS labels in the label field, drawn as dark text."""
    import httpx

    sld_file = tmp_path / "towns.sld"
    sld_file.write_bytes(httpx.get(f"{server}/collections/towns/styles/default?f=sld").content)
    png = tmp_path / "towns.png"
    bbox = "121.33,31.0,121.36,31.03"  # the fixture towns 测试西镇 / 测试东镇
    res = subprocess.run([QGIS_PYTHON, str(RENDER), server, "towns", str(sld_file), str(png), bbox],
                         capture_output=True, text=True, timeout=300, cwd=RENDER.parent)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["valid"] and out["sld_loaded"] and out["labels"] and out["label_field"] == "name", out
    pixels = Image.open(png).convert("RGB").getdata()
    text = sum(1 for p in pixels if max(p) < 60)  # the label colour (30, 30, 30); outlines are (90, 90, 90)
    assert text >= 30, text
