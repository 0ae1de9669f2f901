"""HTTP content codings: negotiation of ``Accept-Encoding``, gzip and Brotli, ETags per coding.

A response body is sent as Brotli (``br``) when the client accepts it, else gzip, else as it is. Each coding
is a distinct representation with its own ETag: the identity tag with ``-br`` or ``-gz`` before its closing
quote (``"abc"`` → ``"abc-gz"``). Conditional requests naming a tag of the coding being negotiated are handed
to routes as identity tags (:func:`decoded_tags`), so a route compares its identity ETag and the coding is put
back on the way out.

Pure functions (no HTTP framework): used by the response middleware (:mod:`cim_service.compression`) and by
the tile cache, which keeps the coded bytes of a tile next to its identity bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

import brotli
from isal import igzip

IDENTITY, GZIP, BR = "identity", "gzip", "br"
#: preference when several codings are equally acceptable
PREFERENCE = (BR, GZIP)
#: ETag suffix of each coding
SUFFIX = {GZIP: "-gz", BR: "-br"}
#: bodies shorter than this are sent as they are (the coding's framing would eat the gain)
MIN_BYTES = 512
#: compression levels of bodies kept once compressed (cached tiles) and of the response middleware's bodies
GZIP_LEVEL = 6
BROTLI_QUALITY = 5
#: levels of bodies compressed for one response and then dropped (uncached tiles): gzip with ISA-L's igzip at
#: its highest level (a z14 camera tile of 25.7 KB: 10.6 KB in 0.21 ms, where zlib's level 6 gives 9.7 KB in
#: 1.03 ms and tipg sends 10.7 KB) and Brotli at quality 3 (10.1 KB in 0.52 ms; quality 5: 8.3 KB in 1.8 ms)
FAST_GZIP_LEVEL = 3
FAST_BROTLI_QUALITY = 3
STREAM_BROTLI_LGWIN = 19
#: media types (without parameters) worth compressing besides ``text/*`` and ``*+json``/``*+xml``
COMPRESSIBLE = frozenset({
    "application/json", "application/javascript", "application/xml", "application/vnd.mapbox-vector-tile",
    "application/x-protobuf", "application/vnd.oai.openapi+json", "image/svg+xml", "application/x-ndjson",
    # file exports that are not compressed inside (GeoParquet is, with zstd): on the plan-scale addresses
    # GeoJSONSeq shrinks 13-19x, FlatGeobuf 7-9x, GeoPackage 5-6x; streamed exports are coded chunk by chunk
    "application/geo+json-seq", "application/flatgeobuf", "application/geopackage+sqlite3",
})


def negotiate(accept_encoding: str | None) -> str:
    """The coding to send for an ``Accept-Encoding`` header value: ``br``, ``gzip`` or ``identity``.

    q-values are honoured (``q=0`` refuses a coding; ``*`` stands for codings not named); among equal q-values
    Brotli wins. An absent header means identity (RFC 9110 allows any coding, but clients that omit it are
    rarely ready for one).
    """
    if not accept_encoding:
        return IDENTITY
    q: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        params = params.strip().lower()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        q[name] = weight
    star = q.get("*", 0.0)
    best, best_q = IDENTITY, 0.0
    for coding in PREFERENCE:
        weight = q.get(coding, q.get("x-gzip", star) if coding == GZIP else star)
        if weight > best_q:
            best, best_q = coding, weight
    return best


def compressible(content_type: str | None) -> bool:
    """Tell whether a body of this ``Content-Type`` is worth compressing (text, JSON, XML, MVT)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (media.startswith("text/") or media.endswith("+json") or media.endswith("+xml")
            or media in COMPRESSIBLE)


def compress(data: bytes, coding: str) -> bytes:
    """``data`` in ``coding`` (gzip without a timestamp, so equal inputs give equal bytes)."""
    if coding == GZIP:
        return gzip.compress(data, GZIP_LEVEL, mtime=0)
    if coding == BR:
        return brotli.compress(data, quality=BROTLI_QUALITY)
    return data


def compress_fast(data: bytes, coding: str) -> bytes:
    """``data`` in ``coding`` at the fast levels, for a body sent once and not kept (an uncached tile)."""
    if coding == GZIP:
        return igzip.compress(data, FAST_GZIP_LEVEL, mtime=0)
    if coding == BR:
        return brotli.compress(data, quality=FAST_BROTLI_QUALITY)
    return data


class StreamCompressor:
    """Incremental compression of a streamed body in one coding."""

    def __init__(self, coding: str):
        self.coding = coding
        if coding == GZIP:
            import zlib

            self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        else:
            # a 512 KiB window (not 4 MiB): a streamed export's encoder stays a few MB whatever its length
            self._b = brotli.Compressor(quality=BROTLI_QUALITY, lgwin=STREAM_BROTLI_LGWIN)

    def feed(self, data: bytes) -> bytes:
        """Compressed bytes available after ``data``."""
        if self.coding == GZIP:
            return self._z.compress(data)
        return self._b.process(data)

    def finish(self) -> bytes:
        """The rest of the compressed stream."""
        if self.coding == GZIP:
            return self._z.flush()
        return self._b.finish()


def coded_etag(etag: str, coding: str) -> str:
    """The ETag of the ``coding`` representation of a resource whose identity ETag is ``etag``."""
    if coding == IDENTITY or not etag.endswith('"'):
        return etag
    return etag[:-1] + SUFFIX[coding] + '"'


def decoded_tags(if_none_match: str, coding: str) -> str:
    """An ``If-None-Match`` value with the tags of ``coding`` replaced by their identity tags.

    Routes compare identity ETags (some by plain equality), so a client holding the Brotli body (``"abc-br"``)
    asking again with Brotli is asked about ``"abc"``; the 304 goes back with the tag it sent.
    """
    if coding == IDENTITY:
        return if_none_match
    suffix = SUFFIX[coding] + '"'
    tags = [t.strip() for t in if_none_match.split(",")]
    return ", ".join(t[: -len(suffix)] + '"' if t.endswith(suffix) else t for t in tags)


def matches(if_none_match: str, etag: str) -> bool:
    """Tell whether ``If-None-Match`` names ``etag`` (weak comparison, ``*`` matches anything)."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def add_vary(values: Iterable[str]) -> str:
    """A ``Vary`` value with ``Accept-Encoding`` added to ``values`` (once)."""
    names = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if not any(n.lower() == "accept-encoding" for n in names):
        names.append("Accept-Encoding")
    return ", ".join(names)
