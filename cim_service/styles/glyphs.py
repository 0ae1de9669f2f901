"""MapLibre SDF glyph ranges (``{fontstack}/{start}-{end}.pbf``) made from the installed Noto Sans CJK font.

A range is 256 code points; its protobuf (the ``glyphs.proto`` of MapLibre/Mapbox GL) holds, for every code
point the font has, a signed distance field of the glyph rendered at 24 px with a 3 px buffer, its metrics
and advance. The distance field follows TinySDF / node-fontnik: ``255 - 255 * (d / 8 + 0.25)`` (``d`` the signed
distance in pixels, positive outside), so the glyph's edge is at 192, as MapLibre's shaders expect.

Ranges are built on demand (a few hundred milliseconds each, off the event loop: the caller runs
:meth:`GlyphStore.range` in a thread) and cached as files under ``<home>/glyphs/<fontstack>/``. A stamp in that
folder names the font file (path, size, mtime) and the builder's version: when either changes, the cache is
emptied, so no stale range is ever served. ``cim glyphs build`` builds the ranges that a text set needs
(the catalog's labels, the demo's names, Latin) ahead, at install time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

#: the glyph size, buffer, SDF radius and cutoff MapLibre's shaders are tuned for
SIZE = 24
BUFFER = 3
RADIUS = 8.0
CUTOFF = 0.25
#: blank pixels between glyphs on the sheet the distance transform runs over: beyond the field's reach
#: (a distance of RADIUS * (1 - CUTOFF) is already 0)
GAP = 8
#: bump when the encoding of a range changes (part of the cache stamp)
BUILDER_VERSION = "1"
RANGE = 256
MAX_CODEPOINT = 0xFFFF
#: where Debian's fonts-noto-cjk puts the font, and the face of the collection that is Simplified Chinese
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
)
FACE_FAMILY = "Noto Sans CJK SC"
FONTSTACK = "Noto Sans CJK SC Regular"
_RANGE_NAME = re.compile(r"^(\d{1,5})-(\d{1,5})$")


class GlyphsUnavailable(RuntimeError):
    """The CJK font is not installed (``scripts/bootstrap`` installs fonts-noto-cjk)."""


@dataclass(frozen=True)
class FontFile:
    """The font the glyphs are made from: a file and the face index of Simplified Chinese within it."""

    path: Path
    index: int

    @property
    def fingerprint(self) -> str:
        """What identifies this font's content for the cache stamp: path, size and modification time."""
        st = self.path.stat()
        return f"{self.path}:{self.index}:{st.st_size}:{int(st.st_mtime)}"


@lru_cache(maxsize=1)
def find_font() -> FontFile:
    """Return the installed Noto Sans CJK SC face, or raise GlyphsUnavailable."""
    from PIL import ImageFont

    for candidate in FONT_CANDIDATES:
        path = Path(candidate)
        if not path.is_file():
            continue
        for index in range(16):
            try:
                font = ImageFont.truetype(str(path), SIZE, index=index)
            except OSError:
                break
            if font.getname()[0] == FACE_FAMILY:
                return FontFile(path, index)
        return FontFile(path, 0)
    raise GlyphsUnavailable("Noto Sans CJK is not installed (apt-get install fonts-noto-cjk; scripts/bootstrap)")


def parse_range(name: str) -> int:
    """Return the first code point of a range name ``"{start}-{end}"``; ValueError unless a 256-aligned range."""
    m = _RANGE_NAME.match(name)
    if not m:
        raise ValueError(f"glyph range {name!r} is not '<start>-<end>'")
    start, end = int(m.group(1)), int(m.group(2))
    if start % RANGE or end != start + RANGE - 1 or end > MAX_CODEPOINT:
        raise ValueError(f"glyph range {name!r} must be 256 code points from a multiple of 256, at most 65535")
    return start


def range_name(start: int) -> str:
    """The range name of the range starting at ``start``."""
    return f"{start}-{start + RANGE - 1}"


def ranges_of(text: str) -> list[int]:
    """The starts of the ranges the characters of ``text`` fall in (sorted)."""
    return sorted({ord(ch) // RANGE * RANGE for ch in text if ord(ch) <= MAX_CODEPOINT})


# -- protobuf (glyphs.proto) ---------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _uint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _sint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint((value << 1) ^ (value >> 63))


def _bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


@dataclass(frozen=True)
class Glyph:
    """One glyph of a range: its SDF bitmap ((width + 6) × (height + 6) bytes) and metrics in pixels at 24 px."""

    id: int
    bitmap: bytes
    width: int
    height: int
    left: int
    top: int
    advance: int

    def encode(self) -> bytes:
        """The ``glyph`` message."""
        out = _uint(1, self.id)
        if self.bitmap:
            out += _bytes(2, self.bitmap)
        return (out + _uint(3, self.width) + _uint(4, self.height) + _sint(5, self.left) + _sint(6, self.top)
                + _uint(7, self.advance))


def encode_range(fontstack: str, start: int, glyphs: list[Glyph]) -> bytes:
    """The ``glyphs`` message of one fontstack's range."""
    stack = _bytes(1, fontstack.encode()) + _bytes(2, range_name(start).encode())
    stack += b"".join(_bytes(3, g.encode()) for g in glyphs)
    return _bytes(1, stack)


# -- rendering -----------------------------------------------------------------------------------------------
def sdf(alpha: np.ndarray) -> np.ndarray:
    """The signed distance field (uint8) of an anti-aliased coverage bitmap (0-1), already padded.

    Pixels are inside where the coverage is at least one half; the distance to the other side is the Euclidean
    distance transform, corrected by the coverage of edge pixels (how far the edge lies within the pixel).
    """
    inside = alpha >= 0.5
    if not inside.any():
        return np.zeros(alpha.shape, dtype=np.uint8)
    outside_d = ndimage.distance_transform_edt(~inside)
    inside_d = ndimage.distance_transform_edt(inside)
    d = np.where(inside, -(inside_d - 0.5), outside_d - 0.5)
    edge = (alpha > 0) & (alpha < 1)
    d = np.where(edge, 0.5 - alpha, d)
    return np.clip(np.round(255 - 255 * (d / RADIUS + CUTOFF)), 0, 255).astype(np.uint8)


class Renderer:
    """Renders the glyphs of one font face (Pillow's FreeType) into SDF glyphs."""

    def __init__(self, font: FontFile):
        from fontTools.ttLib import TTFont
        from PIL import ImageFont

        # the basic layout engine: one glyph needs no shaping, and Raqm's set-up per call costs more than the glyph
        self.font = ImageFont.truetype(str(font.path), SIZE, index=font.index, layout_engine=ImageFont.Layout.BASIC)
        tt = TTFont(str(font.path), fontNumber=font.index, lazy=True)
        cmap = tt.getBestCmap()
        scale = SIZE / tt["head"].unitsPerEm
        metrics = tt["hmtx"].metrics
        #: code point -> advance (pixels at 24 px)
        self.advances = {cp: round(metrics[name][0] * scale) for cp, name in cmap.items() if cp <= MAX_CODEPOINT}
        self.ascender = round(tt["hhea"].ascent * scale)
        tt.close()

    def coverage(self, cp: int) -> tuple[np.ndarray | None, int, int, int] | None:
        """The padded coverage bitmap (0-1) of ``cp`` with its left, top and advance; None without a glyph."""
        advance = self.advances.get(cp)
        if advance is None:
            return None
        mask, offset = self.font.getmask2(chr(cp), mode="L", anchor="ls")
        w, h = mask.size
        if w <= 0 or h <= 0:
            return None, 0, 0, advance
        cov = np.zeros((h + 2 * BUFFER, w + 2 * BUFFER), dtype=np.float32)
        cov[BUFFER:BUFFER + h, BUFFER:BUFFER + w] = np.frombuffer(bytes(mask), dtype=np.uint8).reshape(h, w) / 255.0
        # top: the glyph's top above the baseline, less the ascender (node-fontnik's convention)
        return cov, offset[0], -offset[1] - self.ascender, advance

    def glyphs(self, codepoints: range | list[int]) -> list[Glyph]:
        """The SDF glyphs of the code points the font has.

        The coverages are laid out on one sheet with gaps wider than the distance field reaches (so no glyph
        sees another) and the distance transform runs once over the sheet, not once per glyph.
        """
        rendered = [(cp, c) for cp in codepoints if (c := self.coverage(cp)) is not None]
        inked = [(cp, c) for cp, c in rendered if c[0] is not None]
        fields: dict[int, np.ndarray] = {}
        if inked:
            cell_h = max(c[0].shape[0] for _, c in inked) + GAP
            cell_w = max(c[0].shape[1] for _, c in inked) + GAP
            cols = 16
            rows = -(-len(inked) // cols)
            sheet = np.zeros((rows * cell_h, cols * cell_w), dtype=np.float32)
            for i, (_, c) in enumerate(inked):
                y, x = i // cols * cell_h, i % cols * cell_w
                h, w = c[0].shape
                sheet[y:y + h, x:x + w] = c[0]
            field = sdf(sheet)
            for i, (cp, c) in enumerate(inked):
                y, x = i // cols * cell_h, i % cols * cell_w
                h, w = c[0].shape
                fields[cp] = field[y:y + h, x:x + w]
        out = []
        for cp, (cov, left, top, advance) in rendered:
            if cov is None:
                out.append(Glyph(cp, b"", 0, 0, 0, 0, advance))
            else:
                h, w = cov.shape
                out.append(Glyph(cp, fields[cp].tobytes(), w - 2 * BUFFER, h - 2 * BUFFER, left, top, advance))
        return out

    def glyph(self, cp: int) -> Glyph | None:
        """The SDF glyph of code point ``cp``, or None when the font has none."""
        found = self.glyphs([cp])
        return found[0] if found else None

    def build(self, fontstack: str, start: int) -> bytes:
        """The protobuf of the range starting at ``start``."""
        return encode_range(fontstack, start, self.glyphs(range(start, start + RANGE)))


class GlyphStore:
    """The glyph ranges of the served fontstack, cached under ``folder`` and built once each."""

    def __init__(self, folder: Path, font: FontFile | None = None):
        self._font = font
        self.folder = Path(folder) / FONTSTACK.replace(" ", "_")
        self._renderer: Renderer | None = None
        self._lock = threading.Lock()
        self._stamped = False

    @property
    def font(self) -> FontFile:
        """The font the glyphs are made from (found on first use; GlyphsUnavailable without it)."""
        if self._font is None:
            self._font = find_font()
        return self._font

    @property
    def stamp(self) -> str:
        """The cache's stamp: the font's fingerprint and the builder's version (and this module's code)."""
        code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
        return json.dumps({"font": self.font.fingerprint, "builder": BUILDER_VERSION, "code": code})

    def _ensure_folder(self) -> None:
        if self._stamped:
            return
        stamp_file = self.folder / "stamp.json"
        if not stamp_file.is_file() or stamp_file.read_text() != self.stamp:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp_file.write_text(self.stamp)
        self._stamped = True

    def path(self, start: int) -> Path:
        """The cache file of the range starting at ``start``."""
        return self.folder / f"{range_name(start)}.pbf"

    def cached(self, start: int) -> bytes | None:
        """The cached range, or None when it is not built yet (no building and, once the stamp is checked, no
        waiting for a build: safe on the event loop; ranges are written by an atomic rename)."""
        if not self._stamped:
            with self._lock:
                self._ensure_folder()
        p = self.path(start)
        return p.read_bytes() if p.is_file() else None

    def range(self, start: int) -> bytes:
        """The range starting at ``start``, built and cached the first time (blocking: call it in a thread)."""
        with self._lock:
            self._ensure_folder()
            p = self.path(start)
            if p.is_file():
                return p.read_bytes()
            if self._renderer is None:
                self._renderer = Renderer(self.font)
            data = self._renderer.build(FONTSTACK, start)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, p)
            return data

    def build(self, text: str) -> list[int]:
        """Build (or keep) the ranges of ``text`` and Latin-1; return the starts of the ranges built now."""
        built = []
        for start in sorted(set(ranges_of(text)) | {0}):
            if self.cached(start) is None:
                self.range(start)
                built.append(start)
        return built
