"""Background refresh of the derived outputs in the running service (``app.state.gap_refresher``).

:class:`GapRefresher` follows ``cim_layer_changed`` through the app's :class:`VersionListener` (one dedicated
connection per process, re-opened when it drops, shared with the tile cache). It refreshes stale outputs at
start-up and on every (re)connection (notifications sent while away are lost), and, when an INPUT layer changes, after a
debounce (no new change for ``debounce_seconds``, at most ``max_delay_seconds`` after the first one). The
sync engine runs in a worker thread; one refresh at a time, and changes that arrive meanwhile lead to one
follow-up run. Across processes :data:`~cim_service.indicators.freshness.REFRESH_LOCK` serialises the work:
a process that finds it held retries later. Errors are logged; the task never dies of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
from typing import Any

import sqlalchemy as sa

from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.freshness import RefreshOutcome, input_layers, refresh_stale
from cim_service.store.db import make_engine
from cim_service.store.versions import VersionListener

log = logging.getLogger(__name__)
#: application_name of the refresher's own connections (so shutdown can end a refresh that overruns)
APP_NAME = "minhang-cim-gap-refresh"
#: set in a refresh's worker thread: the name its sessions carry while it runs
_REFRESHING: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar("cim_refreshing",
                                                                                         default=None)


def _name_refresh_sessions(engine: sa.Engine) -> None:
    """Name the sessions a refresh checks out of ``engine`` (shared with requests) and unname them on check-in."""
    if sa.event.contains(engine, "checkout", _on_checkout):
        return
    sa.event.listen(engine, "checkout", _on_checkout)
    sa.event.listen(engine, "checkin", _on_checkin)


def _set_session(dbapi_conn: Any, name: str, statement_timeout: str, lock_timeout: str) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute("SELECT set_config('application_name', %s, false), set_config('statement_timeout', %s, false), "
                    "set_config('lock_timeout', %s, false)", (name, statement_timeout, lock_timeout))
    dbapi_conn.commit()


def _on_checkout(dbapi_conn: Any, record: Any, _proxy: object) -> None:
    session = _REFRESHING.get()
    if session is not None:  # a refresh's session: named (so shutdown can find it) and bounded
        _set_session(dbapi_conn, *session)
        record.info["cim_named"] = True


def _on_checkin(dbapi_conn: Any, record: Any) -> None:
    if record.info.pop("cim_named", False) and dbapi_conn is not None:
        try:  # back to the connection's own settings, which the engine's other users expect
            with dbapi_conn.cursor() as cur:
                cur.execute("RESET application_name; RESET statement_timeout; RESET lock_timeout")
            dbapi_conn.commit()
        except Exception:  # noqa: BLE001 - a broken connection is discarded by the pool anyway
            record.invalidate()


class GapRefresher:
    """Keep the gap layers, suggestions and density raster of one database current."""

    def __init__(self, ind: IndicatorEngine, listener: VersionListener, *, debounce_seconds: float = 2.0,
                 max_delay_seconds: float = 30.0, retry_seconds: float = 5.0, grace_seconds: float = 5.0):
        self.app_name = f"{APP_NAME}-{os.getpid()}-{id(self) % 100_000}"
        self.ind = ind
        self.debounce_seconds = debounce_seconds
        self.max_delay_seconds = max_delay_seconds
        self.retry_seconds = retry_seconds
        self.grace_seconds = grace_seconds
        self.inputs = input_layers(ind.indicators, ind.layers)
        self.listener = listener  # started and stopped by the app
        listener.versions.watch(self._on_version)
        listener.on_connect(self.request)
        _name_refresh_sessions(ind.engine)
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

    def _on_version(self, layer_id: str, version: int) -> None:
        if layer_id not in self.inputs:
            return
        self.changes += 1
        log.info("gap refresh: %s is now version %d; refresh scheduled", layer_id, version)
        self._wake.set()

    def request(self) -> None:
        """Check for stale outputs now (no debounce): at start-up and whenever the listener (re)connects."""
        self._urgent = True
        self._wake.set()

    async def start(self) -> None:
        """Start the refresh task (start-up check included; does not wait for it)."""
        self.request()
        self._task = asyncio.create_task(self._run(), name="cim-gap-refresher")

    async def stop(self) -> None:
        """Stop refreshing; a refresh still running after ``grace_seconds`` is cut off."""
        self._stop.set()
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
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self._refresh_named))
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

    def _refresh_named(self) -> RefreshOutcome:
        """Run :func:`refresh_stale` (in a worker thread) with its sessions named ``self.app_name``."""
        settings = self.ind.settings  # this thread's own context: the engine's checkout hook names and bounds sessions
        _REFRESHING.set((self.app_name, str(settings.indicator_statement_timeout_ms),
                         str(settings.indicator_lock_timeout_ms)))
        return refresh_stale(self.ind, stop=self._stop)

    def _terminate_own_backends(self) -> None:
        """End this refresher's database sessions (the open transaction rolls back; readers keep the old rows)."""
        try:
            eng = make_engine(self.ind.settings.database_url, poolclass=sa.pool.NullPool)
            with eng.connect() as conn:
                n = conn.execute(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :a AND datname = current_database() AND pid <> pg_backend_pid()"
                ), {"a": self.app_name}).scalar()
            eng.dispose()
            log.warning("gap refresh cut off at shutdown (%s sessions ended); it reruns at the next start", n)
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.exception("gap refresh: could not end the refresh sessions")
