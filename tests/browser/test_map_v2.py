"""The map's 3D view, controls, time slider and operations screen in headless Chromium (demo database)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cim_service.core.settings import Settings
from tests.browser.conftest import attach_log, open_map, serve
from tests.browser.pixels import changed_share, rgb
from tests.browser.test_map_browser import town_points

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def history_service_url(throwaway_database, catalog, tmp_path_factory) -> Iterator[str]:
    """The service on a database holding the demo's yearly history 2020 → 2025 (the time slider's years)."""
    import sqlalchemy as sa

    from pipelines.demo import load_demo

    with throwaway_database("maphistory") as url:
        engine = sa.create_engine(url)
        try:
            load_demo(engine, catalog, "small", history=True)
        finally:
            engine.dispose()
        settings = Settings(database_url=url, environment="test", home=tmp_path_factory.mktemp("cim-map-history"),
                            log_json=False)
        yield from serve(settings)


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
    # the vector layers come bundled from the multi-layer tiles: the data over the choropleth and the basemap under
    # it, one request per tile each, as many as the 2D view asks at most
    assert 0 < len(tiles) <= 54 and got["tileRequests"] <= 54, f"{len(tiles)} tile requests for the 3D view"
    bundles = [parse_qs(urlsplit(url).query).get("collections", [""])[0].split(",") for url in tiles]
    assert all(urlsplit(url).path.startswith("/tiles/WebMercatorQuad/") for url in tiles), "one layer's own tiles"
    assert any(status == 200 and extruded[0] in members for (url, status), members in zip(tiles.items(), bundles,
                                                                                       strict=True)), \
        "no tile of the extruded layer had features"
    assert set(basemap) <= {m for members in bundles for m in members}
    assert all(status in (200, 204) for status in tiles.values())

    # the buildings are what stands out: hiding them changes a good part of the picture
    before = metrics(page)["renders"]
    # (the areas and lines over the choropleth come in one bundle: without the buildings it is asked anew; the
    # points have a bundle of their own)
    others = page.evaluate("""([hidden, basemap]) => window.CIM_CONFIG.deck.layers.filter((l) =>
        l['@@type'] === 'MVTLayer' && window.__cimMap.state.visible[l.id] && !hidden.includes(l.id)
        && !basemap.includes(l.id) && !window.__cimMap.state.layers[l.id].is_point).map((l) => l.id)""",
                           [extruded, basemap])
    page.evaluate("([ids, others]) => { ids.forEach((id) => { window.__cimMap.state.visible[id] = false; });"
                  " others.forEach((id) => { delete window.__cimMetrics.tilesLoaded[id]; });"
                  " window.__cimMap.render(); }", [extruded, others])
    page.wait_for_function("n => window.__cimMetrics.renders > n", arg=before)
    page.wait_for_function("ids => ids.every((id) => window.__cimMetrics.tilesLoaded[id] !== undefined)",
                           arg=others, timeout=30_000)  # the rest of the picture is back
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


def test_3d_view_over_xinzhuang_shows_its_blocks(map_page, service_url, demo_database_url, catalog, artifacts):
    """Over 莘庄镇's buildings the 3D view shows continuous blocks of white models, not a few scattered boxes."""
    import sqlalchemy as sa

    spec = next(s for s in catalog if s.extruded)
    engine = sa.create_engine(demo_database_url)
    try:
        with engine.connect() as conn:
            lon, lat = conn.execute(sa.text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ST_X(ST_Centroid(geom))), "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY ST_Y(ST_Centroid(geom))) "
                f"FROM {spec.qualified_table} WHERE town = '莘庄镇'")).one()
    finally:
        engine.dispose()
    page, log = map_page
    open_map(page, f"{service_url}/map?view=3d", timeout_ms=60_000)
    page.evaluate("v => window.updateDeck({ initialViewState: v }, window.__cimMap.deck)",
                  {"longitude": lon, "latitude": lat, "zoom": 16.2, "pitch": 55, "bearing": -25})
    wait_view(page, f"Math.abs(v.zoom - 16.2) < 0.01 && Math.abs(v.longitude - {lon}) < 1e-4")
    page.wait_for_function("id => window.__cimMetrics.tilesLoaded[id] !== undefined", arg=spec.id, timeout=30_000)
    page.wait_for_timeout(1500)
    shot = rgb(page.locator("#map").screenshot(path=str(artifacts / "map-3d-xinzhuang.png")))
    before = metrics(page)["renders"]
    page.evaluate("id => { window.__cimMap.state.visible[id] = false; window.__cimMap.render(); }", spec.id)
    page.wait_for_function("n => window.__cimMetrics.renders > n", arg=before)
    page.wait_for_timeout(800)
    flat = rgb(page.locator("#map").screenshot(path=str(artifacts / "map-3d-xinzhuang-without-buildings.png")))
    assert log.errors() == []
    # the buildings fill a good part of the picture over the town's blocks (a sparse scatter fills a few %)
    assert changed_share(shot, flat) > 0.06, changed_share(shot, flat)


def test_map_refuses_an_unknown_view_or_screen(service_url):
    for query, name in (("view=4d", "view"), ("screen=wall", "screen")):
        response = httpx.get(f"{service_url}/map?{query}", timeout=10)
        assert response.status_code == 400, query
        assert f"'{name}'" in response.text


def test_controls_zoom_compass_scale_and_the_layer_menu(map_page, service_url, artifacts):
    page, log = map_page
    open_map(page, f"{service_url}/map")
    got = metrics(page)
    zoom0, bar0 = got["view"]["zoom"], got["scaleBar"]
    # the scale bar is a round length drawn at its true width for the view's latitude and zoom
    mpp = page.evaluate("(() => { const v = window.__cimMap.deck.getViewports()[0];"
                        " return 1 / (v.getDistanceScales().unitsPerMeter[0] * v.scale); })()")
    assert abs(bar0["px"] * mpp - bar0["metres"]) / bar0["metres"] < 0.02, (bar0, mpp)
    assert page.locator("#scale-label").inner_text() == bar0["label"]
    assert abs(page.locator("#scale-line").bounding_box()["width"] - bar0["px"]) <= 1

    page.locator("#zoom-in").click()
    wait_view(page, f"Math.abs(v.zoom - {zoom0 + 1}) < 0.01")
    bar1 = metrics(page)["scaleBar"]
    ratio = (bar1["px"] / bar1["metres"]) / (bar0["px"] / bar0["metres"])
    assert abs(ratio - 2) < 0.1, f"one zoom level in doubles the pixels per metre: {bar0} -> {bar1}"
    page.locator("#zoom-out").click()
    wait_view(page, f"Math.abs(v.zoom - {zoom0}) < 0.01")

    # rotate the map: the compass needle follows; a click on it turns the map north again
    page.evaluate("window.updateDeck({ initialViewState: Object.assign(window.__cimMap.viewState(),"
                  " { bearing: 40 }) }, window.__cimMap.deck)")
    wait_view(page, "Math.abs(v.bearing - 40) < 0.5")
    page.wait_for_timeout(200)
    assert "rotate(-40" in page.locator("#compass-needle").get_attribute("style")
    page.screenshot(path=str(artifacts / "map-controls-rotated.png"))
    page.locator("#compass").click()
    wait_view(page, "Math.abs(v.bearing) < 0.01")

    # opacity sits behind each layer's menu: no slider shows until the menu is opened
    sliders = page.locator(".layer-row input[type=range]")
    assert sliders.count() > 5
    assert all(not sliders.nth(i).is_visible() for i in range(sliders.count()))
    first = page.locator(".layer-menu-button").first
    first.click()
    assert first.get_attribute("aria-expanded") == "true"
    assert sum(sliders.nth(i).is_visible() for i in range(sliders.count())) == 1
    page.locator("#layers-panel").screenshot(path=str(artifacts / "map-layer-menu.png"))
    assert log.errors() == []


def test_time_slider_plays_the_years_with_at_on_tiles_and_indicators(browser, history_service_url, artifacts):
    service_url = history_service_url
    context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    try:
        _time_slider(page, log, service_url, artifacts)
    finally:
        context.close()
    assert log.foreign_hosts() == set()


def _time_slider(page, log, service_url, artifacts):
    open_map(page, f"{service_url}/map")
    history = page.evaluate("window.CIM_CONFIG.layers.filter((l) => l.history && l.history_begins"
                            " && Date.parse(l.history_begins) <= Date.parse('2020-12-31T23:59:59+08:00'))"
                            ".map((l) => l.id)")
    derived = config_ids(page, "!l.history")
    assert history and derived, "the demo keeps history from 2020 on; its gap layers keep none"
    indicator = page.evaluate("window.__cimMap.state.indicatorId")
    now_value = page.evaluate("(() => { const s = window.__cimMap.state;"
                              " return s.indicators.find((i) => i.id === s.indicatorId).value; })()")
    assert page.locator("#time-label").inner_text() == "现在"
    summary_now = page.locator("#indicator-summary .big").inner_text()

    page.locator("#time-slider").fill("0")  # the first year
    page.wait_for_function("window.__cimMetrics.indicatorAtRequests >= 1", timeout=30_000)
    page.wait_for_function("window.__cimMetrics.atTileRequests > 0", timeout=30_000)
    assert page.locator("#time-label").inner_text() == "2020"
    assert metrics(page)["at"] == "2020-12-31"
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "map-time-2020.png"))
    at_tiles = [u for u in log.requests if "/tiles/" in u and "at=2020-12-31" in u]
    assert at_tiles, "no tile was asked as of 2020"
    assert all(any(f"/collections/{h}/" in u for h in history) for u in at_tiles), "at= on a layer without history"
    assert f"/indicators/{indicator}?at=2020-12-31" in "".join(log.requests)
    past = httpx.get(f"{service_url}/indicators/{indicator}?at=2020-12-31", timeout=30).json()
    shown = page.evaluate("(() => { const s = window.__cimMap.state;"
                          " return s.indicatorAt[`${s.indicatorId}@2020-12-31`].value; })()")
    assert shown == past["value"]
    assert past["value"] != now_value, "the demo's default indicator grows from 2020 to 2025"
    page.wait_for_function("t => document.querySelector('#indicator-summary .big').innerText !== t", arg=summary_now)
    statuses = {u: s for u, s in log.tile_statuses().items() if "at=" in u}
    assert statuses and all(s in (200, 204) for s in statuses.values()), statuses

    # play runs 2020 → 2025, one year after the other
    page.evaluate("window.__cimSeen = []; setInterval(() => window.__cimSeen.push(window.__cimMetrics.at), 100)")
    page.locator("#time-play").click()
    page.wait_for_function("window.__cimSeen.includes('2025-12-31')", timeout=30_000)
    seen = [d for d in dict.fromkeys(page.evaluate("window.__cimSeen")) if d]
    assert seen == [f"{y}-12-31" for y in range(2020, 2026)], seen
    page.locator("#time-slider").fill(page.locator("#time-slider").get_attribute("max"))
    assert metrics(page)["at"] is None and page.locator("#time-label").inner_text() == "现在"
    assert log.errors() == []


def test_ops_screen_kpis_equal_the_indicators(browser, service_url, artifacts):
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    try:
        open_map(page, f"{service_url}/map?screen=ops", timeout_ms=60_000)
        page.wait_for_function("window.__cimMetrics.kpis.length > 0")
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "map-ops-1920x1080.png"))
        kpis = metrics(page)["kpis"]
        indicators = httpx.get(f"{service_url}/indicators", timeout=30).json()["indicators"]
        assert [(k["id"], k["value"], k["target"], k["status"]) for k in kpis] == \
            [(i["id"], i["value"], i["target"], i["status"]) for i in indicators]
        cards = page.locator(".kpi-card")
        assert cards.count() == len(indicators)
        assert page.locator("#layers-panel").is_hidden() and page.locator("#indicator-panel").is_hidden()
        # legible across a room: large type, light on dark
        size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.kpi-value')).fontSize)")
        assert size >= 36
        bg = page.evaluate("getComputedStyle(document.querySelector('#kpi-panel')).backgroundColor")
        assert sum(int(c) for c in bg[bg.index("(") + 1:bg.index(")")].split(",")[:3]) < 150, bg
        for i in range(cards.count()):
            b = cards.nth(i).bounding_box()
            assert b["y"] + b["height"] <= 1080, "a KPI card falls below the screen"
        # a grid of 3 columns (the column beside the map), nothing cut off: no card and not the panel overflows
        layout = page.evaluate("""() => {
            const cards = [...document.querySelectorAll('.kpi-card')], panel = document.getElementById('kpi-panel');
            const grid = getComputedStyle(document.getElementById('kpi-list')).gridTemplateColumns;
            return { columns: grid.split(' ').length,
                     lefts: new Set(cards.map((c) => Math.round(c.getBoundingClientRect().left))).size,
                     overflowing: cards.filter((c) => c.scrollWidth > c.clientWidth || c.scrollHeight > c.clientHeight)
                       .map((c) => c.dataset.indicator),
                     panel: panel.scrollHeight <= panel.clientHeight && panel.scrollWidth <= panel.clientWidth,
                     title: parseFloat(getComputedStyle(document.querySelector('.kpi-title')).fontSize) }; }""")
        assert layout["columns"] == 3 and layout["lefts"] == 3, layout
        assert layout["overflowing"] == [] and layout["panel"], layout
        assert layout["title"] >= 18, layout
        assert 45 <= metrics(page)["view"]["pitch"] <= 60, "the operations screen shows the 3D map"
        assert log.errors() == [] and log.foreign_hosts() == set()
    finally:
        context.close()


#: the operations screen's layout: the boxes (page pixels) of the map, the KPI cards (the plan's and the active
#: alerts'), the live feed and what lies over the map (map pixels), and the font sizes of the cards and the feed
OPS_LAYOUT = """() => {
  const rect = (el) => { const r = el.getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom }; };
  const size = (el) => parseFloat(getComputedStyle(el).fontSize);
  const all = (s) => [...document.querySelectorAll(s)].filter((e) => e.getClientRects().length);
  const map = document.getElementById('map'), m = map.getBoundingClientRect();
  const cards = all('.kpi-card, .kpi-alerts-card');
  const rows = all('#alert-panel .alert-row, #alert-panel .alert-none');
  return {
    map: rect(map), cards: cards.map((c) => Object.assign(rect(c), { id: c.dataset.indicator || c.id })),
    feed: rect(document.getElementById('alert-panel')),
    overlays: [...map.children]
      .filter((el) => !['deck-container', 'status'].includes(el.id) && !el.hidden
        && el.getBoundingClientRect().width > 0)
      .map((el) => { const r = el.getBoundingClientRect();
        return { id: el.id, left: r.left - m.left, top: r.top - m.top, right: r.right - m.left,
                 bottom: r.bottom - m.top }; }),
    values: Math.min(...cards.map((c) => size(c.querySelector('.kpi-value')))),
    titles: Math.min(...cards.map((c) => size(c.querySelector('.kpi-title')))),
    feet: Math.min(...cards.map((c) => size(c.querySelector('.kpi-foot')))),
    rows: rows.map(size), rowHeights: rows.map((r) => r.getBoundingClientRect().height),
    clipped: cards.filter((c) => c.scrollWidth > c.clientWidth || c.scrollHeight > c.clientHeight).map((c) => c.id
      || c.dataset.indicator),
  };
}"""


def _overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1600, 900), (2560, 1440)])
def test_ops_screen_gives_the_map_most_of_the_screen(browser, service_url, engine, artifacts, width, height):
    """The operations screen at a wall's sizes: the 3D map the largest area with the whole district in it, clear
    of what lies over the map; the KPI cards in the column beside it, none over the map or another, their type
    (made for 1920×1080, scaled with the screen) readable across a room; the live feed under them."""
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    try:
        open_map(page, f"{service_url}/map?screen=ops", timeout_ms=60_000)
        page.wait_for_function("window.__cimMetrics.kpis.length > 0 && document.querySelector('#kpi-alerts .kpi-value')"
                               " && document.querySelector('#legend .legend-title')", timeout=20_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / f"ops-{width}x{height}.png"))
        got = page.evaluate(OPS_LAYOUT)
        scale = min(width / 1920, height / 1080)  # the screen's type is made for 1920×1080

        # the map is the largest part of the screen
        mp = got["map"]
        share = (mp["right"] - mp["left"]) * (mp["bottom"] - mp["top"]) / (width * height)
        assert share >= 0.55, f"the map takes {share:.0%} of the screen"
        assert 45 <= metrics(page)["view"]["pitch"] <= 60, "the 3D map at the ops camera"

        # every plan indicator has a card, and the active alerts one; none lies over the map, another card or
        # beyond the screen, and none cuts off its text
        cards = got["cards"]
        assert len(cards) == len(metrics(page)["kpis"]) + 1, [c["id"] for c in cards]
        for i, c in enumerate(cards):
            assert not _overlap(c, mp), f"the card {c['id']} lies over the map: {c} {mp}"
            assert 0 <= c["left"] and c["right"] <= width and 0 <= c["top"] and c["bottom"] <= height, c
            for d in cards[i + 1:]:
                assert not _overlap(c, d), f"the cards {c['id']} and {d['id']} overlap"
        assert got["clipped"] == [], got["clipped"]
        assert got["values"] >= 36 * scale - 0.5 and got["titles"] >= 18 * scale - 0.5, got
        assert got["feet"] >= 18 * scale - 0.5, got

        # the live feed: beside the map, under the cards, its lines as large as the cards' titles
        feed = got["feed"]
        assert not _overlap(feed, mp), f"the live feed lies over the map: {feed}"
        assert all(not _overlap(feed, c) for c in cards)
        assert feed["bottom"] <= height and feed["bottom"] - feed["top"] >= 150 * scale, feed
        assert got["rows"] and min(got["rows"]) >= 18 * scale - 0.5, got["rows"]

        # the whole district in the map at the ops camera: every town's point on the map, under no overlay
        width_map, height_map = mp["right"] - mp["left"], mp["bottom"] - mp["top"]
        for name, lon, lat in town_points(engine):
            x, y = page.evaluate("([lon, lat]) => window.__cimMap.deck.getViewports()[0].project([lon, lat])",
                                 [lon, lat])
            assert 0 < x < width_map and 0 < y < height_map, f"{name} is off the map at {x:.0f},{y:.0f}"
            for o in got["overlays"]:
                assert not (o["left"] <= x <= o["right"] and o["top"] <= y <= o["bottom"]), \
                    f"{name} at {x:.0f},{y:.0f} lies under #{o['id']}"
        # the district's box fills the free part of the map (the opening camera is fitted, not left near one town)
        fit = metrics(page)["opsFit"]
        free, district = fit["free"], fit["box"]
        fill = max((district["right"] - district["left"]) / (free["right"] - free["left"]),
                   (district["bottom"] - district["top"]) / (free["bottom"] - free["top"]))
        assert 0.85 <= fill <= 1.0, (fill, district, free)
        assert log.errors() == [] and log.foreign_hosts() == set()
    finally:
        context.close()
