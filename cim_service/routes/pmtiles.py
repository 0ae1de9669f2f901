"""PMTiles archives for offline and CDN use: ``/pmtiles/{name}`` with HTTP range requests, and its tiles.

Archives are files ``<name>.pmtiles`` in ``CIM_PMTILES_DIR`` (default ``<CIM_HOME>/pmtiles``), written by
``cim tiles export``; they hold public layers only, so they are served anonymously. ``/pmtiles/{name}`` answers
``Range: bytes=a-b`` with 206 and ``Content-Range`` (what PMTiles readers send), a range starting past the end
with 416 and ``Content-Range: bytes */size``, no or an unusable ``Range`` with the whole file (200); a strong
``ETag`` (size and mtime) with ``If-None-Match`` → 304 and ``If-Range`` honoured. ``/pmtiles/{name}/{z}/{x}/{y}.mvt``
serves one tile out of the archive (gzip'ed as stored when the client accepts it), 204 for an absent tile.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse

from cim_service import encoding
from cim_service.errors import error_responses
from cim_service.offloop import off_loop
from cim_service.tiles.archive import archive_path, etag, parse_range, read_range, read_tile
from cim_service.tiles.params import MVT

router = APIRouter(tags=["PMTiles"], responses=error_responses(400, 404))
PMTILES = "application/vnd.pmtiles"
Name = Annotated[str, Path(description="Archive name (`<name>` or `<name>.pmtiles`).", max_length=120)]
#: a response larger than this is read and sent in chunks of this size (readers ask for 16 KiB, then tiles)
CHUNK = 1024 * 1024


@router.get("/pmtiles/{name}", summary="A PMTiles archive (HTTP range requests)",
            responses={200: {"content": {PMTILES: {}}}, 206: {"description": "Partial content (Range)"},
                       304: {"description": "Not modified"}, 416: {"description": "Range not satisfiable"}})
async def archive(request: Request, name: Name) -> Response:
    """Serve an archive, or the byte range asked for in ``Range``."""
    path = archive_path(request.app.state.settings.pmtiles_folder, name)
    size, tag = path.stat().st_size, etag(path)
    headers = {"ETag": tag, "Accept-Ranges": "bytes", "Cache-Control": "public, max-age=300",
               "Content-Encoding": "identity"}
    if encoding.matches(request.headers.get("if-none-match", ""), tag):
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    bounds = parse_range(wanted, size) if wanted and (if_range is None or if_range == tag) else None
    if bounds is None:
        start, end, status = 0, size - 1, 200
    else:
        (start, end), status = bounds, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if end - start + 1 <= CHUNK:
        return Response(await off_loop(read_range, path, start, end), status_code=status, media_type=PMTILES,
                        headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(start, end + 1, CHUNK):
            yield await off_loop(read_range, path, offset, min(end, offset + CHUNK - 1))

    return StreamingResponse(chunks(), status_code=status, media_type=PMTILES, headers=headers)


@router.get("/pmtiles/{name}/{z}/{x}/{y}.mvt", summary="One vector tile out of a PMTiles archive",
            responses={200: {"content": {MVT: {}}}, 204: {"description": "No tile there"}})
async def archive_tile(request: Request, name: Name, z: Annotated[int, Path(ge=0, le=30)],
                       x: Annotated[int, Path(ge=0)], y: Annotated[int, Path(ge=0)]) -> Response:
    """Serve the tile ``z/x/y`` of an archive."""
    path = archive_path(request.app.state.settings.pmtiles_folder, name)
    data, header = await off_loop(read_tile, path, z, x, y)
    headers = {"ETag": etag(path).rstrip('"') + f'-{z}-{x}-{y}"', "Cache-Control": "public, max-age=300",
               "Vary": "Accept-Encoding"}
    if data is None:
        return Response(status_code=204, headers=headers)
    gzipped = header["tile_compression"].name == "GZIP"
    if gzipped and "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
    elif gzipped:
        data = await off_loop(gzip.decompress, data)
    return Response(data, media_type=MVT, headers=headers)
