"""Our MapLibre style rendered by MapLibre GL JS itself (headless Chromium, software WebGL; demo database).

MapLibre GL JS comes from npm at install time (tools/stylespec) and is handed to the page by the test, on the
service's own origin; the style, its vector tiles, glyphs and sprites are the service's. The map reaches
``idle`` without a style, tile, glyph or sprite error, draws towns, roads and their Chinese labels in the
catalog's colours, and labels each town once at district zoom (from its one label point in the tiles)."""

from __future__ import annotations

from collections import Counter

import httpx
import numpy as np
import pytest
from PIL import Image

from cim_service.core.settings import PROJECT_ROOT
from cim_service.tiles.labels import has_label_points
from tests.browser.conftest import attach_log

pytestmark = pytest.mark.browser

DIST = PROJECT_ROOT / "tools" / "stylespec" / "node_modules" / "maplibre-gl" / "dist"
#: the test page and MapLibre GL JS, handed to the browser under this path of the service's origin
PREFIX = "/__maplibre_test__/"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>style in MapLibre</title>
<link rel="stylesheet" href="maplibre-gl.css">
<style>html, body, #map { margin: 0; width: 100%; height: 100%; }</style></head><body><div id="map"></div>
<script src="maplibre-gl.js"></script>
<script>
window.mapErrors = [];
window.mapReady = false;
fetch("/styles/default?f=mapbox").then((r) => r.json()).then((style) => {
  const map = new maplibregl.Map({container: "map", style, center: style.center, zoom: 10.6, attributionControl: false,
                                  fadeDuration: 0, canvasContextAttributes: {preserveDrawingBuffer: true},
                                  localIdeographFontFamily: false});  // CJK from our glyphs, not a local font
  map.on("error", (e) => window.mapErrors.push(String((e.error && e.error.message) || e.type)));
  map.once("idle", () => { window.mapReady = true; });
  window.map = map;
}).catch((e) => window.mapErrors.push(String(e)));
</script></body></html>"""
SIZE = {"width": 1200, "height": 900}


def _serve_test_files(route) -> None:
    name = route.request.url.split(PREFIX, 1)[1].split("?", 1)[0]
    if name in ("", "index.html"):
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE)
    elif name in ("maplibre-gl.js", "maplibre-gl.css"):
        route.fulfill(status=200, path=str(DIST / name),
                      content_type="text/css" if name.endswith(".css") else "application/javascript")
    else:
        route.fulfill(status=404, body="")


@pytest.fixture(scope="module")
def rendered(browser, service_url, artifacts):
    assert (DIST / "maplibre-gl.js").exists(), "run scripts/bootstrap (npm ci in tools/stylespec)"
    context = browser.new_context(viewport=SIZE, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    page.route(f"{service_url}{PREFIX}**", _serve_test_files)
    page.goto(f"{service_url}{PREFIX}index.html")
    page.wait_for_function("window.mapReady === true || window.mapErrors.length > 0", timeout=180_000)
    style = page.evaluate("window.map.getStyle()")
    label_pixels = page.evaluate("""() => window.map.queryRenderedFeatures({layers: window.map.getStyle().layers
        .filter((l) => l.type === 'symbol' && l['source-layer'] && l['source-layer'].endsWith('.labels'))
        .map((l) => l.id)}).map((f) => { const p = window.map.project(f.geometry.coordinates);
                                        return [Math.round(p.x), Math.round(p.y)]; })""")
    shot = artifacts / "maplibre_style.png"
    page.screenshot(path=str(shot))
    yield {"page": page, "log": log, "style": style, "shot": shot, "label_pixels": label_pixels}
    context.close()


def _rendered(page, layer_ids: list[str]) -> list[dict]:
    return page.evaluate("""(ids) => window.map.queryRenderedFeatures({layers: ids}).map((f) => ({
        layer: f.layer.id, source_layer: f.sourceLayer, properties: f.properties}))""", layer_ids)


def test_the_style_loads_without_errors(rendered, service_url):
    page, log = rendered["page"], rendered["log"]
    assert page.evaluate("window.mapErrors") == [] and page.evaluate("window.mapReady")
    assert log.errors() == [], log.errors()
    assert log.foreign_hosts() == set(), sorted(log.foreign_hosts())
    served = {url: status for url, status in log.responses.items() if PREFIX not in url}
    kinds = {kind: [s for u, s in served.items() if kind in u] for kind in ("/tiles/", "/fonts/", "/sprites/")}
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}  # tiles, glyphs and sprites were fetched
    assert all(s in (200, 204, 304) for s in served.values()), {u: s for u, s in served.items() if s >= 400}
    assert not log.failed, log.failed


def test_towns_roads_and_labels_are_rendered(rendered, catalog):
    page, style = rendered["page"], rendered["style"]
    towns = catalog.require_role("town_boundaries")
    by_collection: dict[str, list[dict]] = {}
    for layer in style["layers"]:
        by_collection.setdefault(layer.get("metadata", {}).get("cim:collection"), []).append(layer)
    town_layers = {layer["type"]: layer["id"] for layer in by_collection[towns.id]}
    assert _rendered(page, [town_layers["fill"]]) and _rendered(page, [town_layers["line"]])
    line_labelled = [s for s in catalog if s.style.label is not None and s.style.label.placement == "line"
                     and s.style.visible and s.access.value == "public"]
    assert line_labelled
    for spec in line_labelled:
        ids = {layer["type"]: layer["id"] for layer in by_collection[spec.id]}
        assert _rendered(page, [ids["line"]]), spec.id
    labels = _rendered(page, [town_layers["symbol"]])
    names = [f["properties"][towns.style.label.field] for f in labels]
    assert names and all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names), names


def test_each_town_is_labelled_once_at_district_zoom(rendered, catalog, service_url):
    page, style = rendered["page"], rendered["style"]
    towns = catalog.require_role("town_boundaries")
    assert has_label_points(towns)
    label_id = next(layer["id"] for layer in style["layers"]
                    if layer["type"] == "symbol" and layer.get("metadata", {}).get("cim:collection") == towns.id)
    assert page.evaluate("window.map.getZoom()") < 11  # the whole district: towns span many z10-z11 tiles
    names = Counter(f["properties"][towns.style.label.field] for f in _rendered(page, [label_id]))
    assert names and max(names.values()) == 1, names
    items = httpx.get(f"{service_url}/collections/{towns.id}/items", params={"limit": 200}).json()
    in_view = page.evaluate("""() => { const b = window.map.getBounds(); return [b.getWest(), b.getSouth(),
                                        b.getEast(), b.getNorth()]; }""")
    assert len(items["features"]) >= 10
    # every town is labelled (the district's towns do not collide at this zoom) and none twice
    assert set(names) == {f["properties"][towns.style.label.field] for f in items["features"]}, (names, in_view)


def test_screenshot_shows_the_catalog_colours(rendered, catalog):
    img = np.asarray(Image.open(rendered["shot"]).convert("RGB")).astype(int)

    def share(colour: list[int], background: tuple = (244, 244, 242), tol: int = 30) -> float:
        alpha = (colour[3] if len(colour) > 3 else 255) / 255
        want = np.array([round(c * alpha + b * (1 - alpha)) for c, b in zip(colour[:3], background, strict=True)])
        return float((np.abs(img - want).max(axis=2) <= tol).mean())

    towns = catalog.require_role("town_boundaries")
    assert share(towns.style.line) > 0.002  # the town boundaries' grey lines
    assert share(catalog.get("cameras").style.fill) > 0.0005  # the cameras' red dots
    # the town names' dark text (our SDF glyphs, anti-aliased) around each label point, not in the empty corner
    points = rendered["label_pixels"]
    assert points
    dark = [int((img[max(0, y - 10):y + 10, max(0, x - 40):x + 40].max(axis=2) < 110).sum()) for x, y in points]
    assert all(d >= 15 for d in dark), dark
    assert int((img[:60, :60].max(axis=2) < 110).sum()) == 0
    background = share([244, 244, 242, 255], tol=3)
    assert background < 0.95  # something is drawn over the background


def test_road_labels_along_the_roads_at_street_zoom(rendered, catalog, artifacts):
    """Last (it moves the map): road names, drawn along the roads from their own zoom on."""
    page, style = rendered["page"], rendered["style"]
    line_labelled = [s for s in catalog if s.style.label is not None and s.style.label.placement == "line"
                     and s.style.visible and s.access.value == "public"]
    zoom = max(s.style.label.min_zoom for s in line_labelled) + 1
    page.evaluate("(z) => { window.mapReady = false; window.map.once('idle', () => { window.mapReady = true; });"
                  " window.map.jumpTo({zoom: z}); }", zoom)
    page.wait_for_function("window.mapReady === true || window.mapErrors.length > 0", timeout=180_000)
    assert page.evaluate("window.mapErrors") == []
    page.screenshot(path=str(artifacts / "maplibre_style_streets.png"))
    for spec in line_labelled:
        label = next(layer for layer in style["layers"] if layer["type"] == "symbol"
                     and layer.get("metadata", {}).get("cim:collection") == spec.id)
        assert label["layout"]["symbol-placement"] == "line"
        road_labels = _rendered(page, [label["id"]])
        assert road_labels and all(f["properties"].get(spec.style.label.field) for f in road_labels), spec.id
