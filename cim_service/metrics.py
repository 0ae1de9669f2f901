"""Prometheus metrics of the service: one registry, request latency, tile cache counters.

Other modules import the metric objects from here and update them, e.g. in the tile route::

    from cim_service.metrics import TILE_CACHE_HITS, TILE_CACHE_MISSES
    TILE_CACHE_HITS.inc()

``GET /metrics`` (routes/ops.py) renders :data:`REGISTRY`. With several uvicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` (``cim serve --workers N`` does) and the values of all workers are merged.
"""

from __future__ import annotations

import json
import logging
import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("cim.access")

REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_LATENCY = Histogram(
    "cim_http_request_duration_seconds",
    "HTTP request latency by method, route template and status code.",
    ("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
TILE_CACHE_HITS = Counter(
    "cim_tile_cache_hits", "Vector tiles served from the server-side cache.", registry=REGISTRY
)
TILE_CACHE_MISSES = Counter(
    "cim_tile_cache_misses", "Vector tiles rendered by PostGIS because they were not cached.",
    registry=REGISTRY,
)
FEATURES_RETURNED = Counter(
    "cim_features_returned", "Features returned by the items endpoints.", ("collection",), registry=REGISTRY
)

SENSOR_OBSERVATIONS = Counter(
    "cim_sensor_observations", "Observations committed by the MQTT bridge.", registry=REGISTRY
)
ALERTS_ACTIVE = Gauge(
    "cim_alerts_active", "Active alerts of the sensing layers, by severity (read from the database at each scrape).",
    ("severity",), registry=REGISTRY, multiprocess_mode="livemax",
)
EVENTS_STREAMS = Gauge(
    "cim_events_streams", "Open /events streams (Server-Sent Events).", registry=REGISTRY, multiprocess_mode="livesum",
)
EVENTS_SENT = Counter(
    "cim_events_sent", "Events written to /events streams, by type.", ("type",), registry=REGISTRY
)
EVENTS_DROPPED = Counter(
    "cim_events_dropped", "/events subscribers dropped for reading too slowly (sent a final reset).", registry=REGISTRY
)
SENSOR_REJECTED = Counter(
    "cim_sensor_rejected", "MQTT messages the bridge refused (kept in cim_sta.dead_letter), by reason.",
    ("reason",), registry=REGISTRY,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def render() -> bytes:
    """Render the metrics in the Prometheus text format (merging workers in multi-process mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Record one served request."""
    REQUEST_LATENCY.labels(method=method, route=route, status=str(status)).observe(seconds)


class RequestObserver:
    """ASGI middleware: latency histogram by route template and one JSON log line per request."""

    def __init__(self, app: ASGIApp, *, log_json: bool = True):
        self.app = app
        self.log_json = log_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request and record method, route template, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            observe_request(scope["method"], route, status, elapsed)
            if self.log_json:
                access_log.info(json.dumps({
                    "method": scope["method"], "route": route, "path": scope["path"], "status": status,
                    "ms": round(elapsed * 1000, 2),
                }))
