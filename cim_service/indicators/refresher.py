"""Background refresh of the derived outputs in the running service (``app.state.gap_refresher``).

:class:`GapRefresher` listens on ``cim_layer_changed`` through the tile cache's :class:`VersionListener`
(a dedicated asyncpg connection, re-opened when it drops). It refreshes stale outputs at start-up and on
every (re)connection (notifications sent while away are lost), and, when an INPUT layer changes, after a
debounce (no new change for ``debounce_seconds``, at most ``max_delay_seconds`` after the first one). The
sync engine runs in a worker thread; one refresh at a time, and changes that arrive meanwhile lead to one
follow-up run. Across processes :data:`~cim_service.indicators.freshness.REFRESH_LOCK` serialises the work:
a process that finds it held retries later. Errors are logged; the task never dies of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from cim_service.catalog import Catalog
from cim_service.db import libpq_url, make_engine
from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.freshness import RefreshOutcome, input_layers, refresh_stale
from cim_service.settings import Settings
from cim_service.tiles.versions import LayerVersions, VersionListener

log = logging.getLogger(__name__)
#: application_name of the refresher's own connections (so shutdown can end a refresh that overruns)
APP_NAME = "minhang-cim-gap-refresh"


class InputVersions(LayerVersions):
    """Layer versions that call ``on_change(layer_id, version)`` when an input layer moves forward."""

    def __init__(self, inputs: frozenset[str], on_change: Callable[[str, int], None]):
        super().__init__()
        self.inputs = inputs
        self.on_change = on_change

    def update(self, layer_id: str, version: int) -> None:
        """Record a notified version; report it when it is an input layer's new version."""
        before = self.get(layer_id)
        super().update(layer_id, version)
        if layer_id in self.inputs and (before is None or version > before):
            self.on_change(layer_id, version)


class GapRefresher:
    """Keep the gap layers, suggestions and density raster of one database current."""

    def __init__(self, layers: Catalog, settings: Settings, *, debounce_seconds: float = 2.0,
                 max_delay_seconds: float = 30.0, retry_seconds: float = 5.0, grace_seconds: float = 5.0):
        self.app_name = f"{APP_NAME}-{os.getpid()}-{id(self) % 100_000}"
        engine = make_engine(settings.resolved_database_url(), pool_size=2)
        sa.event.listen(engine, "connect", self._name_session)
        self.ind = IndicatorEngine(engine, layers, settings)
        self.debounce_seconds = debounce_seconds
        self.max_delay_seconds = max_delay_seconds
        self.retry_seconds = retry_seconds
        self.grace_seconds = grace_seconds
        self.versions = InputVersions(input_layers(self.ind.indicators, layers), self._on_input_change)
        self.listener = VersionListener(libpq_url(settings.resolved_database_url()), self.versions,
                                        on_connect=self.request, name="gap refresh listener")
        self.runs = 0  # refresh attempts made (each one a no-op when nothing was stale)
        self.changes = 0  # input-layer notifications received
        self.running = False
        self.last: RefreshOutcome | None = None
        self._wake = asyncio.Event()
        self._urgent = False
        self._scheduled = False  # woken: debouncing, refreshing or waiting to retry
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._inflight: asyncio.Future | None = None

    def _on_input_change(self, layer_id: str, version: int) -> None:
        self.changes += 1
        log.info("gap refresh: %s is now version %d; refresh scheduled", layer_id, version)
        self._wake.set()

    def request(self) -> None:
        """Check for stale outputs now (no debounce): at start-up and whenever the listener (re)connects."""
        self._urgent = True
        self._wake.set()

    async def start(self) -> None:
        """Start the refresh task and the listener (start-up check included; does not wait for it)."""
        self.request()
        self._task = asyncio.create_task(self._run(), name="cim-gap-refresher")
        await self.listener.start(wait_seconds=0)

    async def stop(self) -> None:
        """Stop listening and refreshing; a refresh still running after ``grace_seconds`` is cut off."""
        self._stop.set()
        await self.listener.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._inflight is not None:
            done, _ = await asyncio.wait({self._inflight}, timeout=self.grace_seconds)
            if not done:  # ends the thread's transaction: it rolls back, readers keep the previous rows
                await asyncio.to_thread(self._terminate_own_backends)
                await asyncio.wait({self._inflight}, timeout=10)
            if self._inflight.done() and not self._inflight.cancelled():
                self._inflight.exception()  # retrieved: it was cut off on purpose (and logged)
        self.ind.engine.dispose()

    @property
    def idle(self) -> bool:
        """No refresh running or scheduled."""
        return not self._scheduled and not self.running and not self._wake.is_set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._scheduled = True
            try:
                if not self._urgent:
                    await self._settle()
                self._urgent = False
                self._wake.clear()
                outcome = await self._refresh_once()
                if outcome is None or outcome.busy:  # failed, or another process is at it: look again later
                    await asyncio.sleep(self.retry_seconds)
                    self._urgent = True
                    self._wake.set()
            finally:
                self._scheduled = False

    async def _settle(self) -> None:
        """Debounce: return once no change arrived for ``debounce_seconds`` (or ``max_delay_seconds`` passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay_seconds
        while True:
            self._wake.clear()
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), min(self.debounce_seconds, left))
            except TimeoutError:
                return

    async def _refresh_once(self) -> RefreshOutcome | None:
        self.running = True
        self.runs += 1
        self._inflight = asyncio.ensure_future(asyncio.to_thread(refresh_stale, self.ind, stop=self._stop))
        try:
            outcome = await asyncio.shield(self._inflight)
        except asyncio.CancelledError:
            raise
        except sa.exc.OperationalError as exc:  # database unreachable: retried
            log.warning("gap refresh: database unavailable (%s); retrying in %.0f s", type(exc.orig).__name__,
                        self.retry_seconds)
            return None
        except Exception:  # anything else: logged, retried; never fatal
            log.exception("gap refresh failed")
            return None
        finally:
            self.running = False
        self.last = outcome
        if outcome.refreshed or outcome.failed:
            log.log(logging.ERROR if outcome.failed else logging.INFO, "%s", outcome.summary())
        return outcome

    def _name_session(self, dbapi_conn: Any, _record: object) -> None:
        """Tag a new session with ``self.app_name`` (so :meth:`stop` can find it) and bound its statements."""
        settings = self.ind.settings
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT set_config('application_name', %s, false), set_config('statement_timeout', %s, false), "
                        "set_config('lock_timeout', %s, false)",
                        (self.app_name, str(settings.indicator_statement_timeout_ms),
                         str(settings.indicator_lock_timeout_ms)))
        dbapi_conn.commit()

    def _terminate_own_backends(self) -> None:
        """End this refresher's database sessions (the open transaction rolls back; readers keep the old rows)."""
        try:
            eng = make_engine(self.ind.settings.resolved_database_url(), poolclass=sa.pool.NullPool)
            with eng.connect() as conn:
                n = conn.execute(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :a AND datname = current_database() AND pid <> pg_backend_pid()"
                ), {"a": self.app_name}).scalar()
            eng.dispose()
            log.warning("gap refresh cut off at shutdown (%s sessions ended); it reruns at the next start", n)
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.exception("gap refresh: could not end the refresh sessions")
