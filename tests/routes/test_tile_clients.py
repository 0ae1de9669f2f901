"""Tile URLs for clients: ``.mvt``/``.pbf`` aliases (GDAL's MVT driver opens one), tile matrix sets in both
the TMS 2.0 and 1.0 encodings (GDAL 3.6 reads only 1.0), thinning described in tileset metadata and TileJSON."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import morecantile
import pyogrio
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.tiles.mvt import THIN_BELOW_ZOOM
from tests.routes.serving import in_thread

from .conftest import AREA

WMQ = morecantile.tms.get("WebMercatorQuad")
_T = WMQ.tile((AREA[0] + AREA[2]) / 2, (AREA[1] + AREA[3]) / 2, 15)
TILE = f"/collections/cameras/tiles/WebMercatorQuad/15/{_T.x}/{_T.y}"


@pytest.fixture(scope="module")
def client(settings, features_data) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("ext", [".mvt", ".pbf"])
def test_extension_aliases_serve_the_same_tile(client, ext):
    plain = client.get(TILE, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.content
    for _ in range(2):  # the route, then the cached fast path
        aliased = client.get(TILE + ext, headers={"Accept-Encoding": "identity"})
        assert aliased.status_code == 200 and aliased.content == plain.content
        assert aliased.headers["etag"] == plain.headers["etag"]
    assert client.get(TILE + ".png").status_code in (400, 404)
    multi = f"/tiles/WebMercatorQuad/15/{_T.x}/{_T.y}"
    assert client.get(multi + ext, params={"collections": "cameras"}).content == \
        client.get(multi, params={"collections": "cameras"}).content


@pytest.fixture(scope="module")
def served(settings, features_data) -> Iterator[str]:
    """The app under uvicorn on a free loopback port (GDAL needs a real HTTP server)."""
    with in_thread(settings) as url:
        yield url


def test_gdal_mvt_driver_opens_a_pbf_tile_url(served, engine):
    res = subprocess.run(["/usr/bin/ogrinfo", "-ro", "-al", "-so", f"MVT:{served}{TILE}.pbf"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Layer name: cameras" in res.stdout
    count = int(res.stdout.split("Feature Count: ", 1)[1].split()[0])
    assert count > 0
    listing = subprocess.run(["/usr/bin/ogrinfo", "-ro", "-al", f"MVT:{served}{TILE}.pbf"],
                             capture_output=True, text=True, timeout=120)
    assert "camera_type (String)" in listing.stdout
    x, y = (float(v) for v in listing.stdout.split("POINT (", 1)[1].split(")", 1)[0].split())
    b = WMQ.xy_bounds(_T)  # georeferenced from the z/x/y of the URL: Web Mercator metres inside the tile
    pad = (b.right - b.left) * 64 / 4096
    assert b.left - pad <= x <= b.right + pad and b.bottom - pad <= y <= b.top + pad


def test_tile_matrix_sets_carry_the_tms_1_0_encoding_too(client):
    for tms_id, crs in (("WebMercatorQuad", "EPSG/0/3857"), ("WorldCRS84Quad", "OGC/1.3/CRS84")):
        doc = client.get(f"/tileMatrixSets/{tms_id}").json()
        assert doc["id"] == doc["identifier"] == tms_id and doc["type"] == "TileMatrixSetType"
        assert doc["supportedCRS"].endswith(crs) and doc["crs"] == doc["supportedCRS"]
        assert len(doc["tileMatrix"]) == len(doc["tileMatrices"])
        for old, new in zip(doc["tileMatrix"], doc["tileMatrices"], strict=True):
            assert old["identifier"] == new["id"] and old["topLeftCorner"] == new["pointOfOrigin"]
            assert old["scaleDenominator"] == new["scaleDenominator"]
            assert (old["matrixWidth"], old["matrixHeight"]) == (new["matrixWidth"], new["matrixHeight"])


def test_gdal_parses_the_served_tile_matrix_set(client, tmp_path):
    """GDAL 3.6's TileMatrixSet parser (used by the OGCAPI, COG and GPKG drivers) reads the document."""
    for tms_id in ("WebMercatorQuad", "WorldCRS84Quad"):
        path = tmp_path / f"{tms_id}.json"
        path.write_bytes(client.get(f"/tileMatrixSets/{tms_id}").content)
        src = tmp_path / "src.tif"
        subprocess.run(["/usr/bin/gdal_translate", "-q", "-of", "GTiff", "-a_srs", "EPSG:4326", "-a_ullr",
                        "121.3", "31.2", "121.5", "31.0", "/usr/share/gdal/gdalicon.png", str(src)], check=True,
                       timeout=60)
        res = subprocess.run(["/usr/bin/gdal_translate", "-q", "-of", "COG", "-co", f"TILING_SCHEME={path}",
                              str(src), str(tmp_path / f"{tms_id}.tif")], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0 and "Invalid tiling matrix set" not in res.stderr, res.stderr


def test_thinning_is_described_in_tileset_metadata_and_tilejson(client):
    meta = client.get("/collections/cameras/tiles/WebMercatorQuad").json()
    thin = meta["layers"][0]["x-cim-thinning"]
    assert thin["belowZoom"] == THIN_BELOW_ZOOM and thin["countProperty"] == "count"
    assert "count" in meta["layers"][0]["propertiesSchema"]["properties"]
    tj = client.get("/collections/cameras/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj["vector_layers"][0]["x-cim-thinning"] == thin
    assert tj["vector_layers"][0]["fields"]["count"] == "Number"
    towns = client.get("/collections/towns/tiles/WebMercatorQuad/tilejson.json").json()
    assert "x-cim-thinning" not in towns["vector_layers"][0]  # only point layers are thinned
    listing = client.get("/collections/cameras/tiles").json()
    rels = {link["rel"] for link in listing["tilesets"][0]["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/tileset" in rels


def test_gdal_ogcapi_driver_reads_the_features_of_a_collection_with_tiles(served, engine, tmp_path):
    """`ogrinfo OGCAPI:…/collections/cameras` opens the layer and reads every feature (GDAL 3.6 used to take the
    collection's typed tilesets link into its compiled-out vector-tiles path and open nothing, silently)."""
    url = f"OGCAPI:{served}/collections/cameras"
    info = subprocess.run(["/usr/bin/ogrinfo", "-ro", "-al", "-so", url], capture_output=True, text=True,
                          timeout=120)
    assert info.returncode == 0, info.stderr
    assert "Layer name: cameras" in info.stdout and "Geometry: Point" in info.stdout
    out = tmp_path / "cameras.fgb"
    copied = subprocess.run(["/usr/bin/ogr2ogr", "-f", "FlatGeobuf", str(out), url, "-oo", "PAGE_SIZE=10000"],
                            capture_output=True, text=True, timeout=300)
    assert copied.returncode == 0, copied.stderr
    got = pyogrio.read_dataframe(out)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM cim.cameras")).scalar_one()
    assert len(got) == n > 0 and got.geometry.notna().all()
    assert {"device_id", "camera_type"} <= set(got.columns)
