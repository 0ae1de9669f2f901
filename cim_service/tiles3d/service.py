"""The 3D Tiles of a process: one built tileset per extruded layer, rebuilt only when the layer's version changes.

A build reads the layer and meshes it in a worker thread (never on the event loop), one build at a time per
process; requests for the same layer wait for the build under way instead of starting another. The built
tileset stays in memory until the layer's version moves on (``cim_meta.layer_state``, bumped by every
writer), so ``tileset.json`` and its content are served from memory after the first request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import anyio
import anyio.to_thread
from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Engine

from cim_service.core.catalog import LayerSpec
from cim_service.metrics import REGISTRY
from cim_service.tiles3d.build import MAX_FEATURES, Tileset, build_tileset
from cim_service.tiles3d.source import read_features

BUILDS = Counter("cim_3dtiles_builds", "3D Tiles tilesets built (a layer's first request or a new version).",
                 registry=REGISTRY)
BUILD_SECONDS = Histogram("cim_3dtiles_build_seconds", "Time to read and mesh one 3D Tiles tileset.",
                          buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=REGISTRY)


@dataclass(frozen=True)
class Built:
    """A tileset built from one version of a layer."""

    version: int
    tileset: Tileset
    seconds: float


def build_layer(engine: Engine, spec: LayerSpec, max_features: int = MAX_FEATURES) -> Built:
    """Read ``spec`` and build its tileset (blocking: run it in a thread)."""
    started = time.perf_counter()
    version, feats = read_features(engine, spec)
    tileset = build_tileset(feats, version, spec.title_en, max_features=max_features)
    return Built(version, tileset, time.perf_counter() - started)


class Tiles3DState:
    """Per-process built tilesets (``app.state.tiles3d``)."""

    def __init__(self, engine: Engine, max_features: int = MAX_FEATURES):
        self.engine = engine
        self.max_features = max_features
        self.builds = 0
        self._built: dict[str, Built] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._limiter: anyio.CapacityLimiter | None = None

    def cached(self, layer_id: str) -> Built | None:
        """The tileset in memory for a layer (any version), or None."""
        return self._built.get(layer_id)

    async def get(self, spec: LayerSpec, version: int) -> Built:
        """The tileset of ``spec`` at ``version`` or newer, built (off the loop) when memory has an older one."""
        built = self._built.get(spec.id)
        if built is not None and built.version >= version:
            return built
        lock = self._locks.setdefault(spec.id, asyncio.Lock())
        async with lock:
            built = self._built.get(spec.id)
            if built is not None and built.version >= version:
                return built
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(1)
            built = await anyio.to_thread.run_sync(build_layer, self.engine, spec, self.max_features,
                                                   limiter=self._limiter)
            self.builds += 1
            BUILDS.inc()
            BUILD_SECONDS.observe(built.seconds)
            self._built[spec.id] = built
            return built
