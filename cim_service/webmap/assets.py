"""Locate the deck.gl bundle shipped in the pydeck wheel and our own panel assets.

The page never loads anything from a CDN: the deck.gl "jupyter-widget" bundle inside the pydeck wheel
(deck.gl core, layers, geo-layers incl. ``MVTLayer``/``TileLayer``/``H3HexagonLayer``, the JSON converter
and ``createDeck``) is served from ``/map/static/deck.js`` and inlined by the static export.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

#: classes the map needs from the bundle (checked once, so a pydeck upgrade that drops one fails loudly)
REQUIRED_SYMBOLS = ("createDeck", "updateDeck", "MVTLayer", "TileLayer", "BitmapLayer", "GeoJsonLayer", "LineLayer")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: our assets servable under /map/static/: name -> (path below static/, media type)
OWN_ASSETS = {
    "map.js": ("map.js", "text/javascript"),
    "map.css": ("map.css", "text/css"),
    # loaders.gl's MVTLoader (the wheel's bundle only has the worker-side MVT loader); see vendor/README.md
    "loaders.gl-mvt.min.js": ("vendor/loaders.gl-mvt.min.js", "text/javascript"),
}


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


_MVT_VERSION = re.compile(r'"Mapbox Vector Tile"[^;]*;var [\w$]+="(\d+\.\d+\.\d+)"')


def mvt_loader_version(path: Path) -> str | None:
    """Return the loaders.gl version of the MVT loader defined in a JS bundle, if any."""
    match = _MVT_VERSION.search(path.read_text(encoding="utf-8"))
    return match.group(1) if match else None


def check_vendored_loader() -> str:
    """Check that the vendored MVT loader matches the deck.gl bundle's loaders.gl; return the version."""
    bundled = mvt_loader_version(deck_bundle_path())
    vendored = mvt_loader_version(own_asset_path("loaders.gl-mvt.min.js"))
    if bundled is None or bundled != vendored:
        raise BundleMissingError(
            f"vendored @loaders.gl/mvt {vendored} does not match the deck.gl bundle's loaders.gl {bundled}; "
            "see cim_service/static/vendor/README.md"
        )
    return bundled


@lru_cache(maxsize=1)
def deck_bundle_etag() -> str:
    """Return a strong ETag of the deck.gl bundle (content hash)."""
    return hashlib.sha256(deck_bundle_path().read_bytes()).hexdigest()[:16]


def own_asset_path(name: str) -> Path:
    """Return the path of one of our static assets, or raise KeyError for anything else."""
    if name not in OWN_ASSETS:
        raise KeyError(name)
    return STATIC_DIR / OWN_ASSETS[name][0]


def own_asset_type(name: str) -> str:
    """Return the media type of one of our static assets."""
    return OWN_ASSETS[name][1]


def read_text_asset(name: str) -> str:
    """Read one of our static assets as text."""
    return own_asset_path(name).read_text(encoding="utf-8")
