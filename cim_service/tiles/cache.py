"""In-process tile cache: an LRU bounded by bytes, keyed by layer version and request.

Each entry holds the tile's identity bytes and, once asked for, its gzip and Brotli bytes (compressed once,
then served from the entry like the identity bytes; :meth:`TileCache.add_coding` counts them in the bound).

Keys contain the layer's ``cim_meta.layer_state.version`` (kept current by :mod:`cim_service.store.versions`),
the tile matrix set and z/x/y, the filter and the selected fields (which also encode what the caller's role
may see). An ingest bumps the version, so older entries are never looked up again and age out of the LRU.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from cim_service import encoding

#: bookkeeping bytes counted per entry besides the tile content
ENTRY_OVERHEAD = 256


def etag_of(content: bytes) -> str:
    """Strong ETag of tile content."""
    return '"' + hashlib.blake2b(content, digest_size=12).hexdigest() + '"'


@dataclass(frozen=True)
class CachedTile:
    """A rendered tile, its ETag and its compressed forms (coding → bytes, filled on first demand)."""

    content: bytes
    etag: str
    coded: dict[str, bytes] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, content: bytes) -> CachedTile:
        """Wrap ``content`` with its ETag."""
        return cls(content, etag_of(content))

    def body(self, coding: str) -> tuple[bytes, str]:
        """The bytes to send for ``coding`` and the coding they are in (identity when not compressed yet)."""
        if coding != encoding.IDENTITY:
            data = self.coded.get(coding)
            if data is not None:
                return data, coding
        return self.content, encoding.IDENTITY

    @property
    def size(self) -> int:
        """Bytes held: identity and compressed forms."""
        return len(self.content) + sum(len(v) for v in self.coded.values())


class TileCache:
    """Least-recently-used map of tiles, bounded by the total bytes held."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedTile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes currently held (content plus overhead)."""
        return self._bytes

    def get(self, key: Hashable) -> CachedTile | None:
        """Return the cached tile for ``key`` (marking it recently used) or None."""
        with self._lock:
            tile = self._entries.get(key)
            if tile is not None:
                self._entries.move_to_end(key)
            return tile

    def put(self, key: Hashable, tile: CachedTile) -> None:
        """Store ``tile`` under ``key``, evicting the least recently used entries beyond the byte bound."""
        cost = tile.size + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size + ENTRY_OVERHEAD
            self._entries[key] = tile
            self._bytes += cost
            self._evict()

    def add_coding(self, key: Hashable | None, tile: CachedTile, coding: str, data: bytes) -> None:
        """Keep ``data`` (``tile`` compressed in ``coding``) with the tile, and count it when ``tile`` is cached."""
        with self._lock:
            if coding in tile.coded:
                return
            tile.coded[coding] = data
            if key is not None and self._entries.get(key) is tile:
                self._bytes += len(data)
                self._evict()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size + ENTRY_OVERHEAD

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
