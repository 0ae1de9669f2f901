"""Keep the derived outputs (gap layers, site suggestions, density COG) current after their inputs change.

Stored results of the derived outputs carry the versions of the input layers they were built from (see
``engine.py``); an output is stale when one of those versions moved on. :func:`refresh_stale` rewrites the
stale ones under a session advisory lock (``REFRESH_LOCK``), so one process refreshes at a time, in two
transactions: gap layers and the raster first (the map's tiles are current soonest), then the suggestions
(which read the fresh camera grid). Readers keep seeing the previous rows until each transaction commits.

Only source layers count as inputs: a change of a derived layer (bumped by the refresh itself) never
triggers another refresh.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from cim_service.core.catalog import Catalog, load_catalog
from cim_service.indicators.catalog import IndicatorCatalog, load_indicators
from cim_service.indicators.engine import IndicatorComputationError, IndicatorEngine, IndicatorEngineBusy

log = logging.getLogger(__name__)

#: session advisory lock: one gap refresh at a time per database (the engine's own lock is ENGINE_LOCK)
REFRESH_LOCK = 7_310_114


def phases(indicators: IndicatorCatalog) -> tuple[tuple[str, ...], ...]:
    """Refresh order: outputs that read no other output first, then those (e.g. the suggestions: slowest)."""
    first = tuple(d.id for d in indicators.derived if not d.after)
    return tuple(p for p in (first, tuple(d.id for d in indicators.derived if d.after)) if p)


def output_keys(names: Iterable[str] | None = None, indicators: IndicatorCatalog | None = None) -> list[str]:
    """Result keys (``derived:<name>``) of the derived outputs (default: all)."""
    return [f"derived:{n}" for n in (names or (indicators or load_indicators()).derived_ids)]


def input_layers(indicators: IndicatorCatalog | None = None, layers: Catalog | None = None) -> frozenset[str]:
    """Layers whose changes make a derived output stale (never a derived layer itself); default catalogs."""
    return (indicators or load_indicators()).input_layers(layers or load_catalog())


@dataclass
class RefreshOutcome:
    """What one :func:`refresh_stale` call did."""

    busy: bool = False  # another process held the refresh lock (or the engine, too long): not done now
    refreshed: dict[str, float] = field(default_factory=dict)  # output name -> milliseconds
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for logs and the terminal."""
        if self.busy:
            return "gap layers: another process is refreshing them"
        parts = []
        if self.refreshed:
            parts.append(f"refreshed {', '.join(self.refreshed)} in {self.seconds:.1f} s")
        if self.failed:
            parts.append(f"FAILED {', '.join(self.failed)} (details in the log)")
        return "gap layers: " + ("; ".join(parts) if parts else "already current")


def _acquire(conn: sa.Connection, wait_seconds: float) -> bool:
    """Take ``REFRESH_LOCK`` on ``conn`` (session level), polling up to ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    while True:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": REFRESH_LOCK}).scalar()
        conn.commit()  # end the implicit transaction; a session lock outlives it
        if got or time.monotonic() >= deadline:
            return bool(got)
        time.sleep(0.25)


def refresh_stale(ind: IndicatorEngine, *, wait_seconds: float = 0.0,
                  stop: threading.Event | None = None) -> RefreshOutcome:
    """Rewrite the stale derived outputs of ``ind``'s database, one process at a time.

    Parameters
    ----------
    ind : IndicatorEngine
        The engine (database, catalog, settings) to refresh with.
    wait_seconds : float
        How long to wait for another process's refresh to end (0: give up at once, ``busy``).
    stop : threading.Event, optional
        When set (service shutting down), no further phase is started.

    Returns
    -------
    RefreshOutcome
    """
    started = time.perf_counter()
    out = RefreshOutcome()
    with ind.engine.connect() as conn:
        if not _acquire(conn, wait_seconds):
            out.busy = True
            return out
        try:
            for phase in phases(ind.indicators):
                if stop is not None and stop.is_set():
                    break
                with ind.engine.connect() as check:
                    todo = ind.stale_keys(check, output_keys(phase, ind.indicators))
                try:
                    ms = ind.ensure(todo) if todo else {}
                except IndicatorEngineBusy:  # a request's computation still runs: this refresh comes back later
                    out.busy = True
                    break
                except IndicatorComputationError as exc:
                    out.failed += [k.split(":", 1)[1] for k in exc.keys]
                    with ind.engine.connect() as check:
                        still = set(ind.stale_keys(check, todo))
                    ms = {k: float("nan") for k in todo if k not in still}
                out.refreshed.update({k.split(":", 1)[1]: v for k, v in ms.items()})
        finally:
            _release(conn)
    out.seconds = time.perf_counter() - started
    return out


def _release(conn: sa.Connection) -> None:
    """Release ``REFRESH_LOCK``; a connection that cannot is discarded (closing the session frees the lock)."""
    try:
        conn.rollback()
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": REFRESH_LOCK})
        conn.commit()
    except sa.exc.DBAPIError:
        log.warning("gap refresh: could not release the advisory lock; discarding the connection")
        with contextlib.suppress(Exception):
            conn.invalidate()
