"""The map's labels in headless Chromium (demo database): towns, roads and metro stations drawn in the service's
own CJK font, without overlaps, in English on the EN switch; one page load for the module."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.browser.conftest import labelled_map
from tests.browser.pixels import changed_share, rgb

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def labelled_page(browser, service_url):
    with labelled_map(browser, service_url) as (page, log):
        yield page, log


def labels(page) -> dict:
    return page.evaluate("window.__cimMetrics.labels")


def placed(page) -> list[dict]:
    """The placed labels with their boxes' centres on the page (the text's anchor plus its offset)."""
    return page.evaluate("""(() => {
      const vp = window.__cimMap.deck.getViewports()[0];
      const box = document.getElementById('deck-container').getBoundingClientRect();
      return window.__cimMap.state.labels.placed.map((p) => {
        const [x, y] = vp.project(p.position);
        return { layer: p.layer, text: p.text, angle: p.angle, size: p.size, x: box.left + x + p.offset[0],
                 y: box.top + y + p.offset[1] };
      });
    })()""")


def without_labels(page) -> np.ndarray:
    """A screenshot with the labels taken away (then put back)."""
    page.evaluate("(() => { const s = window.__cimMap.state; s.__saved = s.labels.placed; s.labels.placed = [];"
                  " window.__cimMap.render(); })()")
    page.wait_for_timeout(250)
    shot = rgb(page.screenshot())
    page.evaluate("(() => { const s = window.__cimMap.state; s.labels.placed = s.__saved; s.labels.view = null;"
                  " window.__cimMap.render(); })()")
    page.wait_for_timeout(400)
    return shot


def set_view(page, longitude: float, latitude: float, zoom: float) -> None:
    page.evaluate(f"window.updateDeck({{initialViewState: {{longitude: {longitude}, latitude: {latitude}, "
                  f"zoom: {zoom}, pitch: 0, bearing: 0}}}}, window.__cimMap.deck)")
    page.wait_for_function(f"(() => {{ const v = window.__cimMetrics.view; const l = window.__cimMap.state.labels;"
                           f" return v && Math.abs(v.zoom - {zoom}) < 0.01 && l.view"
                           f" && Math.abs(l.view.zoom - {zoom}) < 0.01; }})()", timeout=15_000)
    page.wait_for_timeout(300)


def _label_pixels(shot: np.ndarray, bare: np.ndarray, items: list[dict]) -> list[float]:
    """Per label: the share of its box's pixels the label changed (text and halo)."""
    shares = []
    for p in items:
        half_w, half_h = max(len(p["text"]) * p["size"] / 2, 8), p["size"] / 2 + 2
        x0, x1 = int(max(p["x"] - half_w, 0)), int(min(p["x"] + half_w, shot.shape[1]))
        y0, y1 = int(max(p["y"] - half_h, 0)), int(min(p["y"] + half_h, shot.shape[0]))
        shares.append(changed_share(shot[y0:y1, x0:x1], bare[y0:y1, x0:x1]))
    return shares


def test_town_labels_in_the_local_font_without_overlaps(labelled_page, service_url, artifacts):
    page, log = labelled_page
    m = labels(page)
    assert m["fontLoaded"] and m["font"], m
    font_urls = [u for u in log.requests if "/fonts/web/" in u and u.endswith(".woff2")]
    assert font_urls and all(log.responses.get(u) == 200 for u in font_urls)
    assert page.evaluate("document.fonts.check('16px \"' + window.__cimMetrics.labels.font + '\"', '莘庄')")
    towns = page.evaluate("fetch('/map/labels').then((r) => r.json())")
    town_names = {item["zh"] for layer in towns["layers"] if layer["id"] == "towns" for item in layer["labels"]}
    shown = [p for p in placed(page) if p["layer"] == "towns"]
    assert len(shown) >= 8 and {p["text"] for p in shown} <= town_names
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in p["text"]) for p in shown)
    shot = page.screenshot(path=str(artifacts / "map_labels_zh.png"))
    bare = without_labels(page)
    shares = _label_pixels(rgb(shot), bare, shown)
    # each town label draws its characters where it is placed (dark strokes and the white halo)
    assert min(shares) > 0.08, list(zip([p["text"] for p in shown], shares, strict=True))
    # no two placed labels overlap (estimated boxes, as placed)
    boxes = [(p["x"] - len(p["text"]) * p["size"] / 2, p["y"] - p["size"] / 2,
              p["x"] + len(p["text"]) * p["size"] / 2, p["y"] + p["size"] / 2) for p in placed(page)]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1), (a, b)


def test_roads_and_stations_at_street_zoom(labelled_page, artifacts):
    page, _ = labelled_page
    set_view(page, 121.388, 31.113, 13.5)  # 莘庄: the S20, the metro hub
    m = labels(page)
    assert m["byLayer"].get("main_roads", 0) >= 1 and m["byLayer"].get("metro_stations", 0) >= 1, m
    items = placed(page)
    roads = [p for p in items if p["layer"] == "main_roads"]
    assert all(-90 < p["angle"] <= 90 for p in roads)  # never upside down
    assert any(abs(p["angle"]) > 1 for p in roads)  # along the line, not all horizontal
    page.screenshot(path=str(artifacts / "map_labels_z13.png"))
    # a layer switched off takes its labels with it
    page.evaluate("(() => { window.__cimMap.state.visible.metro_stations = false; window.__cimMap.render(); })()")
    page.wait_for_function("!window.__cimMetrics.labels.byLayer.metro_stations", timeout=10_000)
    page.evaluate("(() => { window.__cimMap.state.visible.metro_stations = true; window.__cimMap.render(); })()")
    page.wait_for_function("window.__cimMetrics.labels.byLayer.metro_stations > 0", timeout=10_000)


def test_english_switch_changes_the_labels(labelled_page, artifacts):
    page, _ = labelled_page
    before = rgb(page.screenshot())
    zh = labels(page)["texts"]
    page.click("#lang")
    page.wait_for_function("window.__cimMetrics.labels.lang === 'en'", timeout=10_000)
    page.wait_for_timeout(400)
    en = labels(page)["texts"]
    assert en and en != zh
    latin = [t for t in en if t.isascii()]
    assert len(latin) >= len(en) * 0.8, en  # the English names (Chinese only where a feature has none)
    after = page.screenshot(path=str(artifacts / "map_labels_en.png"))
    assert changed_share(before, rgb(after)) > 0.002
    page.click("#lang")
    page.wait_for_function("window.__cimMetrics.labels.lang === 'zh'", timeout=10_000)


def _max_turn(path: list[list[float]]) -> float:
    """The sharpest turn (degrees) between two segments of a lon/lat path."""
    angles = [math.degrees(math.atan2(b[1] - a[1], b[0] - a[0])) for a, b in zip(path, path[1:], strict=False)]
    return max((abs((b - a + 540) % 360 - 180) for a, b in zip(angles, angles[1:], strict=False)), default=0.0)


def _distance_to(line: list[list[float]], p: list[float]) -> float:
    best = math.inf
    for a, b in zip(line, line[1:], strict=False):
        dx, dy = b[0] - a[0], b[1] - a[1]
        t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / ((dx * dx + dy * dy) or 1)))
        best = min(best, math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy))
    return best


def test_road_names_follow_the_road_glyph_by_glyph_at_z15(labelled_page, artifacts):
    page, _ = labelled_page
    doc = page.evaluate("fetch('/map/labels').then((r) => r.json())")
    roads = next(layer for layer in doc["layers"] if layer["id"] == "main_roads")
    bent = max(roads["labels"], key=lambda item: _max_turn(item["path"]))
    assert _max_turn(bent["path"]) > 20, "the demo has a road bending near a label anchor"
    set_view(page, bent["position"][0], bent["position"][1], 15)
    got = page.evaluate("""(name) => {
      const vp = window.__cimMap.deck.getViewports()[0];
      const label = window.__cimMap.state.labels.placed.find((p) => p.layer === 'main_roads' && p.text === name);
      return label && { glyphs: label.glyphs.map((g) => ({ text: g.text, angle: g.angle, xy: vp.project(g.position) })),
                        size: label.size };
    }""", bent["zh"])
    assert got, f"{bent['zh']} is not placed at its anchor at z15"
    glyphs = got["glyphs"]
    assert "".join(g["text"] for g in glyphs) == bent["zh"], "every character placed, in reading order"
    path_px = page.evaluate("(path) => { const vp = window.__cimMap.deck.getViewports()[0];"
                            " return path.map((p) => vp.project(p)); }", bent["path"])
    for g in glyphs:
        assert _distance_to(path_px, g["xy"]) < 1.5, f"{g['text']} is off the road: {g}"
    for a, b in zip(glyphs, glyphs[1:], strict=False):
        assert abs((b["angle"] - a["angle"] + 540) % 360 - 180) <= 30, "no glyph turns sharply from the last"
        assert math.dist(a["xy"], b["xy"]) > got["size"] * 0.6, "glyphs follow each other, not on top"
    assert glyphs[-1]["xy"][0] >= glyphs[0]["xy"][0], "read left to right"
    shot = page.screenshot(path=str(artifacts / "map_labels_z15_along_road.png"))
    bare = without_labels(page)
    box = page.locator("#deck-container").bounding_box()
    drawn, half = rgb(shot), int(got["size"] / 2)
    for g in glyphs:  # each character is drawn where it is placed
        x, y = int(box["x"] + g["xy"][0]), int(box["y"] + g["xy"][1])
        cell = np.s_[y - half:y + half, x - half:x + half]
        share = changed_share(drawn[cell], bare[cell])
        assert share > 0.08, (g, share)
