"""The map's deck.gl bundle (tools/deckgl): the served file is the pinned build, rebuilt to the same bytes, and
holds what the map makes and nothing of the base-map libraries it replaced."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from cim_service.core.settings import PROJECT_ROOT
from cim_service.webmap.assets import DECK_BUNDLE, REQUIRED_SYMBOLS, deck_bundle_path, mvt_loader_version

NODE = Path("/usr/bin/node")
TOOLS = PROJECT_ROOT / "tools" / "deckgl"
#: the deck.gl classes the map's code names in '@@type' (static/js/deck.js LAYER_TYPES and its FlyToInterpolator)
MAP_CLASSES = ("GeoJsonLayer", "MVTLayer", "TileLayer", "BitmapLayer", "LineLayer", "TextLayer", "FlyToInterpolator",
               "MapView")


def test_served_bundle_is_the_build_of_the_pinned_packages(tmp_path):
    assert deck_bundle_path() == DECK_BUNDLE
    out = tmp_path / "deck.min.js"
    subprocess.run([str(NODE), str(TOOLS / "build.mjs"), "--out", str(out)], check=True, timeout=120)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(DECK_BUNDLE.read_bytes()).digest(), (
        "cim_service/static/build/deck.min.js is not the build of tools/deckgl: run ./scripts/bootstrap")


def test_bundle_pins_the_versions_of_the_wheel():
    lock = json.loads((TOOLS / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    packages = [(name.rsplit("node_modules/", 1)[-1], p["version"]) for name, p in lock.items() if name]
    deck = {v for n, v in packages if n.startswith("@deck.gl/")}
    loaders = {v for n, v in packages if n.startswith("@loaders.gl/")}
    assert deck == {"9.3.6"} and loaders == {"4.4.3"}, (deck, loaders)
    assert mvt_loader_version(DECK_BUNDLE) == "4.4.3"


def test_bundle_has_the_map_classes_and_no_base_map_library():
    text = DECK_BUNDLE.read_text(encoding="utf-8")
    entry = (TOOLS / "entry.mjs").read_text(encoding="utf-8")
    for name in {*REQUIRED_SYMBOLS, *MAP_CLASSES}:
        assert name in text, name
    for name in MAP_CLASSES:  # given to the JSON converter
        assert re.search(rf"CLASSES = \{{[^}}]*\b{name}\b", entry), name
    for absent in ("maplibre", "mapbox-gl", "jupyter", "jquery"):
        assert absent not in text.lower(), absent
    assert len(text) < 1_500_000
