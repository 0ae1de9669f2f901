"""The map's 3D view, controls, time slider and operations screen in headless Chromium (demo database)."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import open_map
from tests.browser.pixels import changed_share, rgb

pytestmark = pytest.mark.browser


def metrics(page) -> dict:
    return page.evaluate("window.__cimMetrics")


def config_ids(page, predicate: str) -> list[str]:
    """Ids of the page configuration's layers for which the JS ``predicate`` (of ``l``) holds."""
    return page.evaluate(f"window.CIM_CONFIG.layers.filter((l) => {predicate}).map((l) => l.id)")


def wait_view(page, condition: str, timeout_ms: int = 15_000) -> None:
    page.wait_for_function(f"(() => {{ const v = window.__cimMetrics.view; return v && ({condition}); }})()",
                           timeout=timeout_ms)


def test_3d_view_extrudes_buildings_over_the_basemap(map_page, service_url, artifacts):
    page, log = map_page
    open_map(page, f"{service_url}/map?view=3d", timeout_ms=60_000)
    page.wait_for_timeout(500)
    shot = rgb(page.locator("#map").screenshot(path=str(artifacts / "map-3d-1600x900.png")))
    page.screenshot(path=str(artifacts / "map-3d-page-1600x900.png"))
    got = metrics(page)

    assert log.errors() == []
    assert 45 <= got["view"]["pitch"] <= 60, got["view"]
    assert abs(got["view"]["bearing"]) >= 10, "the 3D view is rotated"
    extruded = config_ids(page, "l.height_field")
    assert extruded, "the catalog declares a layer with a height field"
    assert set(extruded) <= set(got["extrudedLayers"]), got["extrudedLayers"]
    basemap = config_ids(page, "l.basemap")
    assert len(basemap) >= 3, "water, parks and built-up areas are basemap layers"
    drawn = got["drawnLayers"]
    towns = page.evaluate("window.CIM_CONFIG.roles.town_boundaries")
    for layer in basemap:
        assert layer in drawn and layer in got["tilesLoaded"], f"basemap layer {layer} not drawn"
        assert drawn.index(layer) < drawn.index(towns), f"basemap layer {layer} drawn over the data"
    for layer in extruded:
        assert layer in got["tilesLoaded"]
    tiles = log.tile_statuses()
    assert any(status == 200 and f"/collections/{extruded[0]}/" in url for url, status in tiles.items()), \
        "no tile of the extruded layer had features"
    assert all(status in (200, 204) for status in tiles.values())

    # the buildings are what stands out: hiding them changes a good part of the picture
    before = metrics(page)["renders"]
    page.evaluate("ids => { ids.forEach((id) => { window.__cimMap.state.visible[id] = false; });"
                  " window.__cimMap.render(); }", extruded)
    page.wait_for_function("n => window.__cimMetrics.renders > n", arg=before)
    page.wait_for_timeout(300)
    flat = rgb(page.locator("#map").screenshot(path=str(artifacts / "map-3d-without-buildings.png")))
    assert changed_share(shot, flat) > 0.01, "the extruded buildings are not visible in the 3D view"

    # the switch goes back to the flat view, north up, and into 3D again
    page.locator("#view-3d").click()
    wait_view(page, "v.pitch < 1 && Math.abs(v.bearing) < 1")
    assert page.locator("#view-3d").inner_text() == "3D"
    page.locator("#view-3d").click()
    wait_view(page, "v.pitch >= 45")
    assert page.locator("#view-3d").get_attribute("aria-pressed") == "true"


def test_map_refuses_an_unknown_view_or_screen(service_url):
    for query, name in (("view=4d", "view"), ("screen=wall", "screen")):
        response = httpx.get(f"{service_url}/map?{query}", timeout=10)
        assert response.status_code == 400, query
        assert f"'{name}'" in response.text
