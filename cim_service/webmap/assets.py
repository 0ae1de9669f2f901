"""Locate the map's deck.gl bundle and our own map assets (ES modules, CSS).

The page never loads anything from a CDN: the deck.gl bundle ``static/build/deck.min.js`` (deck.gl core, the
layers the map makes, ``MVTLayer``/``TileLayer``, the JSON converter and ``createDeck``/``updateDeck``, 0.9 MB)
is built at install time by ``./scripts/bootstrap`` from ``tools/deckgl`` (npm, pinned to the pydeck wheel's
deck.gl and loaders.gl versions; esbuild), served from ``/map/static/deck.js`` and inlined by the static export.
It replaced the wheel's 4.3 MB "jupyter-widget" bundle (with mapbox-gl, maplibre-gl and the Jupyter runtime),
whose parsing and compiling sat on the page's first paint.

The map's code is ES modules: the entry ``static/map.js`` and ``static/js/<name>``, which import each other
as ``#cim/<name>``. The page resolves those specifiers with an import map: to ``/map/static/js/<name>`` on
the live page, to ``data:`` URLs of the modules' text in the static export (one self-contained file; a
``data:`` module cannot resolve relative imports, a mapped bare specifier works from anywhere). Node
resolves the same specifiers through the ``imports`` of ``static/package.json`` (the unit tests).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

#: classes the map needs from the bundle (checked once, so a pydeck upgrade that drops one fails loudly)
REQUIRED_SYMBOLS = ("createDeck", "updateDeck", "MVTLayer", "TileLayer", "BitmapLayer", "GeoJsonLayer", "LineLayer",
                    "TextLayer")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: the deck.gl bundle built by ./scripts/bootstrap (tools/deckgl/build.mjs)
DECK_BUNDLE = STATIC_DIR / "build" / "deck.min.js"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: URL prefix of the map's assets
STATIC_URL = "/map/static/"
#: the entry module (static/map.js) and the folder of the modules it imports
ENTRY_MODULE = "map.js"
MODULE_DIR = STATIC_DIR / "js"
#: how the modules import each other: "#cim/<name>" is static/js/<name> (also in static/package.json)
MODULE_SPECIFIER = "#cim/"
JS_TYPE = "text/javascript"
#: our assets servable under /map/static/ besides the modules: name -> (path below static/, media type)
OWN_ASSETS = {
    ENTRY_MODULE: (ENTRY_MODULE, JS_TYPE),
    "map.css": ("map.css", "text/css"),
    # loaders.gl's MVTLoader (the wheel's bundle only has the worker-side MVT loader); see vendor/README.md
    "loaders.gl-mvt.min.js": ("vendor/loaders.gl-mvt.min.js", JS_TYPE),
}
#: characters left as they are in a module's data: URL (the rest is percent-encoded: newlines, quotes, ``%``,
#: ``#``, ``?``, ``<``, ``>``, spaces, non-ASCII), so the export's code stays readable to a text search
_DATA_URL_SAFE = "!$&'()*+,-./:;=@_~[]{}|^`"


class BundleMissingError(RuntimeError):
    """The map's deck.gl bundle is not built or lacks what the map needs."""


@lru_cache(maxsize=1)
def deck_bundle_path() -> Path:
    """Return the path of the map's deck.gl bundle (built by ./scripts/bootstrap), checked for our layers."""
    path = DECK_BUNDLE
    if not path.is_file():
        raise BundleMissingError(f"the map's deck.gl bundle {path} is not built: run ./scripts/bootstrap "
                                 "(npm ci and node build.mjs in tools/deckgl)")
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


@lru_cache(maxsize=1)
def map_modules() -> tuple[str, ...]:
    """Return the names of the map's modules (paths below static/js/, sorted)."""
    return tuple(sorted(path.relative_to(MODULE_DIR).as_posix() for path in MODULE_DIR.rglob("*.js")))


@lru_cache(maxsize=1)
def own_assets() -> dict[str, tuple[str, str]]:
    """Return every asset servable under /map/static/: name -> (path below static/, media type)."""
    modules = {f"js/{name}": (f"js/{name}", JS_TYPE) for name in map_modules()}
    return {**OWN_ASSETS, **modules}


def own_asset_path(name: str) -> Path:
    """Return the path of one of our static assets, or raise KeyError for anything else."""
    return STATIC_DIR / own_assets()[name][0]


def own_asset_type(name: str) -> str:
    """Return the media type of one of our static assets."""
    return own_assets()[name][1]


def module_data_url(text: str) -> str:
    """Return a ``data:`` URL of a module's source text."""
    return "data:text/javascript," + quote(text, safe=_DATA_URL_SAFE)


def module_urls() -> list[str]:
    """Return the served URLs of the modules the entry imports (for ``<link rel="modulepreload">``)."""
    return [f"{STATIC_URL}js/{name}" for name in map_modules()]


def module_import_map(*, inline: bool) -> dict[str, dict[str, str]]:
    """Return the import map of the map's modules: to their served URLs, or (``inline``) to data: URLs."""
    imports = {}
    for name in map_modules():
        target = module_data_url(read_text_asset(f"js/{name}")) if inline else f"{STATIC_URL}js/{name}"
        imports[f"{MODULE_SPECIFIER}{name}"] = target
    return {"imports": imports}


def own_asset_content(name: str) -> tuple[bytes, str]:
    """Return one of our assets' bytes and a strong ETag of them (re-read when the file changes)."""
    path = own_asset_path(name)
    return _content(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _content(path: Path, mtime_ns: int) -> tuple[bytes, str]:
    body = path.read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:16]


def read_text_asset(name: str) -> str:
    """Read one of our static assets as text."""
    return own_asset_path(name).read_text(encoding="utf-8")
