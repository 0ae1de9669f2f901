"""Benchmark: the map's glyphs — what ``cim glyphs build`` (bootstrap) costs cold, one range on demand, the size
of the cache, and the web font subset of the demo's labels. No database.

Each figure is the median of ``--rounds`` runs in fresh temporary folders (a cold cache each time).

    python benchmarks/bench_glyphs.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cim_service.commands.glyphs import catalog_texts, demo_names
from cim_service.styles.glyphs import GlyphStore, Renderer, find_font, ranges_of
from cim_service.styles.labels import WebFonts, characters


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    chars = catalog_texts() + demo_names()
    wanted = len(set(ranges_of(chars)) | {0})
    build, size = [], 0
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            GlyphStore(Path(tmp)).build(chars)
            build.append(time.perf_counter() - t0)
            size = _size(Path(tmp))
    renderer = Renderer(find_font())
    one = []
    for start in (0x4E00, 0x6D00, 0x9000, 0xAC00):
        t0 = time.perf_counter()
        renderer.build("x", start)
        one.append(time.perf_counter() - t0)
    subset, subset_size = [], 0
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            fonts = WebFonts(Path(tmp))
            t0 = time.perf_counter()
            digest = fonts.build(characters([demo_names()]))
            subset.append(time.perf_counter() - t0)
            subset_size = fonts.path(digest).stat().st_size
    print(f"bootstrap build: {wanted} ranges, median {statistics.median(build):.2f} s "
          f"(min {min(build):.2f}, max {max(build):.2f}), {size / 1e6:.1f} MB")
    print(f"one CJK range on demand (renderer warm): median {statistics.median(one) * 1000:.0f} ms")
    print(f"web font subset of the demo's names ({len(characters([demo_names()]))} characters): "
          f"median {statistics.median(subset):.2f} s, {subset_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
