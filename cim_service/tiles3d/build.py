"""Build a 3D Tiles 1.1 tileset from extruded footprints: a quadtree of GLB content tiles.

The layer's extent is split into quadrants until a tile holds at most :data:`MAX_FEATURES` features (by
centroid) or :data:`MAX_LEVEL` is reached; leaves carry content (``content/{version}/{level}/{x}/{y}.glb``, in a
local east-north-up frame given by the tile's ``transform``), inner tiles only bound their children
(``refine: ADD``). Bounding volumes are regions (radians, heights in metres above the ellipsoid: the demo has no
terrain). Geometric errors: 0 on leaves, a twentieth of the tile's size above (children are loaded from a
distance of about three times the tile's size on a 1080-pixel screen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely

from cim_service.tiles3d.geodesy import LocalFrame
from cim_service.tiles3d.glb import extrude, glb_bytes

MAX_FEATURES = 2500
MAX_LEVEL = 10
#: metres per degree of latitude (geometric errors only)
M_PER_DEG = 111_320.0


@dataclass
class Features:
    """What the builder needs of a layer: keys, heights and (Multi)Polygons in WGS84."""

    keys: list[str]
    heights: np.ndarray
    geoms: np.ndarray  # shapely geometries


@dataclass
class Tileset:
    """A built tileset: the ``tileset.json`` document and the GLB content by relative path."""

    document: dict
    content: dict[str, bytes] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Total bytes of the GLB content."""
        return sum(len(c) for c in self.content.values())


def _region(w: float, s: float, e: float, n: float, h0: float, h1: float) -> dict:
    return {"region": [math.radians(float(v)) for v in (w, s, e, n)] + [float(h0), float(h1)]}


def _tile_error(w: float, s: float, e: float, n: float) -> float:
    lat = math.radians((s + n) / 2)
    size = max((e - w) * M_PER_DEG * math.cos(lat), (n - s) * M_PER_DEG)
    return round(float(size) / 20.0, 1)


def _content(feats: Features, rows: np.ndarray, frame: LocalFrame) -> bytes:
    """GLB of the features ``rows`` in ``frame``."""
    parts, part_of = shapely.get_parts(feats.geoms[rows], return_index=True)
    coords = shapely.get_coordinates(parts)
    local = frame.to_local(coords[:, 0], coords[:, 1])
    parts = shapely.set_coordinates(parts.copy(), local)
    top = feats.heights[rows][part_of]
    mesh = extrude(parts, np.zeros(len(parts)), top, part_of)
    return glb_bytes(mesh, [feats.keys[r] for r in rows], feats.heights[rows])


def build_tileset(feats: Features, version: int, title: str, *, max_features: int = MAX_FEATURES) -> Tileset:
    """Build the tileset of ``feats`` (content URIs carry ``version``, so a changed layer gets new URIs)."""
    n = len(feats.keys)
    bounds = shapely.bounds(feats.geoms) if n else np.zeros((0, 4))
    cx = (bounds[:, 0] + bounds[:, 2]) / 2
    cy = (bounds[:, 1] + bounds[:, 3]) / 2
    out = Tileset(document={})
    if n:
        w, s, e, nn = bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max()
    else:
        w = s = e = nn = 0.0

    def node(level: int, x: int, y: int, rows: np.ndarray, box: tuple[float, float, float, float]) -> dict:
        bw, bs, be, bn = box
        # the region bounds the features themselves (their footprints may cross the quadrant's edges)
        region = _region(bounds[rows, 0].min(), bounds[rows, 1].min(), bounds[rows, 2].max(),
                         bounds[rows, 3].max(), 0.0, float(feats.heights[rows].max()) + 1.0)
        if len(rows) <= max_features or level >= MAX_LEVEL:
            frame = LocalFrame(float(cx[rows].mean()), float(cy[rows].mean()))
            uri = f"content/{version}/{level}/{x}/{y}.glb"
            out.content[uri] = _content(feats, rows, frame)
            return {"boundingVolume": region, "geometricError": 0.0, "content": {"uri": uri},
                    "transform": frame.transform()}
        mx, my = (bw + be) / 2, (bs + bn) / 2
        children = []
        for dx, dy, sub in ((0, 0, (bw, bs, mx, my)), (1, 0, (mx, bs, be, my)),
                            (0, 1, (bw, my, mx, bn)), (1, 1, (mx, my, be, bn))):
            inside = rows[(cx[rows] >= sub[0]) & (cx[rows] < sub[2] if dx == 0 else cx[rows] <= sub[2])
                          & (cy[rows] >= sub[1]) & (cy[rows] < sub[3] if dy == 0 else cy[rows] <= sub[3])]
            if len(inside):
                children.append(node(level + 1, 2 * x + dx, 2 * y + dy, inside, sub))
        return {"boundingVolume": region, "geometricError": _tile_error(*box), "refine": "ADD",
                "children": children}

    if n:
        root = node(0, 0, 0, np.arange(n), (w, s, e, nn))
    else:
        root = {"boundingVolume": _region(0, 0, 0, 0, 0, 0), "geometricError": 0.0, "refine": "ADD"}
    root["refine"] = "ADD"
    out.document = {
        "asset": {"version": "1.1", "tilesetVersion": str(version), "extras": {"title": title, "features": n}},
        "geometricError": max(_tile_error(w, s, e, nn) * 2, 1.0) if n else 0.0,
        "root": root,
    }
    return out
