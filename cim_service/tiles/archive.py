"""PMTiles v3 archives of the public layers: written from the service's own MVT builder, read for serving.

:func:`write_pmtiles` renders every Web Mercator tile covering the layers' recorded extents from ``minzoom`` to
``maxzoom``, one MVT layer per collection exactly as ``/tiles/WebMercatorQuad/{z}/{x}/{y}`` serves them to an
anonymous caller (same SQL, thinning and fields), gzip'ed, written in tile-id (Hilbert) order with the
``pmtiles`` package's writer; empty tiles are left out (readers treat a missing tile as empty). The metadata is
TileJSON-like: ``name``, ``description``, ``attribution``, ``vector_layers`` (fields, zooms) and the layer
versions the archive was made from (``cim:layer_versions``).

The serving side (``routes/pmtiles.py``) reads archives from ``CIM_PMTILES_DIR``: :func:`archive_path` resolves
a name safely, :func:`parse_range` reads a ``Range`` header, :func:`read_tile` gets one tile out of an archive.
"""

from __future__ import annotations

import asyncio
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from cim_service.core.catalog import Access, LayerSpec
from cim_service.errors import InvalidParameter, NotFound, RangeNotSatisfiable
from cim_service.store import layer_state
from cim_service.store.db import Database
from cim_service.tiles.mvt import build_tile_sql
from cim_service.tiles.tilejson import tilejson, union_bbox
from cim_service.tiles.tms import get_tms, tile_ref

TMS = "WebMercatorQuad"
#: tiles rendered at once (statements in flight on the pool)
CONCURRENCY = 4
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class ArchiveSummary:
    """What an archive holds."""

    path: Path
    layers: list[str]
    minzoom: int
    maxzoom: int
    tiles: int
    bytes: int


def public_layers(specs: list[LayerSpec], wanted: list[str] | None) -> list[LayerSpec]:
    """The layers of an archive: ``wanted`` (each must be public) or every public layer, in catalog order."""
    public = [s for s in specs if s.access is Access.public]
    if not wanted:
        return public
    by_id = {s.id: s for s in specs}
    out = []
    for layer_id in dict.fromkeys(wanted):
        spec = by_id.get(layer_id)
        if spec is None:
            raise InvalidParameter(f"unknown collection {layer_id!r}; public ones: {', '.join(s.id for s in public)}")
        if spec.access is not Access.public:
            raise InvalidParameter(f"collection {layer_id!r} is not public: archives hold public layers only")
        out.append(spec)
    return out


def tile_ids(bbox: tuple[float, float, float, float], minzoom: int, maxzoom: int) -> list[tuple[int, int, int]]:
    """Every (z, x, y) covering the WGS84 ``bbox`` from ``minzoom`` to ``maxzoom``, in PMTiles tile-id order."""
    tms = get_tms(TMS)
    out = []
    for z in range(minzoom, maxzoom + 1):
        ul, lr = tms.tile(bbox[0], bbox[3], z), tms.tile(bbox[2], bbox[1], z)
        out += [(z, x, y) for x in range(ul.x, lr.x + 1) for y in range(ul.y, lr.y + 1)]
    return sorted(out, key=lambda t: zxy_to_tileid(*t))


async def write_pmtiles(db: Database, specs: list[LayerSpec], out: Path, *, minzoom: int, maxzoom: int,
                        max_features: int, name: str = "minhang-cim") -> ArchiveSummary:
    """Write the PMTiles v3 archive of ``specs`` (public layers) to ``out`` (replaced atomically)."""
    if not 0 <= minzoom <= maxzoom <= 22:
        raise InvalidParameter(f"zoom levels must satisfy 0 <= minzoom <= maxzoom <= 22, got {minzoom}..{maxzoom}")
    if not specs:
        raise InvalidParameter("no layer to write")
    ids = [s.id for s in specs]
    extents, versions = await db.run(lambda s: _states(s, ids))
    bbox = union_bbox(list(extents.values()))
    fields = {s.id: tuple(f.name for f in s.public_fields(personal_data=False)) for s in specs}

    async def render(z: int, x: int, y: int) -> bytes:
        tile = tile_ref(TMS, z, x, y)
        parts = []
        for spec in specs:
            q = build_tile_sql(spec, tile, fields[spec.id], max_features)
            parts.append(bytes(await db.fetchval(q.sql, *q.args) or b""))
        return b"".join(parts)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    todo = tile_ids(bbox, minzoom, maxzoom)
    written = 0
    sem = asyncio.Semaphore(CONCURRENCY)

    async def bounded(t: tuple[int, int, int]) -> bytes:
        async with sem:
            return await render(*t)

    with partial.open("wb") as f:
        writer = Writer(f)
        for start in range(0, len(todo), CONCURRENCY * 8):  # in order, a few tiles in flight at a time
            chunk = todo[start:start + CONCURRENCY * 8]
            tiles = await asyncio.gather(*(bounded(t) for t in chunk))
            for (z, x, y), data in zip(chunk, tiles, strict=True):
                if data:
                    writer.write_tile(zxy_to_tileid(z, x, y), gzip.compress(data, compresslevel=6, mtime=0))
                    written += 1
        if not written:
            raise InvalidParameter("the selected layers have no feature in the zoom range: nothing to write")
        doc = tilejson(name, "", TMS, [(s, s.public_fields(personal_data=False)) for s in specs], bbox, live=False)
        for layer in doc["vector_layers"]:
            layer.update(minzoom=minzoom, maxzoom=maxzoom)
        metadata = {"name": name, "format": "pbf", "type": "overlay",
                    "description": "Minhang CIM public layers (vector tiles of the CIM一张图 service)",
                    "attribution": "Minhang CIM", "vector_layers": doc["vector_layers"],
                    "cim:layer_versions": versions}
        e7 = [round(v * 10_000_000) for v in bbox]
        writer.finalize({"tile_type": TileType.MVT, "tile_compression": Compression.GZIP,
                         "min_lon_e7": e7[0], "min_lat_e7": e7[1], "max_lon_e7": e7[2], "max_lat_e7": e7[3],
                         "center_zoom": min(max(12, minzoom), maxzoom),
                         "center_lon_e7": (e7[0] + e7[2]) // 2, "center_lat_e7": (e7[1] + e7[3]) // 2}, metadata)
    partial.replace(out)
    return ArchiveSummary(out, ids, minzoom, maxzoom, written, out.stat().st_size)


async def _states(session, ids: list[str]) -> tuple[dict, dict[str, int]]:  # noqa: ANN001 - store Session
    extents = await layer_state.fetch_extents(session, ids)
    versions = await layer_state.fetch_versions(session)
    return extents, {i: versions[i] for i in ids if i in versions}


# -- serving ----------------------------------------------------------------------------------------

def archive_path(folder: Path, name: str) -> Path:
    """The archive ``name`` (with or without ``.pmtiles``) in ``folder``; 404 for anything else (no traversal)."""
    stem = name.removesuffix(".pmtiles")
    if not NAME.match(stem) or ".." in stem:
        raise NotFound(f"archive {name!r} not found")
    path = folder / f"{stem}.pmtiles"
    if not path.is_file():
        raise NotFound(f"archive {name!r} not found")
    return path


def etag(path: Path) -> str:
    """Strong validator of an archive file: its size and modification time (archives are replaced, not edited)."""
    st = path.stat()
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` (one range; ``a-`` and ``-n`` too) as inclusive (start, end) within ``size``.

    None when the header is not a single byte range (the whole file is then sent, as RFC 9110 allows);
    :class:`RangeNotSatisfiable` (416) when the range starts beyond the file.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) \
            or (last and not last.isdigit()):
        return None
    if not first:  # suffix: the last n bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(f"range {header!r} is empty", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(f"range {header!r} starts beyond the archive's {size} bytes",
                                  headers={"Content-Range": f"bytes */{size}"})
    if end < start:
        return None
    return start, end


def read_range(path: Path, start: int, end: int) -> bytes:
    """Bytes ``start..end`` (inclusive) of a file (run off the event loop)."""
    with path.open("rb") as f:
        f.seek(start)
        return f.read(end - start + 1)


def read_tile(path: Path, z: int, x: int, y: int) -> tuple[bytes | None, dict]:
    """One tile of an archive (as stored: gzip'ed when the archive says so) and the archive's header."""
    with path.open("rb") as f:
        reader = Reader(MmapSource(f))
        header = reader.header()
        if header["tile_type"] is not TileType.MVT:
            raise NotFound(f"archive {path.stem!r} holds no vector tiles")
        if not header["min_zoom"] <= z <= header["max_zoom"]:
            raise NotFound(f"zoom {z} is outside the archive's {header['min_zoom']}..{header['max_zoom']}")
        tile_ref(TMS, z, x, y)  # 404 for a column or row outside the matrix
        data = reader.get(z, x, y)
    return data, header
