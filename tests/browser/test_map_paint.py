"""What the map's first meaningful paint draws, and what comes after it, in headless Chromium (software WebGL).

The paint's definition (js/metrics.js, benchmarks/bench_map.py) is the first frame after the district, the towns'
choropleth and every visible tile layer have loaded; these tests check that this frame really drew them, that the
labels come in the frames after it (their glyph atlas is not on that paint's path), and that the canvas of a
software renderer is made without multisampling.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import open_map

pytestmark = pytest.mark.browser

#: the deck layer of the map's labels (js/labels.js LABELS_ID; not a catalog layer)
LABELS = "__labels"

#: the catalog layers the page draws at its first view: the base layers by role, the visible tile layers
EXPECTED = """() => { const c = window.CIM_CONFIG, s = window.__cimMap.state;
  const tiles = c.deck.layers.filter((l) => ['MVTLayer', 'TileLayer'].includes(l['@@type']) && s.visible[l.id]
    && (l['@@type'] === 'MVTLayer' || s.rasterUrl));
  return { district: c.roles.district_outline, towns: c.roles.town_boundaries, tiles: tiles.map((l) => l.id) }; }"""


@pytest.fixture
def big_page(browser):
    """A fresh 1920×1080 page (the benchmark's viewport)."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, device_scale_factor=1)
    page = context.new_page()
    yield page
    context.close()


def test_first_meaningful_paint_draws_the_view_and_the_labels_follow(big_page, service_url, artifacts):
    page = big_page
    open_map(page, f"{service_url}/map")
    metrics = page.evaluate("window.__cimMetrics")
    expected = page.evaluate(EXPECTED)
    drawn = metrics["fmpLayers"]
    assert drawn is not None, "no layers recorded for the first meaningful paint"
    assert expected["district"] in drawn and expected["towns"] in drawn, drawn
    assert expected["tiles"], "no tile layer is visible at the first view"
    assert set(expected["tiles"]) <= set(drawn), f"the paint left out visible layers: {expected['tiles']} {drawn}"
    assert set(expected["tiles"]) <= set(metrics["tilesLoaded"]), "a visible layer's tiles had not loaded"
    assert LABELS not in drawn, f"the labels were drawn in the first meaningful paint, not after it: {metrics}"

    page.wait_for_function(f"window.__cimMetrics.drawnLayers.includes('{LABELS}')"
                           " && window.__cimMetrics.labels.placed > 0", timeout=30_000)
    page.wait_for_timeout(300)  # the frame of that render (as open_map waits for the paint's)
    page.screenshot(path=str(artifacts / "map-paint-labels-1920x1080.png"))


def test_software_webgl_canvas_has_no_multisampling(big_page, service_url):
    page = big_page
    open_map(page, f"{service_url}/map")
    renderer = page.evaluate("""() => { const gl = document.createElement('canvas').getContext('webgl2');
        const info = gl.getExtension('WEBGL_debug_renderer_info');
        return gl.getParameter(info.UNMASKED_RENDERER_WEBGL); }""")
    assert "SwiftShader" in renderer, f"the tests' Chromium should render WebGL in software, not with {renderer}"
    attributes = page.evaluate("window.__cimMap.deck.device.gl.getContextAttributes()")
    assert attributes["antialias"] is False, attributes
