"""CORS in a real browser: a page served from another origin reads public items and a tile (the default),
revalidates with the exposed ETag, and sends an API key after a preflight; a restricted configuration refuses it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import morecantile
import pytest

from cim_service.core.settings import Settings
from tests.routes.serving import in_thread

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>another origin</title></head><body>
<script>
window.readService = async (base, tilePath, key) => {
  const out = {};
  try {
    const items = await fetch(base + "/collections/cameras/items?limit=5");
    out.itemsStatus = items.status;
    out.etag = items.headers.get("ETag");
    out.crs = items.headers.get("Content-Crs");
    out.features = (await items.json()).features.length;
    const again = await fetch(base + "/collections/cameras/items?limit=5",
                              {headers: {"If-None-Match": out.etag}, cache: "no-store"});
    out.revalidated = again.status;
    const tile = await fetch(base + tilePath);
    out.tileStatus = tile.status;
    out.tileBytes = (await tile.arrayBuffer()).byteLength;
    const keyed = await fetch(base + "/collections", {headers: {"X-API-Key": key}});
    out.keyedStatus = keyed.status;
  } catch (e) {
    out.error = String(e);
  }
  return out;
};
</script></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """A second web server (another origin: ``localhost`` and its own port) serving the reading page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


def _tile_path() -> str:
    t = morecantile.tms.get("WebMercatorQuad").tile(121.40, 31.10, 12)
    return f"/collections/cameras/tiles/WebMercatorQuad/12/{t.x}/{t.y}"


def _read(browser, page_url: str, service: str, key: str = "no-such-key") -> dict:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(page_url)
        return page.evaluate("([b, t, k]) => window.readService(b, t, k)", [service, _tile_path(), key])
    finally:
        context.close()


def test_a_page_on_another_origin_reads_public_items_and_tiles(browser, service_url, other_origin, map_settings):
    assert Settings().cors_origins == ["*"]  # on by default
    out = _read(browser, other_origin + "/", service_url)
    assert "error" not in out, out
    assert out["itemsStatus"] == 200 and out["features"] == 5
    assert out["etag"] and out["crs"]  # exposed headers are readable by the page
    assert out["revalidated"] == 304
    assert out["tileStatus"] == 200 and out["tileBytes"] > 100
    assert out["keyedStatus"] == 401  # the preflight let the key through; the service judged it


def test_configured_origins_only(browser, other_origin, map_settings):
    only = map_settings.model_copy(update={"cors_origins": ["https://gis.example.gov.cn"]})
    with in_thread(only) as url:
        out = _read(browser, other_origin + "/", url)
        assert "Failed to fetch" in out.get("error", ""), out
        assert "itemsStatus" not in out
