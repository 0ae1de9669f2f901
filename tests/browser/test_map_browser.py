"""The web map in headless Chromium against the service on the demo database: pixels, requests, panels."""

from __future__ import annotations

import csv
import math

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from cim_service.auth import create_api_key
from cim_service.core.address import address_code, parse_address
from cim_service.core.crs import gcj02_to_wgs84
from cim_service.store.layer_state import bump_version
from pipelines.ingest import ingest_file
from tests.browser.conftest import attach_log, open_map
from tests.browser.pixels import changed_share, dark_share, is_background, patch, rgb

pytestmark = pytest.mark.browser

#: towns added by other test modules in their own small areas; the map test samples the demo's towns
TEST_TOWN_PREFIXES = ("ftest-", "tiletest-")

#: the restricted layer appears, enabled, once the page has the configuration of an authorised key
UNLOCKED_PEOPLE = "document.querySelector('#toggle-people') && !document.querySelector('#toggle-people').disabled"


def town_points(engine) -> list[tuple[str, float, float]]:
    """An interior point of every demo town."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT name, ST_X(p) AS x, ST_Y(p) AS y FROM ("
            "  SELECT name, feature_key, ST_PointOnSurface(geom) AS p FROM cim.towns) t "
            "WHERE feature_key NOT LIKE 'ftest-%' AND feature_key NOT LIKE 'tiletest-%' ORDER BY name")).all()
    assert len(rows) >= 10
    return [(r.name, r.x, r.y) for r in rows]


def project(page, lon: float, lat: float) -> tuple[float, float]:
    """Screen position (relative to the map element) of a WGS84 point."""
    x, y = page.evaluate("([lon, lat]) => window.__cimMap.deck.getViewports()[0].project([lon, lat])", [lon, lat])
    return x, y


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def inside(b: dict, x: float, y: float, margin: float = 6) -> bool:
    return (b["x"] - margin <= x <= b["x"] + b["width"] + margin
            and b["y"] - margin <= y <= b["y"] + b["height"] + margin)


def renders(page) -> int:
    """Frames deck.gl has drawn so far."""
    return page.evaluate("window.__cimMetrics.renders")


def frame_after(page, count: int) -> None:
    """Wait until deck.gl has drawn a frame after it had drawn ``count`` (read before a state change)."""
    page.wait_for_function("n => window.__cimMetrics.renders > n", arg=count, timeout=15_000)


#: the labels and their font have loaded, and they are placed for what is shown now (no placement pending)
LABELS_PLACED = """n => { const m = window.__cimMetrics, l = window.__cimMap.state.labels;
  return m.renders > n && l && !l.timer && m.labels.fontLoaded; }"""


def labels_settled(page, count: int) -> None:
    """Wait for a frame after ``count`` (read before a state change) that draws the labels placed for it.

    The labels arrive after the first meaningful paint, and are placed again 150 ms after a frame that changed what
    is shown: a picture taken one frame after a change can still hold the labels of before."""
    page.wait_for_function(LABELS_PLACED, arg=count, timeout=30_000)
    drawn = renders(page)
    page.evaluate("window.__cimMap.render()")
    frame_after(page, drawn)


def map_pixels(page, path) -> np.ndarray:
    return rgb(page.locator("#map").screenshot(path=str(path)))


def visible_town_points(page, engine) -> list[tuple[str, float, float]]:
    """Town points on screen (map-relative), away from the legend overlay."""
    map_box, legend = box(page, "#map"), box(page, "#legend")
    legend = {**legend, "x": legend["x"] - map_box["x"], "y": legend["y"] - map_box["y"]}
    points = []
    for name, lon, lat in town_points(engine):
        x, y = project(page, lon, lat)
        if 0 < x < map_box["width"] and 0 < y < map_box["height"] and not inside(legend, x, y):
            points.append((name, x, y))
    return points


def test_map_draws_the_district_offline(map_page, service_url, engine, artifacts):
    page, log = map_page
    open_map(page, f"{service_url}/map")
    pixels = map_pixels(page, artifacts / "map-1600x900.png")
    page.screenshot(path=str(artifacts / "map-page-1600x900.png"))

    assert log.errors() == []
    assert log.foreign_hosts() == set()
    tiles = log.tile_statuses()
    assert tiles, "the page requested no vector tiles"
    assert all(status in (200, 204) for status in tiles.values()), tiles
    assert any(status == 200 for status in tiles.values())
    metrics = page.evaluate("window.__cimMetrics")
    assert metrics["firstMeaningfulPaintMs"] is not None and metrics["tileErrors"] == 0
    page.wait_for_function("window.__cimMetrics.fmpFrameCommittedMs !== null", timeout=10_000)
    assert page.evaluate("window.__cimMetrics.fmpFrameCommittedMs") > metrics["firstMeaningfulPaintMs"]
    base_requests = [u for u in log.requests if "/collections/towns/items" in u or "/collections/district/items" in u]
    assert len(base_requests) == 2, f"the page's early requests should be used, not repeated: {base_requests}"

    points = visible_town_points(page, engine)
    assert len(points) >= 10, "towns are off screen: the view does not fit the district"
    filled = [not is_background(patch(pixels, x, y)).all() for _, x, y in points]
    assert all(filled), "a town interior is not drawn"
    h, w, _ = pixels.shape
    assert dark_share(pixels) > 0.002, "the district boundary (rgb 40,40,40) is not drawn"
    corners = np.concatenate([patch(pixels, 3, 3), patch(pixels, w - 4, 3)])
    assert is_background(corners).mean() > 0.5, "outside the district should be the plain background"


def test_toggling_a_layer_changes_the_picture(map_page, service_url, engine, artifacts):
    page, log = map_page
    open_map(page, f"{service_url}/map")
    labels_settled(page, 0)
    assert page.evaluate("window.__cimMetrics.labels.byLayer[window.CIM_CONFIG.roles.town_boundaries]"), \
        "the district view names the towns"
    before = map_pixels(page, artifacts / "toggle-before.png")
    points = visible_town_points(page, engine)
    count = renders(page)
    page.locator("#toggle-towns").uncheck()
    labels_settled(page, count)
    assert page.evaluate("window.__cimMetrics.labels.byLayer[window.CIM_CONFIG.roles.town_boundaries]") is None, \
        "the town names go with the towns"
    after = map_pixels(page, artifacts / "toggle-after.png")
    assert changed_share(before, after) > 0.05
    now_background = [is_background(patch(after, x, y, 0)).all() for _, x, y in points]
    assert sum(now_background) >= len(points) // 2, "the town fills should be gone"
    count = renders(page)
    assert not page.locator("#opacity-cameras").is_visible(), "opacity sits behind the layer's menu"
    page.locator("#menu-cameras").click()
    page.locator("#opacity-cameras").fill("0")
    labels_settled(page, count)
    faded = map_pixels(page, artifacts / "toggle-cameras-opacity0.png")
    changed = (np.abs(after - faded) > 30).any(axis=-1)
    assert changed.sum() > 1000, "camera dots should disappear at opacity 0"
    was_red = after[changed][:, 0] - after[changed][:, 1] > 60  # cameras are drawn rgb(220, 50, 50)
    assert was_red.mean() > 0.8, "only the camera dots should change"
    assert log.errors() == []


def test_indicator_panel_and_english_switch(map_page, service_url, artifacts):
    page, log = map_page
    open_map(page, f"{service_url}/map")
    indicators = page.evaluate("fetch('/indicators').then(r => r.json())")["indicators"]
    selected = page.locator("#indicator-select").input_value()
    ind = next(i for i in indicators if i["id"] == selected)
    assert ind["towns"], "the default indicator should have per-town values"
    rows = page.locator("#indicator-towns tbody tr")
    assert rows.count() == len(ind["towns"])
    for i, town in enumerate(ind["towns"]):
        cells = rows.nth(i).locator("td")
        assert cells.nth(0).inner_text() == town["town"]
        expected = {"met": "达标", "not_met": "未达标"}.get(town["status"], "无数据")
        assert cells.nth(3).inner_text() == expected
    assert page.locator("#title").inner_text() == "闵行区CIM一张图"
    assert page.locator("#layers-panel h2").inner_text() == "图层"
    page.locator("#lang").click()
    page.wait_for_timeout(300)
    assert page.locator("#title").inner_text() == "Minhang CIM One Map"
    assert page.locator("#layers-panel h2").inner_text() == "Layers"
    assert page.locator("label[for=toggle-cameras]").inner_text() == "Video cameras"
    first = rows.nth(0).locator("td")
    assert first.nth(0).inner_text() == (ind["towns"][0].get("name_en") or ind["towns"][0]["town"])
    page.screenshot(path=str(artifacts / "map-english.png"))
    other = next(i for i in indicators if i["id"] != selected)
    page.locator("#indicator-select").select_option(other["id"])
    assert page.locator("#indicator-select").input_value() == other["id"]
    assert log.errors() == []


#: a pixel of the map (relative to it) where deck.gl picks a point layer's feature over a town, and that town
POINT_OVER_TOWN = """() => {
  const deck = window.__cimMap.deck, towns = window.CIM_CONFIG.roles.town_boundaries;
  const { width, height } = document.getElementById('deck-container').getBoundingClientRect();
  const points = new Set(window.CIM_CONFIG.layers.filter((l) => l.is_point).map((l) => l.id));
  for (let y = 40; y < height - 40; y += 10) for (let x = 240; x < width - 60; x += 10) {
    const top = deck.pickObject({ x, y, radius: 0 });
    const root = top && (top.layer.parent ? top.layer.parent.id : top.layer.id);
    if (!top || !points.has(root)) continue;
    const town = deck.pickObject({ x, y, radius: 0, layerIds: [towns] });
    if (town) return { x, y, layer: root, town: town.object.properties.name };
  }
  return null;
}"""


def indicator_listing(service_url: str) -> list[dict]:
    listing = httpx.get(f"{service_url}/indicators", timeout=60).json()
    return listing if isinstance(listing, list) else listing["indicators"]


def town_row(indicator: dict, town: str) -> tuple:
    row = next(r for r in indicator["towns"] if r["town"] == town)
    return row["value"], row["target"], row["status"]


def test_clicking_a_town_opens_its_panel_with_trajectories(map_page, service_url, engine, artifacts):
    page, log = map_page
    # the live indicators (sensors online) move with the readings other tests published: the panel shows what the
    # service said at some moment between these two listings
    before = indicator_listing(service_url)
    open_map(page, f"{service_url}/map")
    assert page.evaluate("window.__cimMetrics.view.zoom < window.CIM_CONFIG.points_from_zoom"), \
        "the district view shows aggregates"
    # hover names the town (and its value of the selected indicator)
    count = renders(page)
    page.evaluate("""() => { const s = window.__cimMap.state; window.__cimShown = Object.assign({}, s.visible);
        for (const id of Object.keys(s.visible)) if (!['towns', 'district'].includes(id)) s.visible[id] = false;
        window.__cimMap.render(); }""")
    frame_after(page, count)
    name, x, y = visible_town_points(page, engine)[0]
    map_box = box(page, "#map")
    page.mouse.move(map_box["x"] + x, map_box["y"] + y)
    tooltip = page.locator(".deck-tooltip")
    page.wait_for_function("name => (document.querySelector('.deck-tooltip') || {}).innerText?.includes(name)",
                           arg=name, timeout=10_000)
    indicator = page.locator("#indicator-select option:checked").inner_text()
    assert tooltip.inner_text().startswith(f"街镇 · {name}\n{indicator}: ")

    # with the point layers drawn again, a click on a point's aggregate over a town selects the town
    count = renders(page)
    page.evaluate("() => { Object.assign(window.__cimMap.state.visible, window.__cimShown);"
                  " window.__cimMetrics.tilesLoaded = {}; window.__cimMap.render(); }")
    frame_after(page, count)
    page.wait_for_function("""() => { const s = window.__cimMap.state;
        return window.CIM_CONFIG.deck.layers.filter((l) => l['@@type'] === 'MVTLayer' && s.visible[l.id])
          .every((l) => window.__cimMetrics.tilesLoaded[l.id] !== undefined); }""", timeout=30_000)
    page.wait_for_timeout(300)
    spot = page.evaluate(POINT_OVER_TOWN)
    assert spot is not None, "no point aggregate over a town at the district zoom"
    page.mouse.move(map_box["x"] + spot["x"], map_box["y"] + spot["y"])
    page.wait_for_function("() => /×/.test((document.querySelector('.deck-tooltip') || {}).innerText || '')",
                           timeout=10_000)  # hover names the aggregate: the layer and its count
    page.mouse.click(map_box["x"] + spot["x"], map_box["y"] + spot["y"])
    panel = page.locator("#town-panel")
    panel.wait_for(state="visible", timeout=10_000)
    assert page.locator("#click-panel").is_hidden(), "a town click picks the town, never a point"
    assert page.locator("#town-title").inner_text() == spot["town"]
    assert page.evaluate("window.__cimMap.state.selectedTown") == spot["town"]
    page.wait_for_function("window.__cimMetrics.townPanel && window.__cimMetrics.townPanel.done", timeout=60_000)
    shown = page.evaluate("window.__cimMetrics.townPanel")
    listing = indicator_listing(service_url)
    assert [i["id"] for i in shown["indicators"]] == [i["id"] for i in listing], "every indicator of the town"
    assert [i["id"] for i in before] == [i["id"] for i in listing]
    for earlier, ind, got in zip(before, listing, shown["indicators"], strict=True):
        seen = (got["value"], got["target"], got["status"])
        assert seen in (town_row(earlier, spot["town"]), town_row(ind, spot["town"])), (ind["id"], seen)
    assert shown["chartsFailed"] == 0 and shown["charts"] + shown["chartsEmpty"] == len(listing), shown
    # a chart for every indicator whose trajectory holds a yearly value (a live one, e.g. the nodes online, has
    # none before its first readings: its slot says so instead)
    for ind, got in zip(listing, shown["indicators"], strict=True):
        traj = httpx.get(f"{service_url}/indicators/{ind['id']}/trajectory", params={"town": spot["town"]},
                         timeout=60).json()
        has_values = any(isinstance(v["value"], (int, float)) for a in traj["towns"] for v in a["values"])
        assert got["chart"] == has_values, ind["id"]
    assert shown["charts"] > 10, shown
    charts = page.locator("#town-list svg.trajectory")
    assert charts.count() == shown["charts"] > 0
    assert page.locator("#town-list svg.trajectory .target-line").count() == shown["charts"], "a target line each"
    assert page.locator("#town-list svg.trajectory .on-track, #town-list svg.trajectory .off-track").count() > 0
    assert any(f"/indicators/{i['id']}/trajectory?town=" in u for u in log.requests for i in listing[:1])
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts / "map-town-panel.png"))
    gaps = page.locator("#town-list .town-ind.status-not_met .gap")
    assert gaps.count() == sum(1 for i in listing for r in i["towns"] if r["town"] == spot["town"]
                               and r["status"] == "not_met"), "every missed target says its gap"
    assert log.errors() == []


@pytest.fixture(scope="module")
def real_addresses(engine, catalog, shared_data, tmp_path_factory):
    """The real (GCJ-02) address file ingested on top of the demo; its rows are removed afterwards.

    Rows whose address code the demo already holds are left out (a temporary copy of the file), so the
    ingest only inserts and the clean-up by batch leaves the demo exactly as it was.
    """
    source = shared_data / "addresses" / "minhang_addresses_gcj02.csv"
    with engine.connect() as conn:
        existing = set(conn.execute(sa.text("SELECT address_code FROM cim.addresses")).scalars())
    with open(source, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    fresh = [r for r in rows if not {address_code(parse_address(r[col], town_hint=r["street_level"] or None))
                                     for col in ("address", "complete_address")} & existing]
    assert len(fresh) > 1500
    path = tmp_path_factory.mktemp("real-addresses") / source.name
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(fresh)
    result = ingest_file(engine, catalog, "addresses", path)
    assert result.inserted > 1000 and result.updated == 0, result
    yield path, result.batch_id
    spec = catalog.get("addresses")
    with engine.begin() as conn:  # leave the demo as it was for the other test modules
        conn.execute(sa.text(f"DELETE FROM {spec.qualified_table} WHERE batch_id = :b"), {"b": result.batch_id})
        conn.execute(sa.text("DELETE FROM cim_meta.ingest_batch WHERE id = :b"), {"b": result.batch_id})
        bump_version(conn, "addresses", spec.qualified_table)


def real_lane_address(path) -> tuple[str, float, float]:
    """A real address text naming road and lane only (弄), with its WGS84 position from the GCJ-02 file."""
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parsed = parse_address(row["address"], town_hint=row["street_level"])
            if parsed.road and parsed.lane and not parsed.number and row["address"].endswith("弄"):
                lon, lat = gcj02_to_wgs84(float(row["lng"]), float(row["lat"]))
                if 121.3 < lon < 121.55:
                    return row["address"], float(lon), float(lat)
    raise AssertionError("no road+lane address in the real file")


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    kx = 111_320 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot((lon1 - lon2) * kx, (lat1 - lat2) * 110_540)


def test_search_flies_to_a_real_address(map_page, service_url, real_addresses, artifacts):
    page, log = map_page
    path, _ = real_addresses
    text, lon, lat = real_lane_address(path)
    open_map(page, f"{service_url}/map")
    start = page.evaluate("window.__cimMap.viewState()")
    assert metres(start["longitude"], start["latitude"], lon, lat) > 1000
    page.locator("#search-input").fill(text)
    page.locator("#search-go").click()
    page.wait_for_function(
        "([lon, lat]) => { const v = window.__cimMap.viewState();"
        " return v.zoom > 16 && Math.abs(v.longitude - lon) < 0.01 && Math.abs(v.latitude - lat) < 0.01; }",
        arg=[lon, lat], timeout=10_000)
    page.wait_for_timeout(1200)  # end of the fly-to transition
    view = page.evaluate("window.__cimMap.viewState()")
    assert metres(view["longitude"], view["latitude"], lon, lat) < 150, (text, view, lon, lat)
    first = page.locator("#search-results li").first.inner_text()
    assert parse_address(text).road in first and f"{parse_address(text).lane}弄" in first
    page.screenshot(path=str(artifacts / "map-search.png"))
    assert log.errors() == []
    assert log.foreign_hosts() == set()


def test_api_key_is_sent_with_tile_requests(map_page, service_url, engine):
    page, log = map_page
    key = create_api_key(engine, "map-browser-officer", "officer")
    open_map(page, f"{service_url}/map")
    assert page.locator("#toggle-people").count() == 0, "without a key the page does not name restricted layers"
    page.locator("#api-key").fill(key)
    page.locator("#api-key").dispatch_event("change")
    page.wait_for_function(UNLOCKED_PEOPLE)
    page.evaluate("window.__cimMap.state.visible.people = true; window.__cimMap.render()")
    page.wait_for_function("window.__cimMetrics.tilesLoaded.people !== undefined", timeout=15_000)
    people = {u: s for u, s in log.tile_statuses().items() if "/collections/people/" in u}
    # people tiles start at min_zoom 15: at district zoom there may be none; zoom in on a resident
    if not people:
        with engine.connect() as conn:
            x, y = conn.execute(sa.text("SELECT ST_X(geom), ST_Y(geom) FROM cim.people ORDER BY id LIMIT 1")).one()
        page.evaluate("([x, y]) => window.updateDeck({initialViewState: {longitude: x, latitude: y, zoom: 15.5}},"
                      " window.__cimMap.deck)", [x, y])
        page.wait_for_function("Object.keys(window.__cimMetrics.tilesLoaded).includes('people')")
        page.wait_for_timeout(1500)
        people = {u: s for u, s in log.tile_statuses().items() if "/collections/people/" in u}
    assert people, "no tile of the restricted layer was requested"
    assert all(status in (200, 204) for status in people.values()), people
    assert all(log.request_headers[u].get("x-api-key") == key for u in people)
    assert any(status == 200 for status in people.values())
    assert log.errors() == []


def test_laptop_viewport_layout(browser, service_url, artifacts):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    log = attach_log(page)
    try:
        open_map(page, f"{service_url}/map")
        page.screenshot(path=str(artifacts / "map-1366x768.png"))
        map_box, layers, indicators = box(page, "#map"), box(page, "#layers-panel"), box(page, "#indicator-panel")
        assert map_box["width"] > 700 and map_box["height"] > 650
        assert layers["x"] + layers["width"] <= map_box["x"] + 1 <= indicators["x"]
        assert indicators["x"] + indicators["width"] <= 1366 + 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        assert log.errors() == []
    finally:
        context.close()


def test_gap_layer_and_density_raster(map_page, service_url, artifacts):
    page, log = map_page
    outputs = httpx.get(f"{service_url}/indicators/gaps", timeout=120).json()["outputs"]
    assert outputs["gap_camera_hex"]["features"] > 0
    open_map(page, f"{service_url}/map")
    page.locator("#toggle-camera_density_raster").wait_for(timeout=10_000)
    count = renders(page)
    page.locator("#toggle-towns").uncheck()
    frame_after(page, count)
    plain = map_pixels(page, artifacts / "raster-before.png")

    page.locator("#toggle-camera_density_raster").check()
    page.wait_for_function("window.__cimMetrics.tilesLoaded.camera_density_raster !== undefined", timeout=30_000)
    count = renders(page)
    page.locator("#menu-camera_density_raster").click()
    page.locator("#opacity-camera_density_raster").fill("1")
    frame_after(page, count)
    raster = map_pixels(page, artifacts / "raster-camera-density.png")
    rasters = {u: s for u, s in log.tile_statuses().items() if "/rasters/camera_density/" in u}
    assert rasters and all(s in (200, 204) for s in rasters.values()) and 200 in rasters.values()
    viridis_low = (raster[..., 0] < 90) & (raster[..., 1] < 80) & (raster[..., 2] > 60)  # dark purple
    assert viridis_low.mean() > 0.05, "the density raster (viridis) is not drawn"
    assert changed_share(plain, raster) > 0.1

    page.locator("#toggle-camera_density_raster").uncheck()
    page.locator("#toggle-gap_camera_hex").check()
    page.wait_for_function("window.__cimMetrics.tilesLoaded.gap_camera_hex !== undefined", timeout=30_000)
    page.wait_for_timeout(300)
    hexes = map_pixels(page, artifacts / "gap-camera-hex.png")
    assert changed_share(plain, hexes) > 0.1, "the H3 camera-gap layer is not drawn"
    pinkish = (hexes[..., 0] > 200) & (hexes[..., 1] > 120) & (hexes[..., 1] < 215) & (hexes[..., 2] < 215)
    assert pinkish.mean() > 0.05
    hex_tiles = {u: s for u, s in log.tile_statuses().items() if "/collections/gap_camera_hex/" in u}
    assert hex_tiles and 200 in hex_tiles.values()
    assert log.errors() == []
    assert log.foreign_hosts() == set()


def test_resident_attributes_need_an_authorised_key(map_page, service_url, engine, artifacts):
    page, log = map_page
    key = create_api_key(engine, "map-click-officer", "officer")
    with engine.connect() as conn:
        # a resident alone within ~20 m: residents of one building share its point, and a click picks the top one
        person = conn.execute(sa.text(
            "SELECT id, name, ST_X(geom) AS x, ST_Y(geom) AS y FROM cim.people p "
            "WHERE feature_key NOT LIKE 'ftest-%' AND feature_key NOT LIKE 'tiletest-%' AND NOT EXISTS ("
            "SELECT 1 FROM cim.people o WHERE o.id <> p.id AND ST_DWithin(o.geom, p.geom, 0.0002)) "
            "ORDER BY id LIMIT 1")).one()
    open_map(page, f"{service_url}/map")
    anonymous = page.evaluate("id => fetch(`/collections/people/items/${id}`).then(r => r.status)", person.id)
    assert anonymous in (401, 403, 404), "an anonymous caller must not read a restricted layer"
    page.locator("#api-key").fill(key)
    page.locator("#api-key").dispatch_event("change")
    page.wait_for_function(UNLOCKED_PEOPLE)
    page.evaluate("""([x, y]) => { const s = window.__cimMap.state;
        for (const id of Object.keys(s.visible)) s.visible[id] = ['people', 'district'].includes(id);
        window.__cimMetrics.tilesLoaded = {};
        window.__cimMap.render();
        window.updateDeck({initialViewState: {longitude: x, latitude: y, zoom: 17}}, window.__cimMap.deck); }""",
                  [person.x, person.y])
    page.wait_for_function("window.__cimMetrics.tilesLoaded.people !== undefined", timeout=30_000)
    count = renders(page)
    page.wait_for_function("n => window.__cimMetrics.renders > n", arg=count - 1)
    x, y = project(page, person.x, person.y)
    map_box = box(page, "#map")
    page.mouse.click(map_box["x"] + x, map_box["y"] + y)
    page.locator("#click-panel").wait_for(state="visible", timeout=10_000)
    assert page.locator("#click-title").inner_text().startswith("实有人口")
    page.wait_for_function("name => document.querySelector('#click-table').innerText.includes(name)",
                           arg=person.name, timeout=10_000)
    assert f"姓名\t{person.name}" in page.locator("#click-table").inner_text()
    item_requests = [u for u in log.requests if f"/collections/people/items/{person.id}" in u]
    assert item_requests and all(log.request_headers[u].get("x-api-key") == key for u in item_requests
                                 if log.responses.get(u) == 200)
    page.screenshot(path=str(artifacts / "map-click-resident.png"))
    refused = "the server responded with a status of 40"  # the anonymous probe above, nothing else
    assert [e for e in log.errors() if refused not in e] == []
    assert sum(refused in e for e in log.errors()) == 1
