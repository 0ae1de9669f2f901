"""The live map in headless Chromium against a service running the MQTT bridge: a reading published with
``mosquitto_pub`` turns a sensor red and puts its alert in the panel within 2 s; a click on the alert flies
to it; the reading falling back turns it green and empties the panel. In the 3D view, where the sensors are drawn
from the multi-layer tile bundle, the same readings recolour them by a repaint, no tile fetched again. The
operations screen shows the live feed and the active-alerts card. Screenshots in test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from cim_service.core.settings import Settings
from tests.alerts.conftest import fresh_sensor
from tests.browser.conftest import attach_log, open_map
from tests.browser.pixels import patch, rgb
from tests.live.conftest import (
    depth_sensors,  # noqa: F401 - fixture: the demo's depth sensors
    publish,
)
from tests.routes.serving import in_thread

LAYER = "waterlogging_sensors"


@pytest.fixture(scope="module")
def live_url(settings: Settings, demo_database_url: str, mqtt_url: str, tmp_path_factory) -> Iterator[str]:
    live = settings.model_copy(update={
        "sensor_batch_wait_ms": 20, "sensor_rate_per_s": 1000.0, "sensor_rate_burst": 10_000.0,
        "sensor_bridge": True, "mqtt_url": mqtt_url, "home": tmp_path_factory.mktemp("cim-live-map"),
        "gap_refresh": False, "log_json": False})
    with in_thread(live, ready="/map") as url:
        yield url


@pytest.fixture(scope="module")
def live_page(browser, live_url: str):
    """One page load of /map on the live service for the module: ``(page, log)``."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    open_map(page, f"{live_url}/map", timeout_ms=60_000)
    page.wait_for_function("window.__cimMetrics.live && window.__cimMetrics.live.connected", timeout=20_000)
    yield page, log
    context.close()


@pytest.fixture(scope="module")
def live_page_3d(browser, live_url: str):
    """One page load of the 3D view (/map?view=3d) on the live service for the module: ``(page, log)``."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    open_map(page, f"{live_url}/map?view=3d", timeout_ms=60_000)
    page.wait_for_function("window.__cimMetrics.live && window.__cimMetrics.live.connected", timeout=20_000)
    yield page, log
    context.close()


def _reading(value: float) -> str:
    return json.dumps({"result": value, "phenomenonTime": datetime.now(UTC).isoformat()})


def _sensor_pixels(page, lon: float, lat: float):
    x, y = page.evaluate(f"window.__cimMap.deck.getViewports()[0].project([{lon}, {lat}])")
    shot = rgb(page.locator("#deck-container").screenshot())
    return patch(shot, x, y, r=1), shot


def _is(colour, pixels, tolerance: int = 40) -> bool:
    """Whether the pixels around the sensor hold ``colour`` (RGB, within ``tolerance``)."""
    return bool((abs(pixels - colour[:3]) <= tolerance).all(axis=-1).any())


def _wait_refetched(page, since_ms: float, timeout_ms: int) -> None:
    page.wait_for_function(
        f"(() => {{ const m = window.__cimMetrics; const r = m.live.refetchedAt['{LAYER}'];"
        f" return r > {since_ms} && m.tilesLoaded['{LAYER}'] > r; }})()", timeout=timeout_ms)


def test_a_published_alarm_turns_the_sensor_red_and_lists_its_alert_within_2_s(live_page, live_url, mqtt_url,
                                                                                engine, depth_sensors, artifacts):  # noqa: F811
    page, log = live_page
    ds, fid, _ = fresh_sensor(engine, depth_sensors)
    item = httpx.get(f"{live_url}/collections/{LAYER}/items/{fid}", params={"f": "json"}, timeout=20).json()
    lon, lat = item["geometry"]["coordinates"]
    assert item["properties"]["status"] == "offline"  # never reported
    # only the sensors over the towns, close to this one
    page.evaluate(f"""(() => {{ const s = window.__cimMap.state;
        for (const id of Object.keys(s.visible)) if (s.layers[id] && !s.layers[id].live && s.layers[id].is_point)
          s.visible[id] = false;
        s.visible['{LAYER}'] = true; window.__cimMap.render();
        window.updateDeck({{ initialViewState: {{ longitude: {lon}, latitude: {lat}, zoom: 16, pitch: 0,
          bearing: 0 }} }}, window.__cimMap.deck); }})()""")
    page.wait_for_function(f"window.__cimMetrics.view && Math.abs(window.__cimMetrics.view.zoom - 16) < 0.01 "
                           f"&& window.__cimMetrics.tilesLoaded['{LAYER}'] > 0", timeout=20_000)
    page.wait_for_timeout(500)
    colours = page.evaluate("window.__cimMetrics.live.statusColours")
    before, _ = _sensor_pixels(page, lon, lat)
    assert _is(colours["offline"], before), before.tolist()

    since = page.evaluate("performance.now()")
    start = time.monotonic()
    publish(mqtt_url, ds, _reading(42.5))
    page.wait_for_function(
        f"window.__cimMetrics.live.alerts.some((a) => a.datastream === {ds} && a.severity === 'alarm')",
        timeout=2000)
    _wait_refetched(page, since, timeout_ms=max(1, int(2000 - 1000 * (time.monotonic() - start))))
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, elapsed
    page.wait_for_timeout(150)  # the frame with the new tiles
    after, shot = _sensor_pixels(page, lon, lat)
    page.locator("#map").screenshot(path=str(artifacts / "map-live-alarm.png"))
    assert _is(colours["alarm"], after) and not _is(colours["offline"], after), after.tolist()
    row = page.locator("#alert-panel .alert-row.severity-alarm").first
    text = row.inner_text()
    assert "42.5 cm" in text and "积水监测设备" in text, text
    assert page.locator("#alert-panel .live-legend-item").count() == 4

    # a click on the alert flies back to it from elsewhere
    page.evaluate("window.updateDeck({ initialViewState: { longitude: 121.30, latitude: 31.02, zoom: 11, pitch: 0,"
                  " bearing: 0 } }, window.__cimMap.deck)")
    page.wait_for_function("Math.abs(window.__cimMetrics.view.zoom - 11) < 0.01", timeout=10_000)
    row.click()
    page.wait_for_function(f"(() => {{ const v = window.__cimMetrics.view; return Math.abs(v.zoom - 16) < 0.05 "
                           f"&& Math.abs(v.longitude - {lon}) < 1e-4 && Math.abs(v.latitude - {lat}) < 1e-4; }})()",
                           timeout=10_000)

    # falling back: the alert clears, the sensor turns green
    since = page.evaluate("performance.now()")
    publish(mqtt_url, ds, _reading(1.0))
    page.wait_for_function(f"!window.__cimMetrics.live.alerts.some((a) => a.datastream === {ds})", timeout=5000)
    _wait_refetched(page, since, timeout_ms=5000)
    page.wait_for_timeout(400)
    cleared, _ = _sensor_pixels(page, lon, lat)
    page.locator("#map").screenshot(path=str(artifacts / "map-live-cleared.png"))
    assert _is(colours["ok"], cleared) and not _is(colours["alarm"], cleared), cleared.tolist()
    assert log.errors() == [] and log.foreign_hosts() == set()


def _layer_tile_requests(log) -> int:
    """Tile requests that carried the sensor layer (its own tiles or a bundle naming it)."""
    return sum(1 for url in log.requests if "/tiles/" in url and LAYER in url)


def _wait_repainted(page, version: int, timeout_ms: int) -> None:
    """Wait until the live state changed after ``version`` and the 3D view's sensors were drawn at it."""
    page.wait_for_function(f"(() => {{ const m = window.__cimMetrics.live; return m.statusVersion > {version} "
                           f"&& m.paintedVersion === m.statusVersion; }})()", timeout=timeout_ms)


def test_in_the_3d_view_a_published_alarm_repaints_the_bundled_sensor_red_then_green(
        live_page_3d, live_url, mqtt_url, engine, depth_sensors, artifacts):  # noqa: F811
    page, log = live_page_3d
    ds, fid, _ = fresh_sensor(engine, depth_sensors)
    item = httpx.get(f"{live_url}/collections/{LAYER}/items/{fid}", params={"f": "json"}, timeout=20).json()
    lon, lat = item["geometry"]["coordinates"]
    assert item["properties"]["status"] == "offline"  # never reported
    # only the sensors among the points, pitched over them
    page.evaluate(f"""(() => {{ const s = window.__cimMap.state;
        for (const id of Object.keys(s.visible)) if (s.layers[id] && !s.layers[id].live && s.layers[id].is_point)
          s.visible[id] = false;
        s.visible['{LAYER}'] = true; window.__cimMap.render();
        window.updateDeck({{ initialViewState: {{ longitude: {lon}, latitude: {lat}, zoom: 16, pitch: 45,
          bearing: 0 }} }}, window.__cimMap.deck); }})()""")
    page.wait_for_function(f"window.__cimMetrics.view && Math.abs(window.__cimMetrics.view.zoom - 16) < 0.01 "
                           f"&& window.__cimMetrics.tilesLoaded['{LAYER}'] > 0", timeout=20_000)
    page.wait_for_timeout(500)
    drawn = page.evaluate("window.__cimMap.deck.props.layers.filter((l) => (l.props.members || []).includes("
                          f"'{LAYER}')).map((l) => l.id)")
    assert drawn, "the 3D view draws the sensors from a tile bundle"
    assert LAYER not in page.evaluate("window.__cimMap.deck.props.layers.map((l) => l.id)")
    colours = page.evaluate("window.__cimMetrics.live.statusColours")
    before, _ = _sensor_pixels(page, lon, lat)
    assert _is(colours["offline"], before), before.tolist()
    requests = _layer_tile_requests(log)

    version = page.evaluate("window.__cimMetrics.live.statusVersion")
    publish(mqtt_url, ds, _reading(42.5))
    page.wait_for_function(
        f"window.__cimMetrics.live.alerts.some((a) => a.datastream === {ds} && a.severity === 'alarm')",
        timeout=10_000)
    _wait_repainted(page, version, timeout_ms=10_000)
    page.wait_for_timeout(150)  # the frame of the repaint
    after, _ = _sensor_pixels(page, lon, lat)
    page.locator("#map").screenshot(path=str(artifacts / "map-3d-live-alarm.png"))
    assert _is(colours["alarm"], after) and not _is(colours["offline"], after), after.tolist()

    # falling back: the alert clears, the sensor turns green
    version = page.evaluate("window.__cimMetrics.live.statusVersion")
    publish(mqtt_url, ds, _reading(1.0))
    page.wait_for_function(f"!window.__cimMetrics.live.alerts.some((a) => a.datastream === {ds})", timeout=10_000)
    _wait_repainted(page, version, timeout_ms=10_000)
    page.wait_for_timeout(150)
    cleared, _ = _sensor_pixels(page, lon, lat)
    page.locator("#map").screenshot(path=str(artifacts / "map-3d-live-cleared.png"))
    assert _is(colours["ok"], cleared) and not _is(colours["alarm"], cleared), cleared.tolist()
    assert _layer_tile_requests(log) == requests, "the sensors were repainted, not fetched again"
    assert log.errors() == [] and log.foreign_hosts() == set()


def test_the_ops_screen_shows_the_live_feed_and_the_active_alerts_card(browser, live_url, mqtt_url, engine,
                                                                      depth_sensors, artifacts):  # noqa: F811
    ds, fid, _ = fresh_sensor(engine, depth_sensors)
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    try:
        open_map(page, f"{live_url}/map?screen=ops", timeout_ms=60_000)
        page.wait_for_function("window.__cimMetrics.live.connected && window.__cimMetrics.kpis.length > 0",
                               timeout=20_000)
        before = page.evaluate("window.__cimMetrics.live.activeAlerts")
        version = page.evaluate("window.__cimMetrics.live.statusVersion")
        publish(mqtt_url, ds, _reading(20.0))  # a warning
        page.wait_for_function(f"window.__cimMetrics.live.alerts.some((a) => a.datastream === {ds})", timeout=5000)
        # the screen's 3D bundles repaint their sensors: this one is drawn in the warning colour
        _wait_repainted(page, version, timeout_ms=10_000)
        drawn = page.evaluate(f"""window.__cimMap.deck.layerManager.getLayers()
            .filter((l) => l.id.startsWith('__tiles_') && l.id.endsWith('-{LAYER}'))
            .map((l) => l.props.getFillColor({{ properties: {{ id: {fid}, status: 'offline' }} }}))""")
        colours = page.evaluate("window.__cimMetrics.live.statusColours")
        assert drawn and all(c == colours["warning"] for c in drawn), drawn[:3]
        active = httpx.get(f"{live_url}/alerts", params={"limit": 1000}, timeout=20).json()["numberMatched"]
        page.wait_for_function(f"window.__cimMetrics.live.activeAlerts === {active}", timeout=5000)
        assert active == before + 1
        card = page.locator("#kpi-alerts")
        assert card.locator(".kpi-value").inner_text() == str(active)
        assert page.locator("#live-ops #alert-panel .alert-row.severity-warning").count() >= 1
        assert page.locator(".kpi-card").count() == len(page.evaluate("window.__cimMetrics.kpis"))
        # the feed is read across the room, beside the map (not over the district): its rows at 18 px, one line each
        row = page.evaluate("""() => { const r = document.querySelector('#live-ops .alert-row.severity-warning');
            const b = r.getBoundingClientRect(), m = document.getElementById('map').getBoundingClientRect();
            return { size: parseFloat(getComputedStyle(r).fontSize), height: b.height, left: b.left,
                     site: parseFloat(getComputedStyle(r.querySelector('.alert-site')).fontSize),
                     mapRight: m.right, card: document.querySelector('#kpi-list > #kpi-alerts') !== null }; }""")
        assert row["size"] >= 18 and row["site"] >= 18, row
        assert row["height"] < 2 * row["size"] * 1.5, f"an alert takes more than one line: {row}"
        assert row["left"] >= row["mapRight"], f"the feed lies over the map: {row}"
        assert row["card"], "the active-alerts card is one of the KPI grid's"
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "map-live-ops-1920x1080.png"))
        page.screenshot(path=str(artifacts / "ops-1920x1080-live.png"))
        publish(mqtt_url, ds, _reading(0.0))
        page.wait_for_function(f"!window.__cimMetrics.live.alerts.some((a) => a.datastream === {ds})", timeout=5000)
        assert log.errors() == [] and log.foreign_hosts() == set()
    finally:
        context.close()
