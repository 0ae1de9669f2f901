"""Map labels of the catalog's labelled layers (``style.label``) and the web font subset that draws them.

:func:`fetch_anchors` reads where labels go, from the layer tables, bounded: a polygon's label at its interior
point (``ST_PointOnSurface``), a point's at the point, a line's along the line: the lines of one name are joined
and each part is given whole (its ``path``, simplified by :data:`PATH_SIMPLIFY_M`), with an anchor at its middle
(``at``: its share of the path) and a second point a little further on, so a client without the path turns the
text along the line. The map sets the name along the path glyph by glyph wherever the line runs in view, and
repeats it along long roads (``static/js/label-place.js``).

:class:`WebFonts` subsets the installed Noto Sans CJK to the characters of those labels as WOFF2 (fontTools),
named by the digest of the character set and the font, cached under ``<home>/fonts/web``: the deck.gl map
loads ``/fonts/web/{digest}.woff2`` as its label font, a few dozen kilobytes instead of the 20 MB font file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from cim_service.core.catalog import Catalog, LayerSpec
from cim_service.styles.glyphs import FontFile, find_font

#: a line label's path: the whole line (each part of the lines of one name), simplified by this much (Web Mercator
#: metres); the map places the name along the stretches in view, repeated along long roads
PATH_SIMPLIFY_M = 2.0
#: most label features one layer gives
MAX_LABELS_PER_LAYER = 5000
#: characters always in the web font (digits, Latin, punctuation of English labels)
BASE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F)) + "·（）()—–"
DIGEST = re.compile(r"^[0-9a-f]{20}$")
FONT_FAMILY = "CIM Noto Sans CJK SC"


def labelled_layers(catalog: Catalog) -> list[LayerSpec]:
    """The layers that declare ``style.label``, in catalog order."""
    return [spec for spec in catalog if spec.style.label is not None]


def _anchor_sql(spec: LayerSpec) -> str:
    """The SQL of one layer's label anchors (identifiers from the validated catalog; the limits are bound)."""
    label = spec.style.label
    assert label is not None
    zh = f'"{label.field}"'
    en = f'"{label.field_en}"' if label.field_en else "NULL"
    base = (f"SELECT {zh}::text AS zh, {en}::text AS en, geom_3857 AS g FROM {spec.qualified_table} "
            f"WHERE {zh} IS NOT NULL AND {zh}::text <> '' AND geom_3857 IS NOT NULL")
    if label.placement == "line":
        # the lines of one name joined (a road in many features is one road), then each part whole: its middle,
        # a point a little further on, and its path
        return (
            "WITH pieces AS (SELECT zh, en, (ST_Dump(g)).geom AS g FROM (" + base + ") s), "
            "named AS (SELECT zh, en, ST_LineMerge(ST_Collect(g)) AS g FROM pieces GROUP BY zh, en), "
            "parts AS (SELECT zh, en, (ST_Dump(g)).geom AS g FROM named), "
            "sized AS (SELECT zh, en, g, ST_Length(g) AS len FROM parts WHERE ST_Length(g) > 0) "
            "SELECT zh, en, ST_X(a) AS x, ST_Y(a) AS y, ST_X(b) AS bx, ST_Y(b) AS by, "
            "ST_AsGeoJSON(path, 6) AS path, ST_LineLocatePoint(path, a) AS path_at FROM ("
            "SELECT zh, en, len, ST_Transform(ST_LineInterpolatePoint(g, 0.5), 4326) AS a, "
            "ST_Transform(ST_LineInterpolatePoint(g, LEAST(1.0, 0.5 + LEAST(0.02, 200.0 / len))), 4326) AS b, "
            "ST_Transform(ST_Simplify(g, $1::float8), 4326) AS path FROM sized) p "
            "ORDER BY len DESC, zh LIMIT $2")
    return ("SELECT zh, en, ST_X(p) AS x, ST_Y(p) AS y, NULL::float8 AS bx, NULL::float8 AS by FROM ("
            "SELECT zh, en, ST_Transform(ST_PointOnSurface(g), 4326) AS p FROM (" + base + ") s) q "
            "WHERE p IS NOT NULL LIMIT $1")


async def fetch_anchors(session: Any, spec: LayerSpec) -> list[dict[str, Any]]:
    """Label anchors of one layer: ``{zh, en, position: [lon, lat], toward: [lon, lat] | None}``, a line's with
    ``path`` ([[lon, lat], ...] around the anchor) and ``at`` (the anchor's share of the path's length)."""
    label = spec.style.label
    assert label is not None
    line = label.placement == "line"
    args: list[Any] = [PATH_SIMPLIFY_M] if line else []
    rows = await session.fetch(_anchor_sql(spec), *args, MAX_LABELS_PER_LAYER)
    out = []
    for r in rows:
        item = {"zh": r["zh"], "en": r["en"], "position": [round(r["x"], 6), round(r["y"], 6)], "toward": None}
        if r["bx"] is not None:
            item["toward"] = [round(r["bx"], 6), round(r["by"], 6)]
        if line and r["path"] is not None:
            coords = json.loads(r["path"])["coordinates"]
            if len(coords) >= 2 and r["path_at"] is not None:
                item["path"] = coords
                item["at"] = round(float(r["path_at"]), 4)
        out.append(item)
    return out


def label_layer_entry(spec: LayerSpec, anchors: list[dict[str, Any]]) -> dict[str, Any]:
    """One layer's labels for the map: its label style and its anchors."""
    label = spec.style.label
    assert label is not None
    return {"id": spec.id, **label.model_dump(), "labels": anchors}


def characters(texts: list[str | None]) -> str:
    """The sorted distinct characters of ``texts`` and the base set."""
    chars = set(BASE_CHARS)
    for text in texts:
        if text:
            chars.update(text)
    return "".join(sorted(c for c in chars if c.isprintable()))


class WebFonts:
    """WOFF2 subsets of the CJK font, by the digest of their characters, cached on disk."""

    def __init__(self, folder: Path, font: FontFile | None = None):
        self.folder = Path(folder)
        self._font = font
        self._lock = threading.Lock()

    @property
    def font(self) -> FontFile:
        """The font subsetted (found on first use)."""
        if self._font is None:
            self._font = find_font()
        return self._font

    def digest(self, chars: str) -> str:
        """The name of the subset of ``chars``: a digest of the characters and the font's fingerprint."""
        return hashlib.sha256(f"{self.font.fingerprint}\n{chars}".encode()).hexdigest()[:20]

    def path(self, digest: str) -> Path:
        """The cache file of a subset."""
        return self.folder / f"{digest}.woff2"

    def cached(self, digest: str) -> bytes | None:
        """A built subset, or None (``digest`` is checked: a name that is not a digest is never a path)."""
        if not DIGEST.match(digest):
            return None
        p = self.path(digest)
        return p.read_bytes() if p.is_file() else None

    def build(self, chars: str) -> str:
        """Build (once) the subset of ``chars``; return its digest. Blocking (seconds): call it off the loop."""
        from fontTools import subset
        from fontTools.ttLib import TTFont

        digest = self.digest(chars)
        with self._lock:
            if self.path(digest).is_file():
                return digest
            tt = TTFont(str(self.font.path), fontNumber=self.font.index)
            options = subset.Options()
            options.flavor = "woff2"
            options.layout_features = ["kern", "liga", "locl"]  # horizontal text: no vertical forms
            options.hinting = False
            options.notdef_outline = True
            sub = subset.Subsetter(options)
            sub.populate(text=chars)
            sub.subset(tt)
            buf = io.BytesIO()
            tt.flavor = "woff2"
            tt.save(buf)
            tt.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getvalue())
            os.replace(tmp, self.path(digest))
        return digest
