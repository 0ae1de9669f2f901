"""The extrusion mesh and the local frames of the 3D Tiles, on hand-made footprints (no database)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cim_service.tiles3d.build import Features, build_tileset
from cim_service.tiles3d.geodesy import LocalFrame, ecef
from cim_service.tiles3d.glb import extrude

#: an L with a hole (earcut), a rectangle (fan), a clockwise triangle (fan, reoriented), a concave arrow (earcut)
POLYS = np.array([
    shapely.Polygon([(0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)], holes=[[(1, 1), (2, 1), (2, 2), (1, 2)]]),
    shapely.box(20, 0, 30, 5),
    shapely.Polygon([(40, 0), (50, 0), (45, 8)]).reverse(),
    shapely.Polygon([(60, 0), (70, 5), (60, 10), (63, 5)]),
], dtype=object)
HEIGHTS = np.array([9.0, 30.0, 5.0, 12.0])


@pytest.fixture(scope="module")
def mesh():
    return extrude(POLYS, np.zeros(len(POLYS)), HEIGHTS, np.arange(len(POLYS)))


def _areas(mesh):
    t, p = mesh.indices, mesh.positions
    cross = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
    return t, cross, 0.5 * np.linalg.norm(cross, axis=1)


def test_roofs_cover_the_footprint_and_walls_the_perimeter(mesh):
    t, _, area = _areas(mesh)
    up = mesh.normals[t[:, 0], 2] > 0.5
    for f, poly in enumerate(POLYS):
        mine = mesh.feature[t[:, 0]] == f
        assert area[mine & up].sum() == pytest.approx(poly.area, rel=1e-9)
        assert area[mine & ~up].sum() == pytest.approx(poly.length * HEIGHTS[f], rel=1e-9)
        assert set(mesh.positions[t[mine & up].ravel(), 2]) == {HEIGHTS[f]}


def test_front_faces_point_outwards(mesh):
    t, cross, _ = _areas(mesh)
    assert (np.einsum("ij,ij->i", cross, mesh.normals[t[:, 0]]) > 0).all()
    # wall normals point away from the footprint: a point a little outside along the normal is not inside
    walls = mesh.normals[t[:, 0], 2] < 0.5
    mid = mesh.positions[t[walls]].mean(axis=1)[:, :2] + 0.01 * mesh.normals[t[walls, 0], :2]
    covering = shapely.union_all(POLYS)
    assert not shapely.contains_xy(covering, mid[:, 0], mid[:, 1]).any()


def test_local_frame_round_trip():
    frame = LocalFrame(121.38, 31.11)
    pts = frame.to_local(np.array([121.38, 121.39]), np.array([31.11, 31.11]))
    assert np.allclose(pts[0], 0, atol=1e-6)
    assert pts[1][0] == pytest.approx(953.9, abs=0.5) and abs(pts[1][1]) < 1.0  # 0.01° of longitude at 31.11° N
    m = np.array(frame.transform()).reshape(4, 4).T
    local = np.array([pts[1][0], pts[1][1], 0.0, 1.0])
    assert np.linalg.norm((m @ local)[:3] - ecef(np.array(121.39), np.array(31.11))) < 0.2


def test_quadtree_splits_until_tiles_are_small():
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(121.3, 121.5, 500), rng.uniform(31.0, 31.2, 500)
    geoms = shapely.buffer(shapely.points(lon, lat), 0.0001, quad_segs=1)
    ts = build_tileset(Features([f"b{i}" for i in range(500)], rng.uniform(3, 90, 500), geoms), 7, "t",
                       max_features=40)
    leaves = []

    def walk(tile):
        if "content" in tile:
            leaves.append(tile)
        for child in tile.get("children", []):
            walk(child)

    walk(ts.document["root"])
    assert len(leaves) == len(ts.content) >= 500 / 40
    assert all(uri.startswith("content/7/") for uri in ts.content)
