"""Benchmark: OGC 3D Tiles of the buildings at a demo scale (default: plan) — build time and total size.

Two measurements, each repeated ``--rounds`` times (median reported):

- *mesh*: :func:`cim_service.tiles3d.build.build_tileset` on the demo's buildings frame (triangulation, GLB
  encoding, quadtree), no database;
- *layer*: :func:`cim_service.tiles3d.service.build_layer` (read from PostGIS + mesh) after loading the
  buildings into the benchmark database ``cim_bench_3dtiles`` (project-local cluster, or ``--server-url``).

    python benchmarks/bench_3dtiles.py [--scale plan] [--rounds 3] [--server-url postgresql://...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import named_database

from cim_service.core.catalog import load_catalog
from cim_service.store.db import make_engine
from cim_service.tiles3d.build import MAX_FEATURES, Features, build_tileset
from cim_service.tiles3d.service import build_layer
from pipelines.demo import addresses as addr
from pipelines.demo import basemap
from pipelines.demo import buildings as bldg
from pipelines.demo.build import DEFAULT_SEED, frame_sha256
from pipelines.demo.scales import get_scale
from pipelines.load import load_geodataframe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="plan")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server-url", default=None)
    args = ap.parse_args()

    t = time.perf_counter()
    frame = bldg.buildings(addr.addresses(get_scale(args.scale), DEFAULT_SEED), DEFAULT_SEED,
                           keep_out=basemap.keep_out())
    print(f"demo buildings ({args.scale}): {len(frame):,} in {time.perf_counter() - t:.1f} s")
    feats = Features(list(frame["building_id"]), frame["height_m"].to_numpy(float),
                     np.asarray(frame.geometry.array, dtype=object))
    mesh_s, tileset = [], None
    for _ in range(args.rounds):
        t = time.perf_counter()
        tileset = build_tileset(feats, 1, "Buildings")
        mesh_s.append(time.perf_counter() - t)
    tiles = len(tileset.content)
    size = tileset.size_bytes
    print(f"mesh: median {statistics.median(mesh_s):.2f} s over {args.rounds} rounds "
          f"({', '.join(f'{s:.2f}' for s in mesh_s)}); {tiles} content tiles of <= {MAX_FEATURES} features; "
          f"{size / 1e6:.1f} MB GLB ({size / len(frame):.0f} B per building); "
          f"tileset.json {len(str(tileset.document)) / 1e3:.0f} kB")

    catalog = load_catalog()
    spec = next(s for s in catalog if s.extruded)
    url = named_database("cim_bench_3dtiles", args.server_url)
    engine = make_engine(url)
    cols = [f for f in spec.field_names if f in frame.columns]
    sub = frame[[*cols, "geometry"]]
    load_geodataframe(engine, spec, sub, source_name=f"bench-{args.scale}", source_sha256=frame_sha256(sub),
                      source_crs="EPSG:4326", replace=True, check_district=False)
    layer_s = []
    for _ in range(args.rounds):
        built = build_layer(engine, spec)
        layer_s.append(built.seconds)
    print(f"layer (read + mesh): median {statistics.median(layer_s):.2f} s over {args.rounds} rounds "
          f"({', '.join(f'{s:.2f}' for s in layer_s)}); {built.tileset.size_bytes / 1e6:.1f} MB")
    engine.dispose()


if __name__ == "__main__":
    main()
