"""`cim serve` in a subprocess for tests that need the real server (uvicorn, its protocol, its event loop)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
