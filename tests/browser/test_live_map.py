"""The live map in headless Chromium against a service running the MQTT bridge: a reading published with
``mosquitto_pub`` turns a sensor red and puts its alert in the panel within 2 s; a click on the alert flies
to it; the reading falling back turns it green and empties the panel. In the 3D view, where the sensors are drawn
from the multi-layer tile bundle, the same readings recolour them by a repaint, no tile fetched again. The
operations screen shows the live feed and the active-alerts card. A first normal reading (no alert) turns a
never-seen sensor green and a silence past the offline time turns it grey, in 2D and 3D, by the service's status
events (a neuron node: the depth sensors' pool is small). Screenshots in test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from cim_service.core.settings import Settings
from cim_service.store import alerts as alert_store
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


def _wait_refetched(page, since_ms: float, timeout_ms: int, layer: str = LAYER) -> None:
    page.wait_for_function(
        f"(() => {{ const m = window.__cimMetrics; const r = m.live.refetchedAt['{layer}'];"
        f" return r > {since_ms} && m.tilesLoaded['{layer}'] > r; }})()", timeout=timeout_ms)


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


def _layer_tile_requests(log, layer: str = LAYER) -> int:
    """Tile requests that carried the sensor layer (its own tiles or a bundle naming it)."""
    return sum(1 for url in log.requests if "/tiles/" in url and layer in url)


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


#: the neuron nodes: a sensor layer (live: battery) of many more features than the depth sensors' pool
NODES = "iot_nodes"


def fresh_node(engine) -> tuple[int, int]:
    """A neuron node (battery datastream, feature id) that never reported: the last such one (the depth sensors'
    pool of ``fresh_sensor`` is small and shared)."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            f"SELECT d.id, n.id FROM cim.{NODES} n JOIN cim_sta.datastream d "
            f"ON d.catalog_key = '{NODES}|' || n.feature_key || '|battery' "
            "WHERE NOT EXISTS (SELECT 1 FROM cim_sta.latest l WHERE l.datastream_id = d.id) "
            "ORDER BY n.id DESC LIMIT 1")).one_or_none()
    assert row is not None, "no neuron node without a reading"
    return int(row[0]), int(row[1])


def _focus(page, layer: str, lon: float, lat: float, pitch: int) -> None:
    """Show only the sensor layers among the points (``layer`` too), over (lon, lat) at zoom 16, tiles loaded."""
    page.evaluate(f"""(() => {{ const s = window.__cimMap.state;
        for (const id of Object.keys(s.visible)) if (s.layers[id] && !s.layers[id].live && s.layers[id].is_point)
          s.visible[id] = false;
        s.visible['{layer}'] = true; window.__cimMap.render();
        window.updateDeck({{ initialViewState: {{ longitude: {lon}, latitude: {lat}, zoom: 16, pitch: {pitch},
          bearing: 0 }} }}, window.__cimMap.deck); }})()""")
    page.wait_for_function(f"window.__cimMetrics.view && Math.abs(window.__cimMetrics.view.zoom - 16) < 0.01 "
                           f"&& window.__cimMetrics.tilesLoaded['{layer}'] > 0", timeout=20_000)
    page.wait_for_timeout(500)


def _drawn_3d(layer: str) -> str:
    """JS: the colours the 3D view's bundled sub-layers of ``layer`` give a feature of an id whose tile says
    offline."""
    return f"""((fid) => window.__cimMap.deck.layerManager.getLayers()
        .filter((l) => l.id.startsWith('__tiles_') && l.id.endsWith('-{layer}'))
        .map((l) => l.props.getFillColor({{ properties: {{ id: fid, status: 'offline' }} }})))"""


def _wait_drawn_3d(page, layer: str, fid: int, colour, timeout_ms: int) -> None:
    """Wait until the 3D view's bundles draw sensor ``fid`` in ``colour``, at the page's last live state."""
    page.wait_for_function(f"(() => {{ const c = {_drawn_3d(layer)}({fid}); const m = window.__cimMetrics.live; "
                           f"return c.length > 0 && c.every((x) => x.join() === '{','.join(map(str, colour))}') "
                           f"&& m.paintedVersion === m.statusVersion; }})()", timeout=timeout_ms)


def test_a_first_normal_reading_turns_a_never_seen_sensor_green_and_a_silence_grey_in_2d_and_3d(
        live_page, live_page_3d, live_url, mqtt_url, engine, artifacts):
    """No alert is raised by a normal reading: the service's status event colours the sensor (a neuron node: its
    battery). Then the node falls silent (its reception set back past the offline time) and the service's offline
    sweep runs: grey. A reading brings it back: green. The 3D view repaints its bundled sensors, fetching no tile
    for it."""
    (page, log), (page3, log3) = live_page, live_page_3d
    ds, fid = fresh_node(engine)
    item = httpx.get(f"{live_url}/collections/{NODES}/items/{fid}", params={"f": "json"}, timeout=20).json()
    lon, lat = item["geometry"]["coordinates"]
    assert item["properties"]["status"] == "offline"  # never reported
    _focus(page, NODES, lon, lat, pitch=0)
    _focus(page3, NODES, lon, lat, pitch=45)
    colours = page.evaluate("window.__cimMetrics.live.statusColours")
    for p in (page, page3):
        before, _ = _sensor_pixels(p, lon, lat)
        assert _is(colours["offline"], before), before.tolist()
    requests = _layer_tile_requests(log3, NODES)
    alerts_before = page.evaluate("window.__cimMetrics.live.alerts.length")

    since = [p.evaluate("performance.now()") for p in (page, page3)]
    publish(mqtt_url, ds, _reading(80.0))  # a full battery: no alert
    _wait_refetched(page, since[0], timeout_ms=10_000, layer=NODES)  # 2D: the sensor layer's tiles read again
    _wait_drawn_3d(page3, NODES, fid, colours["ok"], timeout_ms=10_000)  # 3D: the bundled sensors repainted
    took = [page.evaluate(f"window.__cimMetrics.tilesLoaded['{NODES}']") - since[0],
            page3.evaluate("window.__cimMetrics.live.paintedAt") - since[1]]
    print(f"first normal reading drawn: {took[0]:.0f} ms (2D, tiles read again), {took[1]:.0f} ms (3D repaint) "
          "after the publish")
    page.wait_for_timeout(200)  # the frame of the new tiles
    for p, name in ((page, "map-live-first-reading.png"), (page3, "map-3d-live-first-reading.png")):
        after, _ = _sensor_pixels(p, lon, lat)
        p.locator("#map").screenshot(path=str(artifacts / name))
        assert _is(colours["ok"], after) and not _is(colours["offline"], after), after.tolist()
    assert item_status(live_url, fid) == "ok"  # the map and the items agree
    assert page.evaluate("window.__cimMetrics.live.alerts.length") == alerts_before, "a normal reading: no alert"
    assert page.evaluate("window.__cimMetrics.live.statusEvents") >= 1

    # silence: the reception set back two hours (no trigger fires for it), then the service's offline sweep
    since = page.evaluate("performance.now()")
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text("UPDATE cim_sta.latest SET received_at = received_at - interval '2 hours' "
                             "WHERE datastream_id = :ds"), {"ds": ds})
    with engine.begin() as conn:
        assert alert_store.sweep(conn, datetime.now(UTC)) >= 1
    _wait_refetched(page, since, timeout_ms=10_000, layer=NODES)
    _wait_drawn_3d(page3, NODES, fid, colours["offline"], timeout_ms=10_000)
    page.wait_for_timeout(200)
    for p, name in ((page, "map-live-silent.png"), (page3, "map-3d-live-silent.png")):
        grey, _ = _sensor_pixels(p, lon, lat)
        p.locator("#map").screenshot(path=str(artifacts / name))
        assert _is(colours["offline"], grey) and not _is(colours["ok"], grey), grey.tolist()
    assert item_status(live_url, fid) == "offline"

    since = page.evaluate("performance.now()")
    publish(mqtt_url, ds, _reading(81.0))  # back: the offline alert clears
    _wait_refetched(page, since, timeout_ms=10_000, layer=NODES)
    _wait_drawn_3d(page3, NODES, fid, colours["ok"], timeout_ms=10_000)
    page.wait_for_timeout(200)
    for p in (page, page3):
        back, _ = _sensor_pixels(p, lon, lat)
        assert _is(colours["ok"], back) and not _is(colours["offline"], back), back.tolist()
    page.wait_for_function(f"!window.__cimMetrics.live.alerts.some((a) => a.datastream === {ds})", timeout=10_000)
    assert _layer_tile_requests(log3, NODES) == requests, "the 3D sensors were repainted, not fetched again"
    assert log.errors() == [] and log.foreign_hosts() == set()
    assert log3.errors() == [] and log3.foreign_hosts() == set()


def item_status(url: str, fid: int, layer: str = NODES) -> str:
    """The status the service's items give sensor ``fid`` of ``layer``."""
    body = httpx.get(f"{url}/collections/{layer}/items/{fid}", params={"f": "json"}, timeout=20).json()
    return body["properties"]["status"]
