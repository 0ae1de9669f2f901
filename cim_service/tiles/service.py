"""Render vector tiles through the cache: per-layer MVT bytes, concatenated for multi-layer tiles.

An MVT is a protobuf message whose layers are a repeated field, so the concatenation of single-layer tiles is
a valid multi-layer tile: each layer is rendered (and cached) once and shared by every combination; the
combination is cached too (under the keys of its layers), so its compressed forms are made once.

Tiles are compressed once per coding (gzip, Brotli) when a client first asks for that coding, off the event
loop when large, and the compressed bytes stay with the cached entry (:class:`cim_service.tiles.cache.CachedTile`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from cim_service import encoding
from cim_service.core.catalog import LayerSpec
from cim_service.core.settings import Settings
from cim_service.metrics import TILE_CACHE_HITS, TILE_CACHE_MISSES
from cim_service.offloop import off_loop
from cim_service.store.db import Database
from cim_service.store.versions import LayerVersions, VersionListener
from cim_service.tiles.cache import CachedTile, TileCache
from cim_service.tiles.labels import build_label_sql
from cim_service.tiles.mvt import build_tile_sql
from cim_service.tiles.tms import TileRef


@dataclass(frozen=True)
class LayerRequest:
    """What to render of one layer: the fields, an optional compiled filter and its cache identity."""

    spec: LayerSpec
    fields: tuple[str, ...]
    where: str | None = None
    where_args: tuple = ()
    filter_key: tuple | None = None
    #: fields the filter reads (for the access log; not part of the cache identity)
    filter_fields: tuple[str, ...] = ()
    #: read the layer as of this instant (its history) instead of now
    at: datetime | None = None
    #: render the layer's label points (``tiles.labels``) instead of its features
    labels: bool = False


@dataclass
class TileState:
    """Per-process tile machinery kept on ``app.state.tiles``."""

    db: Database
    max_features: int
    #: silence after which a sensing feature is offline (its tiles carry live state and are not cached)
    offline_s: float = 3600.0
    cache: TileCache | None = None
    versions: LayerVersions = field(default_factory=LayerVersions)
    #: the app's listener when the cache is on (it keeps ``versions`` current), else None
    listener: VersionListener | None = None

    @classmethod
    def create(cls, db: Database, settings: Settings, listener: VersionListener) -> TileState:
        """Create the state; with the cache on, its versions are ``listener``'s (cleared on each reconnection)."""
        state = cls(db=db, max_features=settings.max_features_per_tile, offline_s=settings.sensor_offline_s)
        if settings.tile_cache and settings.tile_cache_max_bytes > 0:
            state.cache = TileCache(settings.tile_cache_max_bytes)
            state.listener = listener
            state.versions = listener.versions
            listener.on_connect(state.cache.clear)
        return state

    def cache_key(self, req: LayerRequest, tile: TileRef) -> tuple | None:
        """Cache key of a layer tile, or None when the cache is off or the layer version is not known live."""
        if self.cache is None or not self.versions.live:
            return None
        if req.spec.sensing is not None and req.at is None:  # live state changes with every reading
            return None
        version = self.versions.get(req.spec.id)
        if version is None:
            return None
        return (req.spec.id, version, tile.tms_id, tile.z, tile.x, tile.y, req.fields, req.filter_key,
                self.max_features, req.at, req.labels)

    async def layer_tile(self, req: LayerRequest, tile: TileRef) -> CachedTile:
        """MVT of one layer for ``tile``, from the cache when possible."""
        key = self.cache_key(req, tile)
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                TILE_CACHE_HITS.inc()
                return hit
        TILE_CACHE_MISSES.inc()
        if req.labels:
            q = build_label_sql(req.spec, tile)
        else:
            q = build_tile_sql(req.spec, tile, req.fields, self.max_features, req.where, req.where_args, req.at,
                               self.offline_s)

        rendered = CachedTile.of(bytes(await self.db.fetchval(q.sql, *q.args) or b""))
        if key is not None:
            self.cache.put(key, rendered)
        return rendered

    async def tile(self, reqs: list[LayerRequest], tile: TileRef, coding: str = encoding.IDENTITY) -> CachedTile:
        """MVT with one layer per request, in request order, holding its ``coding`` form when worth it."""
        if len(reqs) == 1:
            key = self.cache_key(reqs[0], tile)
            rendered = await self.layer_tile(reqs[0], tile)
        else:
            keys = [self.cache_key(r, tile) for r in reqs]
            key = ("multi", *keys) if all(k is not None for k in keys) else None
            rendered = self.cache.get(key) if key is not None else None
            if rendered is None:
                parts = await asyncio.gather(*(self.layer_tile(r, tile) for r in reqs))
                rendered = CachedTile.of(b"".join(p.content for p in parts))
                if key is not None:
                    self.cache.put(key, rendered)
        if coding != encoding.IDENTITY and coding not in rendered.coded \
                and len(rendered.content) >= encoding.MIN_BYTES:
            if self.cache is not None and key is not None:  # kept: compressed once, at the stored level
                data = await _compress(rendered.content, coding, fast=False)
                self.cache.add_coding(key, rendered, coding, data)
            else:  # sent once: the fast level (compression was half the service's CPU of a z14 tile)
                rendered.coded[coding] = await _compress(rendered.content, coding, fast=True)
        return rendered


#: tiles at least this large are compressed in the worker thread, at the stored level (~1 ms per 32 KB) and at the
#: fast level (~0.7 ms per 128 KB)
OFF_LOOP_BYTES = 32 * 1024
FAST_OFF_LOOP_BYTES = 128 * 1024


async def _compress(content: bytes, coding: str, fast: bool) -> bytes:
    compress = encoding.compress_fast if fast else encoding.compress
    if len(content) >= (FAST_OFF_LOOP_BYTES if fast else OFF_LOOP_BYTES):
        return await off_loop(compress, content, coding)
    return compress(content, coding)
