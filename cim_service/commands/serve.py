"""``cim serve`` (uvicorn) and ``cim keys`` (API key administration)."""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Annotated

import typer

from cim_service.commands import console, fail

APP_FACTORY = "cim_service.app:create_app"
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


def tcp_listener(host: str, port: int) -> socket.socket:
    """Bind the listening socket with ``proto=IPPROTO_TCP``.

    uvicorn binds pre-forked listeners with ``proto=0``; accepted sockets inherit it and asyncio then skips
    ``TCP_NODELAY``, so with ``--workers N`` every keep-alive response waits ~40 ms for a delayed ACK
    (Nagle). Binding the socket ourselves with the protocol set keeps ``TCP_NODELAY`` on in every worker.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def log_config(level: str) -> dict:
    """Logging: one JSON line per request on stdout (``cim.access``), uvicorn's own messages on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(message)s"},
                       "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"access": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"},
                     "default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stderr"}},
        "loggers": {"cim.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
                    "uvicorn": {"handlers": ["default"], "level": level.upper()},
                    "cim_service": {"handlers": ["default"], "level": level.upper()}},
    }


def serve(host: str, port: int, workers: int, log_level: str = "info", loop: str = "auto") -> None:
    """Run the API with uvicorn (the app factory in every worker) on a TCP_NODELAY-safe listener."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cim-metrics-")
    from cim_service.httpserver import protocol_options

    # proxy headers are read by the application (CIM_TRUSTED_PROXIES), never by uvicorn for any local peer
    config = uvicorn.Config(APP_FACTORY, factory=True, host=host, port=port, workers=workers, loop=loop,
                            log_config=log_config(log_level), log_level=log_level, access_log=False,
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=10,
                            **protocol_options())
    sock = tcp_listener(host, port)
    if workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    """Add ``cim serve`` and ``cim keys`` to the CLI."""

    @app.command("serve")
    def serve_cmd(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
        workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (one pool each).")] = 1,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
        loop: Annotated[str, typer.Option(help="Event loop: auto (uvloop when installed), asyncio, uvloop.")] = "auto",
    ) -> None:
        """Serve OGC API Features/Tiles, indicators and the web map."""
        from cim_service.commands import command_settings

        # fail early, in one line, on invalid configuration or a project-local cluster that is not running
        command_settings()
        try:
            serve(host, port, workers, log_level, loop)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")

    app.add_typer(keys_app, name="keys")


def _engine():
    from cim_service.commands import command_settings
    from cim_service.store.db import make_engine

    return make_engine(command_settings().database_url)


@keys_app.command("create")
def create(name: Annotated[str, typer.Argument(help="Key name (who holds it).")],
           role: Annotated[str, typer.Option(help="analyst, editor, officer, sensor or admin.")] = "analyst") -> None:
    """Create an API key and print it once (only its sha256 is stored)."""
    from cim_service.auth import create_api_key
    from cim_service.errors import InvalidParameter

    try:
        key = create_api_key(_engine(), name, role)
    except InvalidParameter as exc:
        fail(exc.description)
    console.print(key, highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_keys() -> None:
    """List keys: name, prefix, role, created, revoked."""
    from rich.table import Table

    from cim_service.auth import list_api_keys

    table = Table("name", "prefix", "role", "created", "revoked")
    for k in list_api_keys(_engine()):
        table.add_row(k["name"], k["key_prefix"] + "…", k["role"], f"{k['created_at']:%Y-%m-%d %H:%M}",
                      f"{k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "")
    console.print(table)


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="Key name.")]) -> None:
    """Revoke a key (refused by running services within seconds: lookups are cached briefly)."""
    from cim_service.auth import revoke_api_key

    if not revoke_api_key(_engine(), name):
        fail(f"no active key named {name!r}")
    console.print(f"revoked {name}")
