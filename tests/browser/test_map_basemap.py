"""The operator's external basemap (CIM_BASEMAP_URL) with a GCJ-02 provider: a local stand-in serves tiles
carrying markers at known GCJ-02 positions; our WGS84 positions of the same places must land on them (≤ 2 px)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cim_service.core.crs import wgs84_to_gcj02
from cim_service.core.settings import Settings
from tests.browser.conftest import attach_log, open_map, serve
from tests.browser.pixels import rgb

pytestmark = pytest.mark.browser

#: places (WGS84) around 莘庄; the stand-in draws each at its GCJ-02 position, as an AMap-style provider does
PLACES = [(121.3850, 31.1080), (121.3905, 31.1105), (121.3800, 31.1050)]
#: the view the alignment is measured in (deck.gl zoom: the GCJ-02 offset is ~210 px there)
VIEW = {"longitude": 121.3855, "latitude": 31.1080, "zoom": 15.5}
TILE = 256
MARKER = (255, 0, 255)
MARKER_R = 5
BACKGROUND = (214, 222, 230)


def _pixel(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Global pixel position (256 px tiles) of a position in the provider's own (GCJ-02) coordinates."""
    n = 2 ** z
    x = (lon + 180.0) / 360.0 * n * TILE
    rad = math.radians(lat)
    y = (1.0 - math.log(math.tan(rad) + 1.0 / math.cos(rad)) / math.pi) / 2.0 * n * TILE
    return x, y


def standin_tile(z: int, x: int, y: int) -> bytes:
    """A PNG tile of the stand-in provider: a plain ground and a disc at each place's GCJ-02 position."""
    image = Image.new("RGB", (TILE, TILE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for lon, lat in PLACES:
        glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
        px, py = _pixel(glon, glat, z)
        px, py = px - x * TILE, py - y * TILE
        if -MARKER_R <= px <= TILE + MARKER_R and -MARKER_R <= py <= TILE + MARKER_R:
            draw.ellipse([px - MARKER_R, py - MARKER_R, px + MARKER_R, py + MARKER_R], fill=MARKER)
    out = BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class _Tiles(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        parts = self.path.strip("/").removesuffix(".png").split("/")
        try:
            z, x, y = (int(p) for p in parts[-3:])
        except ValueError:
            self.send_error(404)
            return
        body = standin_tile(z, x, y)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")  # the map draws the tiles in WebGL
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def standin_url() -> Iterator[str]:
    """The stand-in GCJ-02 tile provider on a free loopback port: its XYZ template."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/standin/{{z}}/{{x}}/{{y}}.png"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def basemap_service_url(demo_database_url, standin_url, tmp_path_factory) -> Iterator[str]:
    settings = Settings(database_url=demo_database_url, environment="test", log_json=False,
                        home=tmp_path_factory.mktemp("cim-map-basemap"), basemap_url=standin_url, basemap_crs="gcj02")
    yield from serve(settings)


def marker_centres(pixels: np.ndarray) -> list[tuple[float, float]]:
    """Centres (x, y) of the marker discs in a screenshot (connected magenta pixels)."""
    mask = (pixels[..., 0] > 200) & (pixels[..., 1] < 90) & (pixels[..., 2] > 200)
    seen = np.zeros_like(mask)
    centres = []
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack, members = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            members.append((y, x))
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ny, nx = y + dy, x + dx
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        if len(members) >= 12:
            ys, xs = zip(*members, strict=True)
            centres.append((float(np.mean(xs)), float(np.mean(ys))))
    return centres


def test_a_gcj02_basemap_lines_up_with_our_layers(browser, basemap_service_url, standin_url, artifacts):
    context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    try:
        open_map(page, f"{basemap_service_url}/map", timeout_ms=60_000)
        basemap = page.evaluate("window.CIM_CONFIG.basemap")
        assert basemap["crs"] == "gcj02" and basemap["url"] == standin_url
        page.evaluate("""(view) => { const s = window.__cimMap.state, id = window.CIM_CONFIG.basemap.id;
            for (const k of Object.keys(s.visible)) s.visible[k] = false;
            s.visible[id] = true; delete window.__cimMetrics.tilesLoaded[id];
            window.__cimMap.render();
            const camera = Object.assign({ pitch: 0, bearing: 0 }, view);
            window.updateDeck({ initialViewState: camera }, window.__cimMap.deck);
        }""", VIEW)
        page.wait_for_function("window.__cimMetrics.tilesLoaded[window.CIM_CONFIG.basemap.id] !== undefined",
                               timeout=30_000)
        page.wait_for_function("z => Math.abs(window.__cimMetrics.view.zoom - z) < 0.01", arg=VIEW["zoom"])
        page.wait_for_timeout(400)
        pixels = rgb(page.locator("#deck-container").screenshot(path=str(artifacts / "map-basemap-gcj02.png")))
        found = marker_centres(pixels)
        assert len(found) >= len(PLACES), f"the stand-in's markers are not drawn: {found}"
        for lon, lat in PLACES:
            x, y = page.evaluate("p => window.__cimMap.deck.getViewports()[0].project(p)", [lon, lat])
            nearest = min(math.dist((x, y), c) for c in found)
            assert nearest <= 2.0, f"{lon},{lat}: our point at {x:.1f},{y:.1f} is {nearest:.1f} px from the marker"
            glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
            gx, gy = page.evaluate("p => window.__cimMap.deck.getViewports()[0].project(p)", [glon, glat])
            assert math.dist((x, y), (gx, gy)) > 100, "without the correction the marker would be far off"
        # for the eye: our own markers (the search marker's style) at the WGS84 places, over the provider's discs
        page.evaluate("""(places) => { window.__cimMap.state.marker = { type: 'FeatureCollection',
            features: places.map((p) => ({ type: 'Feature', properties: {}, geometry: { type: 'Point',
              coordinates: p } })) }; window.__cimMap.render(); }""", [list(p) for p in PLACES])
        page.wait_for_timeout(400)
        page.locator("#deck-container").screenshot(path=str(artifacts / "map-basemap-gcj02-ours.png"))
        assert any("/standin/" in u for u in log.requests)
        assert not any("/standin/" in u and "x-api-key" in (log.request_headers[u] or {}) for u in log.requests)
        assert log.errors() == []
    finally:
        context.close()
