"""Keep CPU-bound request work off the event loop, and measure how long the loop is held.

One event loop serves every request of a worker: a request that parses a long filter or renders an HTML page
on it delays every other request, ``/healthz`` included. Such work goes through :func:`off_loop`: one worker
thread per process (:data:`CPU_THREADS`), so many hostile requests queue instead of starving the loop of the
GIL (with more threads the loop waited for the GIL behind each of them).

:class:`LoopLagProbe` wakes up every :data:`PROBE_INTERVAL_S` and records how late it woke in the Prometheus
histogram ``cim_event_loop_lag_seconds`` (wall time: work on the loop, but also a busy machine's scheduling), and
the CPU time the loop's own thread spent between two wake-ups in ``cim_event_loop_busy_seconds``: the time work
running on the loop held it, whatever else the machine is doing. It runs for the
application's lifetime (started and stopped with the ASGI lifespan by :class:`cim_service.edge.Edge`), which
also takes the started application's objects out of the cyclic garbage collector (full collections held the loop
for 0.3-0.7 s).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from prometheus_client import Histogram
from starlette.types import Message, Receive, Send

from cim_service.metrics import REGISTRY

T = TypeVar("T")
log = logging.getLogger(__name__)
PROBE_INTERVAL_S = 0.02
LOOP_LAG = Histogram(
    "cim_event_loop_lag_seconds",
    "How late the event loop woke a timer (time it was held by other work), sampled every 20 ms.",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
LOOP_BUSY = Histogram(
    "cim_event_loop_busy_seconds",
    "CPU time the event loop's thread spent between two wake-ups of a 20 ms timer (time work on the loop held it).",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
CPU_THREADS = 1
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = \
    weakref.WeakKeyDictionary()


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(CPU_THREADS)
    return limiter


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    """Run the CPU-bound ``fn(*args)`` in the bounded worker threads and return its result."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_limiter())


class LoopLagProbe:
    """A timer task on the event loop that records its own lateness (loop blocking) in ``LOOP_LAG``."""

    def __init__(self, interval: float = PROBE_INTERVAL_S):
        self.interval = interval
        self.worst = 0.0
        self.worst_busy = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start sampling on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cim-loop-lag-probe")

    def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - before - self.interval)
            busy = max(0.0, time.thread_time() - cpu_before)
            LOOP_LAG.observe(lag)
            LOOP_BUSY.observe(busy)
            self.worst = max(self.worst, lag)
            self.worst_busy = max(self.worst_busy, busy)

    def wrap_lifespan(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """Wrap the ASGI lifespan: once started, settle the heap and sample; on shutdown stop and unfreeze.

        The objects of a started application (catalog, routes, imported modules: ~250,000) are moved out of
        the cyclic garbage collector's reach (:func:`gc.freeze`): a full collection otherwise walks them all,
        holding the GIL, and so the loop, for 0.3-0.7 s on a loaded machine.
        """

        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                self.stop()
                gc.unfreeze()
            return message

        async def wrapped_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
                self.start()
            await send(message)

        return wrapped_receive, wrapped_send


class Slots:
    """A bounded number of long jobs (exports) per process: :meth:`take` refuses instead of queueing."""

    def __init__(self, size: int):
        self.size = size
        self.busy = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take a slot; False when all are busy."""
        with self._lock:
            if self.busy >= self.size:
                return False
            self.busy += 1
            return True

    def give_back(self) -> None:
        """Release a slot taken by :meth:`take`."""
        with self._lock:
            self.busy = max(0, self.busy - 1)


async def stream_from_thread(produce: Callable[[Callable[[bytes], None]], object], *,
                             on_done: Callable[[], None] | None = None,
                             buffered_chunks: int = 2) -> AsyncIterator[bytes]:
    """Run ``produce(emit)`` in a worker thread and return an async iterator over the chunks it emits.

    ``emit`` blocks the thread while ``buffered_chunks`` chunks wait to be sent (back-pressure: a slow client
    slows the producer, memory stays bounded). The first chunk is awaited here, so an error raised before any
    byte is made (a bad query, a refused size) is raised by this call, while a response can still report it.
    When the consumer stops early (a client gone), the producer's next ``emit`` raises and the thread ends.
    ``on_done`` runs once the thread has finished, whatever the outcome.
    """
    send, receive = anyio.create_memory_object_stream[bytes](max_buffer_size=buffered_chunks)

    def worker() -> None:
        def emit(chunk: bytes) -> None:
            if chunk:
                anyio.from_thread.run(send.send, chunk)

        try:
            produce(emit)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the consumer stopped reading
        finally:
            try:
                anyio.from_thread.run_sync(send.close)
            except RuntimeError:  # the event loop is gone (shutdown)
                pass

    task = asyncio.get_running_loop().create_task(_run_worker(worker, on_done))
    task.add_done_callback(_log_failure)  # retrieved (and logged) when no one awaits it
    try:
        first = await receive.receive()
    except anyio.EndOfStream:
        receive.close()
        await task  # raises the producer's error, if any
        return _nothing()
    except BaseException:
        receive.close()
        raise
    return _chunks(first, receive, task)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("streamed job failed: %r", task.exception())


async def _run_worker(worker: Callable[[], None], on_done: Callable[[], None] | None) -> None:
    try:
        await anyio.to_thread.run_sync(worker, abandon_on_cancel=False)
    finally:
        if on_done is not None:
            on_done()


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # noqa: B901 - makes this an (empty) async generator


async def _chunks(first: bytes, receive, task: asyncio.Task) -> AsyncIterator[bytes]:  # noqa: ANN001
    try:
        if first:
            yield first
        async for chunk in receive:
            yield chunk
        if task.done():
            task.result()  # a producer's error after the first chunk: the response ends short (client sees it)
        else:
            await task
    finally:
        receive.close()
