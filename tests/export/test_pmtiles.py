"""`cim tiles export` writes a PMTiles v3 archive that the `pmtiles` reader opens (header, metadata, tiles that
decode with mapbox-vector-tile and equal the service's own tiles); `/pmtiles/{name}` serves it with range
requests (206, 416, ETag/304, If-Range), so the reader works over HTTP too."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType

from cim_service.app import create_app

LAYERS = "cameras,towns"


def cim(database_url: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CIM_DATABASE_URL": database_url, "CIM_HOME": str(home), "CIM_ENVIRONMENT": "test"}
    return subprocess.run([sys.executable, "-m", "cim_service", *args], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def archive(demo_database_url, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pmtiles")
    out = folder / "minhang.pmtiles"
    done = cim(demo_database_url, folder, "tiles", "export", str(out), "--collections", LAYERS,
               "--minzoom", "9", "--maxzoom", "14")
    assert done.returncode == 0, done.stderr
    assert "tiles" in done.stdout
    return out


@pytest.fixture(scope="module")
def client(settings, archive) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"pmtiles_dir": archive.parent}))) as c:
        yield c


def test_archive_header_and_metadata(archive):
    with archive.open("rb") as f:
        reader = Reader(MmapSource(f))
        header, metadata = reader.header(), reader.metadata()
        tiles = list(all_tiles(reader.get_bytes))
    assert header["tile_type"] == TileType.MVT and header["tile_compression"] == Compression.GZIP
    assert (header["min_zoom"], header["max_zoom"]) == (9, 14)
    assert 121.0 < header["min_lon_e7"] / 1e7 < header["max_lon_e7"] / 1e7 < 122.0
    assert [layer["id"] for layer in metadata["vector_layers"]] == LAYERS.split(",")
    cameras = metadata["vector_layers"][0]
    assert "camera_type" in cameras["fields"] and cameras["fields"]["count"] == "Number"
    assert set(metadata["cim:layer_versions"]) == set(LAYERS.split(","))
    assert len(tiles) > 20
    assert {z for (z, _, _), _ in tiles} == set(range(9, 15))


def _features(decoded: dict) -> dict:
    return {name: sorted((repr(f.get("id")), repr(sorted(f["properties"].items())), repr(f["geometry"]))
                         for f in layer["features"]) for name, layer in decoded.items()}


def test_tiles_equal_the_service_tiles_and_decode(archive, client, engine):
    with archive.open("rb") as f:
        reader = Reader(MmapSource(f))
        tiles = list(all_tiles(reader.get_bytes))
    checked = 0
    for (z, x, y), data in tiles[:: max(1, len(tiles) // 12)]:
        raw = gzip.decompress(data)
        live = client.get(f"/tiles/WebMercatorQuad/{z}/{x}/{y}", params={"collections": LAYERS})
        assert live.status_code == 200
        decoded = mapbox_vector_tile.decode(raw)
        # the same features, attributes and geometry (a tile's feature order is not defined: no ORDER BY)
        assert _features(decoded) == _features(mapbox_vector_tile.decode(live.content))
        assert set(decoded) <= set(LAYERS.split(","))
        checked += 1
    assert checked >= 6
    # a z14 tile: every camera inside it is there (no thinning at 14), with its attributes
    (z, x, y), data = next((t, d) for t, d in tiles if t[0] == 14 and "cameras" in mapbox_vector_tile.decode(
        gzip.decompress(d)))
    layer = mapbox_vector_tile.decode(gzip.decompress(data))["cameras"]
    import morecantile

    b = morecantile.tms.get("WebMercatorQuad").xy_bounds(x, y, z)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM cim.cameras WHERE geom_3857 && "
                                 "ST_MakeEnvelope(:a, :b, :c, :d, 3857)"),
                         {"a": b.left, "b": b.bottom, "c": b.right, "d": b.top}).scalar_one()
    inside = [f for f in layer["features"] if 0 <= f["geometry"]["coordinates"][0] < 4096
              and 0 <= f["geometry"]["coordinates"][1] <= 4096]
    assert len(inside) == n > 0
    assert all("camera_type" in f["properties"] for f in layer["features"])


def test_only_public_layers(demo_database_url, tmp_path):
    done = cim(demo_database_url, tmp_path, "tiles", "export", str(tmp_path / "p.pmtiles"), "--collections",
               "people")
    assert done.returncode == 1 and "not public" in done.stderr
    assert not (tmp_path / "p.pmtiles").exists()


def test_range_requests(client, archive):
    data = archive.read_bytes()
    size = len(data)
    whole = client.get("/pmtiles/minhang.pmtiles")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "application/vnd.pmtiles"
    tag = whole.headers["etag"]
    r = client.get("/pmtiles/minhang", headers={"Range": "bytes=0-126"})
    assert r.status_code == 206 and r.content == data[:127]
    assert r.headers["content-range"] == f"bytes 0-126/{size}" and r.headers["content-length"] == "127"
    r = client.get("/pmtiles/minhang", headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.content == data[-100:]
    r = client.get("/pmtiles/minhang", headers={"Range": f"bytes={size - 10}-{size + 1000}"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = client.get("/pmtiles/minhang", headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    r = client.get("/pmtiles/minhang", headers={"If-None-Match": tag})
    assert r.status_code == 304
    r = client.get("/pmtiles/minhang", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status_code == 200 and len(r.content) == size  # changed since: the whole archive
    r = client.get("/pmtiles/minhang", headers={"Range": "bytes=0-9", "If-Range": tag})
    assert r.status_code == 206 and r.content == data[:10]
    r = client.get("/pmtiles/minhang", headers={"Range": "lines=1-2"})
    assert r.status_code == 200
    assert client.head("/pmtiles/minhang").status_code == 200
    for bad in ("nosuch", "..%2Fsecret", ".hidden", "a" * 121):
        assert client.get(f"/pmtiles/{bad}").status_code in (404, 400), bad


def test_reader_over_http_and_tile_route(client, archive):
    def get_bytes(offset: int, length: int) -> bytes:
        r = client.get("/pmtiles/minhang", headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        assert r.status_code == 206
        return r.content

    remote = Reader(get_bytes)
    with archive.open("rb") as f:
        local = Reader(MmapSource(f))
        (z, x, y), data = next(t for t in all_tiles(local.get_bytes) if t[0][0] == 12)
    assert remote.metadata()["vector_layers"][0]["id"] == "cameras"
    assert remote.get(z, x, y) == data
    r = client.get(f"/pmtiles/minhang/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200 and r.content == gzip.decompress(data)
    assert mapbox_vector_tile.decode(r.content)
    r = client.get("/pmtiles/minhang/14/0/0.mvt")
    assert r.status_code == 204
    assert client.get("/pmtiles/minhang/20/0/0.mvt").status_code == 404
