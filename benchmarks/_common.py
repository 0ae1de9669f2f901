"""Shared set-up of the benchmarks: a named, migrated database kept on the local cluster between runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.store.db import make_engine
from cim_service.store.localdb import LocalCluster
from cim_service.store.migrate import migrate


def named_database(name: str, server_url: str | None = None) -> str:
    """Return the URL of database ``name`` (created if missing, then migrated) on ``server_url``'s server.

    Default server: the project-local cluster, started if needed. Benchmark databases are kept so that a
    re-run does not load its data again.
    """
    server = make_url(server_url or LocalCluster.from_settings(Settings(database_url=None)).start())
    admin = make_engine(server.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate(engine, load_catalog())
    engine.dispose()
    return url


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, workdir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start the service on ``url`` under uvicorn (one worker, a free port); return the process and its base URL.

    ``env`` adds or overrides ``CIM_*`` settings; the log goes to ``workdir/serve.log``.
    """
    port = free_port()
    env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_ENVIRONMENT": "production", "CIM_LOG_JSON": "false",
           "CIM_GAP_REFRESH": "off", "CIM_MAX_BODY_BYTES": str(64 * 1024 * 1024), **(env or {})}
    log = workdir / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "cim_service.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"],
        env=env, cwd=workdir, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the service did not start: " + log.read_text()[-2000:])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
