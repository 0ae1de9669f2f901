"""The 3D Tiles of a process: one built tileset per extruded layer, rebuilt only when the layer's version changes.

A build reads the layer and meshes it in a worker thread (never on the event loop), one build at a time per
process; requests for the same layer wait for the build under way instead of starting another. The built
tileset stays in memory until the layer's version moves on (``cim_meta.layer_state``, bumped by every
writer), so ``tileset.json`` and its content are served from memory after the first request. Builds are also
kept on disk (:mod:`cim_service.tiles3d.store`), so a restarted service or another worker process loads the
build of the current version instead of meshing the layer again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Engine

from cim_service.core.catalog import LayerSpec
from cim_service.metrics import REGISTRY
from cim_service.tiles3d import store
from cim_service.tiles3d.build import MAX_FEATURES, Tileset, build_tileset
from cim_service.tiles3d.source import database_identity, layer_stamp, read_features

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


def build_layer(engine: Engine, spec: LayerSpec, max_features: int = MAX_FEATURES,
                folder: Path | None = None) -> Built:
    """The tileset of ``spec``'s current version: from ``folder`` when stored there, else built (and stored).

    Blocking: run it in a thread. ``Built.seconds`` is 0 for a tileset loaded from disk.
    """
    started = time.perf_counter()
    database = database_identity(engine)
    if folder is not None:
        stamp = layer_stamp(engine, spec)
        stored = store.load(store.path_for(folder, database, spec.id, stamp, max_features))
        if stored is not None:
            return Built(stamp[0], stored, 0.0)
    stamp, feats = read_features(engine, spec)
    tileset = build_tileset(feats, stamp[0], spec.title_en, max_features=max_features)
    if folder is not None:
        store.save(store.path_for(folder, database, spec.id, stamp, max_features), tileset)
    return Built(stamp[0], tileset, time.perf_counter() - started)


class Tiles3DState:
    """Per-process built tilesets (``app.state.tiles3d``)."""

    def __init__(self, engine: Engine, max_features: int = MAX_FEATURES, folder: Path | None = None):
        self.engine = engine
        self.max_features = max_features
        self.folder = folder
        #: tilesets meshed by this process, and loaded from disk
        self.builds = 0
        self.loads = 0
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
            built = await anyio.to_thread.run_sync(build_layer, self.engine, spec, self.max_features, self.folder,
                                                   limiter=self._limiter)
            if built.seconds:
                self.builds += 1
                BUILDS.inc()
                BUILD_SECONDS.observe(built.seconds)
            else:
                self.loads += 1
            self._built[spec.id] = built
            return built
