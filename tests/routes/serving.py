"""`cim serve` in a subprocess for tests that need the real server (uvicorn, its protocol, its event loop)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from cim_service.app import create_app
from cim_service.core.settings import Settings
from cim_service.store.localserver import free_port


@contextmanager
def in_thread(settings: Settings, ready: str = "/healthz") -> Iterator[str]:
    """Run the app of ``settings`` under uvicorn on a free loopback port in a thread; yield its base URL once
    ``ready`` answers 200 (for clients that need a real HTTP server: GDAL, a browser, a second origin)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}{ready}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the service did not start on 127.0.0.1")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def cim_serve(database_url: str, home: Path, logs: Path, *, workers: int = 1, loop: str = "auto",
              env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``python -m cim_service serve`` on a free port against ``database_url``; yield its base URL."""
    port = free_port()
    full_env = {**os.environ, "CIM_DATABASE_URL": database_url, "CIM_ENVIRONMENT": "test", "CIM_HOME": str(home),
                **(env or {})}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = (logs / "stdout.log").open("wb"), (logs / "stderr.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cim_service", "serve", "--port", str(port), "--workers",
                             str(workers), "--loop", loop, "--log-level", "warning"],
                            env=full_env, stdout=stdout, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a start-up wait, not a measure: generous for a loaded machine
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"cim serve did not start: {(logs / 'stderr.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        stdout.close()
        stderr.close()


def histogram(metrics_text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts ``{upper bound: count}`` of a Prometheus histogram in ``/metrics`` text."""
    out: dict[float, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out
