"""Locate the deck.gl bundle shipped in the pydeck wheel and our own panel assets.

The page never loads anything from a CDN: the deck.gl "jupyter-widget" bundle inside the pydeck wheel
(deck.gl core, layers, geo-layers incl. ``MVTLayer``/``TileLayer``/``H3HexagonLayer``, the JSON converter
and ``createDeck``) is served from ``/map/static/deck.js`` and inlined by the static export.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

#: classes the map needs from the bundle (checked once, so a pydeck upgrade that drops one fails loudly)
REQUIRED_SYMBOLS = ("createDeck", "updateDeck", "MVTLayer", "TileLayer", "BitmapLayer", "GeoJsonLayer")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: our panel assets servable under /map/static/
OWN_ASSETS = {"map.js": "text/javascript", "map.css": "text/css"}


class BundleMissingError(RuntimeError):
    """The pydeck wheel has no usable deck.gl bundle."""


@lru_cache(maxsize=1)
def deck_bundle_path() -> Path:
    """Return the path of the deck.gl bundle inside the installed pydeck wheel, checked for our layers."""
    import pydeck

    path = Path(pydeck.__file__).resolve().parent / "nbextension" / "static" / "index.js"
    if not path.is_file():
        raise BundleMissingError(f"pydeck {pydeck.__version__} ships no deck.gl bundle at {path}")
    text = path.read_text(encoding="utf-8")
    missing = [name for name in REQUIRED_SYMBOLS if name not in text]
    if missing:
        raise BundleMissingError(f"the deck.gl bundle at {path} lacks {', '.join(missing)}")
    return path


@lru_cache(maxsize=1)
def deck_bundle_etag() -> str:
    """Return a strong ETag of the deck.gl bundle (content hash)."""
    return hashlib.sha256(deck_bundle_path().read_bytes()).hexdigest()[:16]


def own_asset_path(name: str) -> Path:
    """Return the path of one of our static assets, or raise KeyError for anything else."""
    if name not in OWN_ASSETS:
        raise KeyError(name)
    return STATIC_DIR / name


def read_text_asset(name: str) -> str:
    """Read one of our static assets as text."""
    return own_asset_path(name).read_text(encoding="utf-8")
