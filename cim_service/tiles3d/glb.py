"""Extruded footprints as one glTF 2.0 binary (GLB): roofs, walls, normals and per-feature ids.

Coordinates are local east/north/up metres of the tile (:mod:`cim_service.tiles3d.geodesy`); glTF is y-up,
so a point (e, n, u) is written (e, u, -n), which the 3D Tiles y-up → z-up convention turns back into ENU.
Roofs are fanned when convex and single-ringed (vectorised), else triangulated with earcut (holes kept);
walls are one quad per ring edge with an outward normal; triangles are counter-clockwise seen from outside
(glTF front faces). Every vertex carries ``_FEATURE_ID_0``
(EXT_mesh_features), the row of its feature in the EXT_structural_metadata property table (key, height).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import mapbox_earcut
import numpy as np
import shapely

FLOAT, UINT16, UINT32, UINT8 = 5126, 5123, 5125, 5121
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
#: the white-model material (light warm grey, matte)
BASE_COLOR = [0.86, 0.86, 0.83, 1.0]


@dataclass
class Mesh:
    """Triangles of a tile: positions (ENU metres), normals, feature index per vertex, indices."""

    positions: np.ndarray  # (n, 3) float64, ENU
    normals: np.ndarray  # (n, 3) float32, ENU
    feature: np.ndarray  # (n,) int64
    indices: np.ndarray  # (m, 3) int64


def _ring_arrays(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ring coordinates (closed) with their ring index, the ring's polygon index and exterior flag."""
    rings, poly_of_ring = shapely.get_rings(polys, return_index=True)
    first = np.ones(len(rings), dtype=bool)
    first[1:] = poly_of_ring[1:] != poly_of_ring[:-1]
    coords, ring_of_coord = shapely.get_coordinates(rings, return_index=True)
    return coords, ring_of_coord, poly_of_ring, first


def _walls(coords: np.ndarray, ring_of: np.ndarray, exterior: np.ndarray, base: np.ndarray,
           top: np.ndarray, feature_of_ring: np.ndarray) -> Mesh:
    """One quad per ring edge, oriented so exteriors run counter-clockwise and holes clockwise."""
    same = ring_of[1:] == ring_of[:-1]
    a_i = np.flatnonzero(same)
    a, b = coords[a_i], coords[a_i + 1]
    ring = ring_of[a_i]
    # signed area per ring (shoelace over its edges): > 0 counter-clockwise
    cross = a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]
    area = np.bincount(ring, weights=cross, minlength=len(exterior))
    flip = (area[ring] > 0) != exterior[ring]
    a, b = np.where(flip[:, None], b, a), np.where(flip[:, None], a, b)
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    keep = length > 1e-6
    a, b, d, length, ring = a[keep], b[keep], d[keep], length[keep], ring[keep]
    normal = np.column_stack([d[:, 1] / length, -d[:, 0] / length, np.zeros(len(d))])
    z0, z1 = base[ring], top[ring]
    quad = np.stack([np.column_stack([a, z0]), np.column_stack([b, z0]),
                     np.column_stack([b, z1]), np.column_stack([a, z1])], axis=1)  # (k, 4, 3)
    k = len(quad)
    start = np.arange(k) * 4
    tris = np.concatenate([np.column_stack([start, start + 1, start + 2]),
                           np.column_stack([start, start + 2, start + 3])])
    return Mesh(quad.reshape(-1, 3), np.repeat(normal, 4, axis=0).astype(np.float32),
                np.repeat(feature_of_ring[ring], 4), tris)


def _fan_roofs(coords: np.ndarray, starts: np.ndarray, k: int, top: np.ndarray, feature: np.ndarray) -> Mesh:
    """Fan triangulation of convex rings of ``k`` vertices starting at ``starts`` (vectorised)."""
    verts = coords[starts[:, None] + np.arange(k)[None, :]]  # (r, k, 2)
    r = len(starts)
    pos = np.concatenate([verts, np.broadcast_to(top[:, None, None], (r, k, 1))], axis=2).reshape(-1, 3)
    base = (np.arange(r) * k)[:, None, None]
    fan = np.stack([np.zeros(k - 2, np.int64), np.arange(1, k - 1), np.arange(2, k)], axis=1)  # (k-2, 3)
    tri = (base + fan[None, :, :]).reshape(-1, 3)
    return Mesh(pos, np.zeros((0, 3), np.float32), np.repeat(feature, k), tri)


def _convex(coords: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """Tell which rings of ``k`` vertices (closing vertex excluded) are strictly convex."""
    v = coords[starts[:, None] + np.arange(k)[None, :]]
    a, b = np.roll(v, -1, axis=1) - v, np.roll(v, -2, axis=1) - np.roll(v, -1, axis=1)
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return (cross > 0).all(axis=1) | (cross < 0).all(axis=1)


def _roofs(coords: np.ndarray, ring_of: np.ndarray, poly_of_ring: np.ndarray, top: np.ndarray,
           feature_of_poly: np.ndarray) -> Mesh:
    """Flat roofs: convex single-ring polygons fanned (vectorised), the others by earcut (holes kept)."""
    n_rings = len(poly_of_ring)
    n_polys = int(poly_of_ring.max()) + 1 if n_rings else 0
    ring_start = np.searchsorted(ring_of, np.arange(n_rings))
    ring_end = np.searchsorted(ring_of, np.arange(n_rings), side="right")
    poly_start = np.searchsorted(poly_of_ring, np.arange(n_polys))
    poly_end = np.searchsorted(poly_of_ring, np.arange(n_polys), side="right")
    size = ring_end[poly_start] - ring_start[poly_start] - 1 if n_polys else np.zeros(0, np.int64)
    single = (poly_end - poly_start) == 1
    meshes: list[Mesh] = []
    done = np.zeros(n_polys, dtype=bool)
    for k in range(3, 9):
        cand = np.flatnonzero(single & (size == k))
        if not len(cand):
            continue
        starts = ring_start[poly_start[cand]]
        convex = _convex(coords, starts, k)
        cand, starts = cand[convex], starts[convex]
        if len(cand):
            meshes.append(_fan_roofs(coords, starts, k, top[cand], feature_of_poly[cand]))
            done[cand] = True
    for p in np.flatnonzero(~done):
        r0, r1 = poly_start[p], poly_end[p]
        parts = [coords[ring_start[r]:ring_end[r] - 1] for r in range(r0, r1)]
        verts = np.concatenate(parts)
        ends = np.cumsum([len(x) for x in parts]).astype(np.uint32)
        idx = mapbox_earcut.triangulate_float64(verts, ends).reshape(-1, 3).astype(np.int64)
        if len(idx):
            meshes.append(Mesh(np.column_stack([verts, np.full(len(verts), top[p])]), np.zeros((0, 3), np.float32),
                               np.full(len(verts), feature_of_poly[p]), idx))
    if not meshes:
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.float32), np.zeros(0, np.int64), np.zeros((0, 3), np.int64))
    offsets = np.cumsum([0, *(len(m.positions) for m in meshes[:-1])])
    pos = np.concatenate([m.positions for m in meshes])
    tri = np.concatenate([m.indices + o for m, o in zip(meshes, offsets, strict=True)])
    # counter-clockwise seen from above (normal up)
    p0, p1, p2 = pos[tri[:, 0], :2], pos[tri[:, 1], :2], pos[tri[:, 2], :2]
    cw = ((p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])) < 0
    tri[cw] = tri[cw][:, [0, 2, 1]]
    normals = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (len(pos), 1))
    return Mesh(pos, normals, np.concatenate([m.feature for m in meshes]), tri)


def extrude(polys: np.ndarray, base: np.ndarray, top: np.ndarray, feature: np.ndarray) -> Mesh:
    """Mesh of extruded polygons (local ENU metres): walls from ``base`` to ``top`` and flat roofs.

    ``polys`` are shapely Polygons (a MultiPolygon's parts given one by one); ``base``, ``top`` and ``feature``
    (the feature's row) are per polygon.
    """
    coords, ring_of, poly_of_ring, exterior = _ring_arrays(polys)
    walls = _walls(coords, ring_of, exterior, base[poly_of_ring], top[poly_of_ring], feature[poly_of_ring])
    roofs = _roofs(coords, ring_of, poly_of_ring, top, feature)
    n_w = len(walls.positions)
    return Mesh(np.concatenate([walls.positions, roofs.positions]), np.concatenate([walls.normals, roofs.normals]),
                np.concatenate([walls.feature, roofs.feature]), np.concatenate([walls.indices, roofs.indices + n_w]))


def _pad(data: bytes, align: int = 8, fill: bytes = b"\0") -> bytes:
    return data + fill * ((-len(data)) % align)


class _Buffer:
    """The binary chunk under construction: aligned buffer views."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.views: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        view = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        padded = _pad(data)
        self.parts.append(padded)
        self.size += len(padded)
        self.views.append(view)
        return len(self.views) - 1


def glb_bytes(mesh: Mesh, keys: list[str], heights: np.ndarray, class_name: str = "building") -> bytes:
    """Encode ``mesh`` as GLB, with ``keys`` / ``heights`` as the property table of its features."""
    buf = _Buffer()
    enu = mesh.positions
    pos = np.column_stack([enu[:, 0], enu[:, 2], -enu[:, 1]]).astype(np.float32)  # y-up
    nrm = np.column_stack([mesh.normals[:, 0], mesh.normals[:, 2], -mesh.normals[:, 1]]).astype(np.float32)
    fid = mesh.feature.astype(np.float32)
    n = len(pos)
    index_type, index_dtype = (UINT16, np.uint16) if n <= 65535 else (UINT32, np.uint32)
    idx = mesh.indices.astype(index_dtype).reshape(-1)
    accessors = [
        {"bufferView": buf.view(pos.tobytes(), ARRAY_BUFFER), "componentType": FLOAT, "count": n, "type": "VEC3",
         "min": pos.min(axis=0).tolist(), "max": pos.max(axis=0).tolist()},
        {"bufferView": buf.view(nrm.tobytes(), ARRAY_BUFFER), "componentType": FLOAT, "count": n, "type": "VEC3"},
        {"bufferView": buf.view(fid.tobytes(), ARRAY_BUFFER), "componentType": FLOAT, "count": n, "type": "SCALAR"},
        {"bufferView": buf.view(idx.tobytes(), ELEMENT_ARRAY_BUFFER), "componentType": index_type,
         "count": int(idx.size), "type": "SCALAR"},
    ]
    encoded = [k.encode("utf-8") for k in keys]
    offsets = np.zeros(len(encoded) + 1, dtype=np.uint32)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    key_values = buf.view(b"".join(encoded))
    key_offsets = buf.view(offsets.tobytes())
    height_values = buf.view(np.asarray(heights, dtype=np.float32).tobytes())
    doc = {
        "asset": {"version": "2.0", "generator": "Minhang CIM (cim_service.tiles3d)"},
        "extensionsUsed": ["EXT_mesh_features", "EXT_structural_metadata"],
        "extensions": {"EXT_structural_metadata": {
            "schema": {"id": "minhang_cim", "classes": {class_name: {"properties": {
                "key": {"type": "STRING", "description": "the feature's natural key"},
                "height_m": {"type": "SCALAR", "componentType": "FLOAT32", "description": "height (m)"},
            }}}},
            "propertyTables": [{"class": class_name, "count": len(keys), "properties": {
                "key": {"values": key_values, "stringOffsets": key_offsets, "stringOffsetType": "UINT32"},
                "height_m": {"values": height_values},
            }}],
        }},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": BASE_COLOR, "metallicFactor": 0.0,
                                                "roughnessFactor": 0.9}}],
        "meshes": [{"primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "_FEATURE_ID_0": 2},
            "indices": 3, "material": 0, "mode": 4,
            "extensions": {"EXT_mesh_features": {"featureIds": [
                {"featureCount": len(keys), "attribute": 0, "propertyTable": 0}]}},
        }]}],
        "accessors": accessors,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": buf.size}],
    }
    json_chunk = _pad(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 4, b" ")
    bin_chunk = b"".join(buf.parts)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                     struct.pack("<I4s", len(json_chunk), b"JSON"), json_chunk,
                     struct.pack("<I4s", len(bin_chunk), b"BIN\0"), bin_chunk])
