"""Layer versions known to this process, kept current by LISTEN ``cim_layer_changed`` on a dedicated connection.

Writers bump ``cim_meta.layer_state.version`` in the ingest transaction; a trigger sends
``NOTIFY cim_layer_changed, '<layer_id>:<version>'``. :class:`VersionListener` keeps one asyncpg connection
listening, reloads every version whenever it (re)connects (notifications sent while it was away are lost),
and marks the versions *not live* while disconnected: the tile cache is then bypassed, never stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

log = logging.getLogger(__name__)
CHANNEL = "cim_layer_changed"


class LayerVersions:
    """Layer id → version, plus whether the listener is connected (only then may caches trust them)."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._during_reload: list[tuple[str, int]] | None = None
        self.live = False

    def get(self, layer_id: str) -> int | None:
        """Known version of ``layer_id`` (None when unknown)."""
        return self._versions.get(layer_id)

    def update(self, layer_id: str, version: int) -> None:
        """Record a notified version; versions only move forward (except through :meth:`reload`)."""
        if self._during_reload is not None:
            self._during_reload.append((layer_id, version))
        if version > self._versions.get(layer_id, -1):
            self._versions[layer_id] = version

    def apply_notification(self, payload: str) -> None:
        """Apply a ``'<layer_id>:<version>'`` notification payload (malformed payloads are logged and ignored)."""
        layer_id, _, version = payload.rpartition(":")
        try:
            self.update(layer_id, int(version))
        except ValueError:
            log.warning("ignoring malformed %s payload %r", CHANNEL, payload)

    async def reload(self, conn: asyncpg.Connection) -> None:
        """Replace the known versions by ``cim_meta.layer_state``'s (also when they went down: a restored database)."""
        self._during_reload = []
        try:
            rows = await conn.fetch("SELECT layer_id, version FROM cim_meta.layer_state")
            versions = {row["layer_id"]: int(row["version"]) for row in rows}
            for layer_id, version in self._during_reload:  # notified while the query ran: keep the newer
                versions[layer_id] = max(version, versions.get(layer_id, -1))
            self._versions = versions
        finally:
            self._during_reload = None


class VersionListener:
    """Background task: LISTEN on a dedicated connection, re-opened when it drops."""

    def __init__(self, dsn: str, versions: LayerVersions, *, retry_seconds: float = 1.0,
                 ping_seconds: float = 15.0, on_connect: Callable[[], None] | None = None,
                 name: str = "tile version listener"):
        self.dsn = dsn
        self.name = name  # in the task name and log lines (the indicator gap refresher listens too)
        self.versions = versions
        self.on_connect = on_connect  # e.g. clear the cache: what happened while disconnected is unknown
        self.retry_seconds = retry_seconds
        self.ping_seconds = ping_seconds
        self._task: asyncio.Task | None = None
        self._conn: asyncpg.Connection | None = None
        self.connected = asyncio.Event()
        self.server_pid: int | None = None

    async def start(self, *, wait_seconds: float = 5.0) -> None:
        """Start listening; wait (bounded) for the first connection so start-up serves cached tiles at once."""
        self._task = asyncio.create_task(self._run(), name=f"cim-{self.name.replace(' ', '-')}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_seconds)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.versions.live = False

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.versions.apply_notification(payload)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused, dropped, server restart...
                log.warning("%s disconnected (%s); retrying", self.name, type(exc).__name__)
            finally:
                self.versions.live = False
                self.connected.clear()
                if self._conn is not None and not self._conn.is_closed():
                    self._conn.terminate()
                self._conn = None
            await asyncio.sleep(self.retry_seconds)

    async def _listen_once(self) -> None:
        conn = self._conn = await asyncpg.connect(self.dsn,
                                                  server_settings={"application_name": "minhang-cim-listen"})
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        await self.versions.reload(conn)  # after LISTEN: nothing committed in between is missed
        if self.on_connect is not None:
            self.on_connect()
        self.server_pid = conn.get_server_pid()
        self.versions.live = True
        self.connected.set()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.ping_seconds)
            if not lost.is_set():
                await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)  # raises when the server is gone
