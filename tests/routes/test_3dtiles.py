"""OGC 3D Tiles of the buildings: GeoVolumes layout, tileset structure, GLBs through Khronos glTF-Validator."""

from __future__ import annotations

import json
import math
import struct
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.settings import PROJECT_ROOT
from cim_service.store.layer_state import bump_version
from cim_service.tiles3d.geodesy import ecef

NODE = "/usr/bin/node"
VALIDATOR = PROJECT_ROOT / "tools" / "validators" / "validate-gltf.mjs"


@pytest.fixture(scope="module")
def api(settings, demo_database_url) -> Iterator[TestClient]:
    # small content tiles, so that the small demo makes a quadtree of several levels
    with TestClient(create_app(settings.model_copy(update={"tiles3d_max_features": 120}))) as client:
        yield client


@pytest.fixture(scope="module")
def extruded(catalog):
    specs = [s for s in catalog if s.extruded]
    assert specs, "no layer of the catalog declares a height_field"
    return specs[0]


def _tiles(node: dict, depth: int = 0) -> Iterator[tuple[dict, int]]:
    yield node, depth
    for child in node.get("children", []):
        yield from _tiles(child, depth + 1)


def _glb(body: bytes) -> tuple[dict, bytes]:
    magic, version, length = struct.unpack_from("<4sII", body, 0)
    assert (magic, version, length) == (b"glTF", 2, len(body))
    json_len, kind = struct.unpack_from("<I4s", body, 12)
    assert kind == b"JSON"
    doc = json.loads(body[20:20 + json_len])
    bin_len, kind = struct.unpack_from("<I4s", body, 20 + json_len)
    assert kind == b"BIN\0"
    return doc, body[28 + json_len:28 + json_len + bin_len]


def _view(doc: dict, binary: bytes, index: int) -> bytes:
    v = doc["bufferViews"][index]
    return binary[v["byteOffset"]:v["byteOffset"] + v["byteLength"]]


def test_collection_links_to_its_3d_container(api, extruded):
    doc = api.get(f"/collections/{extruded.id}").json()
    hrefs = {link["href"].split("/collections/", 1)[1] for link in doc["links"]}
    assert f"{extruded.id}/3dtiles" in hrefs and f"{extruded.id}/3dtiles/tileset.json" in hrefs
    assert doc["content"][0]["type"] == "application/json+3dtiles"
    container = api.get(f"/collections/{extruded.id}/3dtiles").json()
    assert container["collectionType"] == "3d-container"
    assert container["content"][0]["href"].endswith(f"/collections/{extruded.id}/3dtiles/tileset.json")
    w, s, h0, e, n, h1 = container["extent"]["spatial"]["bbox"][0]
    assert 121.2 < w < e < 121.7 and 30.9 < s < n < 31.3 and h0 == 0 and 20 < h1 < 400


def test_tileset_structure(api, engine, extruded):
    r = api.get(f"/collections/{extruded.id}/3dtiles/tileset.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    ts = r.json()
    assert ts["asset"]["version"] == "1.1"
    root = ts["root"]
    assert ts["geometricError"] > root["geometricError"] > 0 and root["refine"] == "ADD"
    leaves = []
    for tile, _depth in _tiles(root):
        w, s, e, n, h0, h1 = tile["boundingVolume"]["region"]
        assert math.radians(121.1) < w < e < math.radians(121.8) and math.radians(30.8) < s < n < math.radians(31.4)
        assert 0 <= h0 < h1 < 1000
        for child in tile.get("children", []):
            assert child["geometricError"] < tile["geometricError"]
            cw, cs, ce, cn = child["boundingVolume"]["region"][:4]
            assert w - 1e-9 <= cw and ce <= e + 1e-9 and s - 1e-9 <= cs and cn <= n + 1e-9
        if "content" in tile:
            assert tile["geometricError"] == 0 and not tile.get("children")
            leaves.append(tile)
    assert len(leaves) >= 4 and max(d for _, d in _tiles(root)) >= 2
    for leaf in leaves:
        m = np.array(leaf["transform"]).reshape(4, 4).T  # column-major
        origin = m[:3, 3]
        w, s, e, n = leaf["boundingVolume"]["region"][:4]
        # the local frame sits on the ellipsoid inside its region, z axis = the local up
        centre = ecef(np.degrees((w + e) / 2), np.degrees((s + n) / 2))
        assert np.linalg.norm(origin - centre) < 20_000
        assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-9)
        assert np.dot(m[:3, 2], origin / np.linalg.norm(origin)) > 0.99
    with engine.connect() as conn:
        count = conn.execute(sa.text(f"SELECT count(*) FROM {extruded.qualified_table}")).scalar_one()
    assert ts["asset"]["extras"]["features"] == count > 0


def test_glb_content_passes_gltf_validator_and_carries_the_features(api, engine, extruded, tmp_path):
    ts = api.get(f"/collections/{extruded.id}/3dtiles/tileset.json").json()
    uris = [t["content"]["uri"] for t, _ in _tiles(ts["root"]) if "content" in t]
    files, keys = [], []
    for i, uri in enumerate(uris):
        r = api.get(f"/collections/{extruded.id}/3dtiles/{uri}")
        assert r.status_code == 200 and r.headers["content-type"] == "model/gltf-binary"
        path = tmp_path / f"t{i}.glb"
        path.write_bytes(r.content)
        files.append(str(path))
        doc, binary = _glb(r.content)
        prim = doc["meshes"][0]["primitives"][0]
        feature_ids = prim["extensions"]["EXT_mesh_features"]["featureIds"][0]
        table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][feature_ids["propertyTable"]]
        assert table["count"] == feature_ids["featureCount"]
        ids = np.frombuffer(_view(doc, binary, doc["accessors"][prim["attributes"]["_FEATURE_ID_0"]]["bufferView"]),
                            dtype=np.float32)
        assert set(np.unique(ids).astype(int)) == set(range(table["count"]))  # every feature has triangles
        offsets = np.frombuffer(_view(doc, binary, table["properties"]["key"]["stringOffsets"]), dtype=np.uint32)
        text = _view(doc, binary, table["properties"]["key"]["values"])
        keys += [text[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        normals = np.frombuffer(_view(doc, binary, doc["accessors"][prim["attributes"]["NORMAL"]]["bufferView"]),
                                dtype=np.float32).reshape(-1, 3)
        assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
        assert (normals[:, 1] > 0.99).any()  # roofs face up (glTF y-up)
    run = subprocess.run([NODE, str(VALIDATOR), *files], capture_output=True, text=True, timeout=300,
                         cwd=VALIDATOR.parent)
    assert run.returncode == 0, run.stderr[-2000:]
    reports = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(reports) == len(files)
    for report in reports:
        assert report["numErrors"] == 0 and report["numWarnings"] == 0, report["messages"][:5]
    with engine.connect() as conn:
        db_keys = [r[0] for r in conn.execute(sa.text(f"SELECT feature_key FROM {extruded.qualified_table}"))]
    assert sorted(keys) == sorted(db_keys)


def test_rebuilt_only_when_the_layer_changes(api, engine, extruded):
    state = api.app.state.tiles3d
    first = api.get(f"/collections/{extruded.id}/3dtiles/tileset.json").json()
    builds = state.builds
    again = api.get(f"/collections/{extruded.id}/3dtiles/tileset.json").json()
    assert again == first and state.builds == builds
    old_uri = next(t["content"]["uri"] for t, _ in _tiles(first["root"]) if "content" in t)
    with engine.begin() as conn:
        bump_version(conn, extruded.id, extruded.qualified_table)
    fresh = api.get(f"/collections/{extruded.id}/3dtiles/tileset.json").json()
    assert state.builds == builds + 1
    assert int(fresh["asset"]["tilesetVersion"]) > int(first["asset"]["tilesetVersion"])
    gone = api.get(f"/collections/{extruded.id}/3dtiles/{old_uri}")
    assert gone.status_code == 404 and "reload tileset.json" in gone.json()["description"]


def test_a_new_process_loads_the_stored_build(api, settings, tmp_path, extruded):
    """Another worker (or the restarted service) reads the current version's build from disk instead of meshing."""
    current = api.get(f"/collections/{extruded.id}/3dtiles/tileset.json").json()
    same = settings.model_copy(update={"tiles3d_max_features": 120})
    with TestClient(create_app(same)) as other:
        again = other.get(f"/collections/{extruded.id}/3dtiles/tileset.json").json()
        state = other.app.state.tiles3d
        assert again == current and state.loads == 1 and state.builds == 0
        uri = next(t["content"]["uri"] for t, _ in _tiles(again["root"]) if "content" in t)
        assert other.get(f"/collections/{extruded.id}/3dtiles/{uri}").content == \
            api.get(f"/collections/{extruded.id}/3dtiles/{uri}").content
    # without the disk cache a new process meshes the layer itself
    memory_only = settings.model_copy(update={"tiles3d_max_features": 120, "tiles3d_disk_cache": False})
    with TestClient(create_app(memory_only)) as third:
        assert third.get(f"/collections/{extruded.id}/3dtiles/tileset.json").json() == current
        assert third.app.state.tiles3d.builds == 1 and third.app.state.tiles3d.loads == 0


def test_layers_without_height_have_no_3d_tiles(api, catalog):
    flat = next(s for s in catalog if not s.extruded and s.access.value == "public")
    r = api.get(f"/collections/{flat.id}/3dtiles/tileset.json")
    assert r.status_code == 404 and "height_field" in r.json()["description"]
    assert api.get("/collections/no_such_layer/3dtiles/tileset.json").status_code == 404
    assert api.get(f"/collections/{flat.id}/3dtiles/content/1/0/0/x.glb").status_code in (400, 404)


def test_vector_tiles_carry_the_height_for_extrusion(api, engine, extruded):
    """The generic MVT of the extruded layer holds its height, so the map can extrude it."""
    import mapbox_vector_tile
    import morecantile

    with engine.connect() as conn:
        key, height, lon, lat = conn.execute(sa.text(
            f'SELECT feature_key, "{extruded.height_field}", ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) '
            f"FROM {extruded.qualified_table} ORDER BY id LIMIT 1")).one()
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 15)
    r = api.get(f"/collections/{extruded.id}/tiles/WebMercatorQuad/15/{t.x}/{t.y}")
    assert r.status_code == 200
    layer = mapbox_vector_tile.decode(r.content)[extruded.id]
    heights = [f["properties"].get(extruded.height_field) for f in layer["features"]]
    assert heights and all(isinstance(h, float) and h > 0 for h in heights)
    assert any(h == pytest.approx(height) for h in heights)
    assert key
