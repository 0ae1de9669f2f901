"""Layer versions known to this process, kept current by LISTEN ``cim_layer_changed`` on one dedicated connection.

Writers bump ``cim_meta.layer_state.version`` in their transaction (:func:`cim_service.store.layer_state.
bump_version`); a trigger sends ``NOTIFY cim_layer_changed, '<layer_id>:<version>'``. One
:class:`VersionListener` per service process keeps a connection listening, reloads every version whenever it
(re)connects (notifications sent while it was away are lost) and marks the versions *not live* while
disconnected: the tile cache is then bypassed, never stale. The tile cache and the gap-layer refresher share it:
``watch`` a version change, ``on_connect`` a (re)connection. The same connection listens to other channels for
whoever asks (:meth:`VersionListener.listen`: the ``/events`` hub's observations and alert changes), so one
process holds one LISTEN connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

from cim_service.store import layer_state
from cim_service.store.db import ConnectionSession, listen_connection

log = logging.getLogger(__name__)
CHANNEL = "cim_layer_changed"


class LayerVersions:
    """Layer id → version, plus whether the listener is connected (only then may caches trust them)."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._during_reload: list[tuple[str, int]] | None = None
        self._watchers: list[Callable[[str, int], None]] = []
        self.live = False

    def get(self, layer_id: str) -> int | None:
        """Known version of ``layer_id`` (None when unknown)."""
        return self._versions.get(layer_id)

    def watch(self, callback: Callable[[str, int], None]) -> None:
        """Call ``callback(layer_id, version)`` whenever a notified version moves a layer forward."""
        self._watchers.append(callback)

    def update(self, layer_id: str, version: int) -> None:
        """Record a notified version; versions only move forward (except through :meth:`reload`)."""
        if self._during_reload is not None:
            self._during_reload.append((layer_id, version))
        before = self._versions.get(layer_id)
        if before is None or version > before:
            self._versions[layer_id] = version
            for callback in self._watchers:
                callback(layer_id, version)

    def apply_notification(self, payload: str) -> None:
        """Apply a ``'<layer_id>:<version>'`` notification payload (malformed payloads are logged and ignored)."""
        layer_id, _, version = payload.rpartition(":")
        try:
            self.update(layer_id, int(version))
        except ValueError:
            log.warning("ignoring malformed %s payload %r", CHANNEL, payload)

    async def reload(self, session: ConnectionSession) -> None:
        """Replace the known versions by the database's (also when they went down: a restored database)."""
        self._during_reload = []
        try:
            versions = await layer_state.fetch_versions(session)
            for layer_id, version in self._during_reload:  # notified while the query ran: keep the newer
                versions[layer_id] = max(version, versions.get(layer_id, -1))
            self._versions = versions
        finally:
            self._during_reload = None


class VersionListener:
    """Background task: LISTEN on a dedicated connection, re-opened when it drops."""

    def __init__(self, url: str, versions: LayerVersions | None = None, *, retry_seconds: float = 1.0,
                 ping_seconds: float = 15.0, name: str = "layer version listener"):
        self.url = url
        self.name = name
        self.versions = versions if versions is not None else LayerVersions()
        self.retry_seconds = retry_seconds
        self.ping_seconds = ping_seconds
        self._on_connect: list[Callable[[], None]] = []
        self._channels: dict[str, list[Callable[[str], None]]] = {}
        self._task: asyncio.Task | None = None
        self._conn: psycopg.AsyncConnection | None = None
        self.connected = asyncio.Event()
        self.server_pid: int | None = None

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each (re)connection, once the versions are reloaded."""
        self._on_connect.append(callback)

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(payload)`` for every notification on ``channel`` (besides the layer versions').

        Register before :meth:`start`: a channel added later is listened to from the next (re)connection.
        Callbacks run on the listener's task: they must not block (schedule work, never await it).
        """
        if channel == CHANNEL:
            raise ValueError(f"{CHANNEL} is the listener's own channel: use LayerVersions.watch")
        self._channels.setdefault(channel, []).append(callback)

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (and not :meth:`stop`)."""
        return self._task is not None

    async def start(self, *, wait_seconds: float = 5.0) -> None:
        """Start listening; wait (bounded) for the first connection so start-up serves cached tiles at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"cim-{self.name.replace(' ', '-')}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_seconds)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.versions.live = False

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
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                self._conn = None
            await asyncio.sleep(self.retry_seconds)

    async def _listen_once(self) -> None:
        conn = self._conn = await listen_connection(self.url, [CHANNEL, *self._channels], "minhang-cim-listen")
        await self.versions.reload(ConnectionSession(conn))  # after LISTEN: nothing committed in between is missed
        for callback in self._on_connect:
            callback()
        self.server_pid = conn.info.backend_pid
        self.versions.live = True
        self.connected.set()
        while True:
            async for notify in conn.notifies(timeout=self.ping_seconds):
                if notify.channel == CHANNEL:
                    self.versions.apply_notification(notify.payload)
                    continue
                for callback in self._channels.get(notify.channel, ()):
                    try:
                        callback(notify.payload)
                    except Exception:  # one subscriber's fault never stops the versions
                        log.exception("listener callback of %s failed", notify.channel)
            await asyncio.wait_for(conn.execute("SELECT 1"), 5)  # raises when the server is gone
