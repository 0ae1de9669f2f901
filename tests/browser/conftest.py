"""Browser fixtures: the service on a free loopback port (demo database) and headless Chromium via Playwright.

Chromium is the Debian build at /usr/bin/chromium (``playwright install`` is never run). Every request a
page makes is recorded, so tests can assert that nothing leaves 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cim_service.core.settings import PROJECT_ROOT, Settings
from tests.routes.serving import in_thread

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder for screenshots (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def map_settings(demo_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the served app: the demo database."""
    return Settings(database_url=demo_database_url, environment="test",
                    home=tmp_path_factory.mktemp("cim-map-home"), log_json=False)


@pytest.fixture(scope="session")
def service_url(map_settings: Settings) -> Iterator[str]:
    """Run the service with uvicorn on a free 127.0.0.1 port in a background thread."""
    yield from serve(map_settings)


def serve(map_settings: Settings) -> Iterator[str]:
    """Run the service of ``map_settings`` on a free 127.0.0.1 port in a background thread; yield its URL."""
    with in_thread(map_settings, ready="/map") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium; its absence is a failure.

    Module scope: Playwright's sync API keeps an event loop running in the main thread while it is open,
    which would break ``asyncio.run`` in every test module collected after the browser tests.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium missing at {CHROMIUM} (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@dataclass
class PageLog:
    """What a page did: requests, responses, console messages, page errors."""

    requests: list[str] = field(default_factory=list)
    request_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions."""
        return [text for kind, text in self.console if kind == "error"] + self.page_errors

    def foreign_hosts(self) -> set[str]:
        """Hosts other than 127.0.0.1 that the page requested (file: and data: URLs have none)."""
        hosts = set()
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "file"):
                continue
            if parts.hostname != "127.0.0.1":
                hosts.add(parts.hostname or url[:40])
        return hosts

    def tile_statuses(self) -> dict[str, int]:
        """Status of every tile response."""
        return {url: status for url, status in self.responses.items() if "/tiles/" in url}


def attach_log(page) -> PageLog:
    """Record everything ``page`` requests and logs."""
    log = PageLog()

    def on_request(request) -> None:
        log.requests.append(request.url)
        log.request_headers[request.url] = request.headers

    page.on("request", on_request)
    page.on("response", lambda r: log.responses.__setitem__(r.url, r.status))
    page.on("requestfailed", lambda r: log.failed.append(r.url))
    page.on("console", lambda m: log.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    return log


@pytest.fixture()
def map_page(browser, service_url: str):
    """A fresh 1600×900 page with its log, not yet navigated: ``(page, log)``; it must stay on 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    yield page, log
    context.close()
    assert log.requests, "the page made no request"
    assert log.foreign_hosts() == set(), f"requests left 127.0.0.1: {sorted(log.foreign_hosts())}"


def open_map(page, url: str, timeout_ms: int = 40_000) -> None:
    """Open the map and wait until base layers and visible tiles are drawn (first meaningful paint)."""
    page.goto(url)
    page.wait_for_function("window.__cimMetrics && window.__cimMetrics.firstMeaningfulPaintMs !== null",
                           timeout=timeout_ms)
    page.wait_for_timeout(300)


@contextmanager
def labelled_map(browser, service_url: str) -> Iterator[tuple]:
    """A 1600×900 page on /map once its first labels are placed: ``(page, log)``; it must stay on 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    log = attach_log(page)
    try:
        open_map(page, f"{service_url}/map")
        page.wait_for_function("(() => { const l = window.__cimMetrics.labels; return l && l.placed > 0; })()",
                               timeout=30_000)
        yield page, log
    finally:
        context.close()
    assert log.foreign_hosts() == set(), f"requests left 127.0.0.1: {sorted(log.foreign_hosts())}"
