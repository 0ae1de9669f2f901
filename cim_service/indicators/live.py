"""The service's periodic recomputation of the live indicators (``app.state.live_indicators``).

The live kinds (``Kind.live``: the neuron nodes' online rate, the key flood sites with a live sensor) move with the
readings, which bump no layer version. Every ``CIM_LIVE_INDICATOR_PERIOD_S`` this task recomputes those whose
stored result has aged (:meth:`IndicatorEngine.refresh_live`, in a worker thread: the event loop never waits
for SQL), and stores them like every other result, so ``/indicators``, the operations screen's KPI cards and
``?at=`` read them unchanged. Across processes the engine's advisory lock and its stale check make one compute.
The first run waits one period (a request in between computes what it needs). Errors are logged; the task never
dies of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cim_service.indicators.engine import IndicatorEngine

log = logging.getLogger(__name__)


class LiveIndicators:
    """Recompute the live indicators of one engine every ``period_s``."""

    def __init__(self, ind: IndicatorEngine, period_s: float):
        self.ind = ind
        self.period_s = period_s
        self.runs = 0
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Start the periodic task (nothing to do without live indicators)."""
        if self.ind.live_ids:
            self._task = asyncio.create_task(self._loop(), name="cim-live-indicators")

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period_s)
            if self._stop.is_set():
                return
            try:
                await asyncio.to_thread(self.ind.refresh_live)
                self.runs += 1
            except Exception:  # noqa: BLE001 - tried again at the next period
                log.exception("live indicators: recomputation failed")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the computation in hand (at most ``timeout_s``)."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_s)
            except TimeoutError:
                log.warning("live indicators: a recomputation outlasted the shutdown")
