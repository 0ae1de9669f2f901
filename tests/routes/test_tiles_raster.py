"""Raster tiles: a small COG written in the test is served as colour-mapped PNG tiles."""

from __future__ import annotations

import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from cim_service.app import create_app

BOUNDS = (121.38, 31.10, 121.42, 31.13)
WMQ = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def client(settings, tmp_path_factory):
    src = tmp_path_factory.mktemp("raster") / "plain.tif"
    data = np.add.outer(np.arange(64), np.arange(64)).astype("float32")  # a diagonal ramp 0..126
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "float32",
               "crs": "EPSG:4326", "transform": from_bounds(*BOUNDS, 64, 64), "nodata": -1}
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(data, 1)
    target = settings.home / "rasters" / "camera_density_test.tif"
    target.parent.mkdir(parents=True, exist_ok=True)
    cog_translate(src, target, cog_profiles.get("deflate"), quiet=True)
    assert cog_validate(target)[0]
    with TestClient(create_app(settings)) as c:
        yield c
    target.unlink()


def _png(content: bytes) -> np.ndarray:
    with MemoryFile(content) as mem, mem.open() as ds:
        assert ds.driver == "PNG"
        return ds.read()


def test_raster_listing_and_tile(client):
    listing = client.get("/rasters").json()["rasters"]
    assert "camera_density_test" in [r["id"] for r in listing]
    t = WMQ.tile(121.40, 31.115, 13)
    r = client.get(f"/rasters/camera_density_test/tiles/WebMercatorQuad/13/{t.x}/{t.y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    rgba = _png(r.content)
    assert rgba.shape[1:] == (256, 256) and rgba.shape[0] in (3, 4)
    colours = {tuple(px) for px in rgba[:3].reshape(3, -1).T}
    assert len(colours) > 10  # a colour ramp, not a flat image
    reds = client.get(f"/rasters/camera_density_test/tiles/WebMercatorQuad/13/{t.x}/{t.y}.png?colormap=reds")
    assert reds.status_code == 200 and reds.content != r.content


def test_raster_tilejson(client):
    tj = client.get("/rasters/camera_density_test/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["tiles"][0].endswith(
        "/rasters/camera_density_test/tiles/WebMercatorQuad/{z}/{x}/{y}.png")
    assert tj["bounds"] == pytest.approx(list(BOUNDS), abs=1e-3)
    assert 0 <= tj["minzoom"] <= tj["maxzoom"] <= 24
    assert client.get("/rasters/nope/tilejson.json").status_code == 404


def test_raster_errors(client):
    assert client.get("/rasters/camera_density_test/tiles/WebMercatorQuad/13/0/0.png").status_code == 204
    assert client.get("/rasters/nope/tiles/WebMercatorQuad/13/0/0.png").status_code == 404
    assert client.get("/rasters/..%2Fx/tiles/WebMercatorQuad/13/0/0.png").status_code == 404
    assert client.get("/rasters/camera_density_test/tiles/WebMercatorQuad/40/0/0.png").status_code == 404
    t = WMQ.tile(121.40, 31.115, 13)
    base = f"/rasters/camera_density_test/tiles/WebMercatorQuad/13/{t.x}/{t.y}.png"
    bad = client.get(base + "?colormap=nope")
    assert bad.status_code == 400 and "colormap" in bad.json()["description"]
    assert client.get(base + "?rescale=5,1").status_code == 400


def test_raster_as_coverage_description_legend_and_cog_download(client, settings):
    doc = client.get("/rasters/camera_density_test").json()
    assert doc["itemType"] == "coverage" and doc["x-cim-raster"]["width"] == 64
    assert doc["x-cim-raster"]["nodata"] == -1 and doc["x-cim-raster"]["dataType"] == "float32"
    box = doc["extent"]["spatial"]["bbox"][0]
    assert all(abs(a - b) < 1e-6 for a, b in zip(box, BOUNDS, strict=True))
    legend = client.get("/rasters/camera_density_test/legend").json()
    assert legend == doc["legend"]
    assert legend["min"] == 0 and legend["max"] == 126  # the ramp's values, as the tiles rescale them
    assert legend["stops"][0] == {"value": 0.0, "color": "#440154"}  # viridis, low end
    assert legend["stops"][-1]["value"] == 126 and legend["stops"][-1]["color"] == "#fde724"
    fixed = client.get("/rasters/camera_density_test/legend", params={"rescale": "0,10", "colormap": "reds"}).json()
    assert fixed["max"] == 10 and fixed["colormap"] == "reds" and fixed["stops"][0]["color"] != "#440154"
    assert client.get("/rasters/camera_density_test/legend", params={"colormap": "nope"}).status_code == 400

    whole = client.get("/rasters/camera_density_test/coverage")
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("image/tiff")
    on_disk = (settings.home / "rasters" / "camera_density_test.tif").read_bytes()
    assert whole.content == on_disk
    with MemoryFile(whole.content) as mem, mem.open() as ds:
        assert ds.read(1)[5, 7] == 12.0  # the ramp: row + column
    part = client.get("/rasters/camera_density_test/coverage", headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206 and part.content == on_disk[:1024]
    assert part.headers["content-range"] == f"bytes 0-1023/{len(on_disk)}"
    assert client.get("/rasters/nothing_here/coverage").status_code == 404
    assert client.get("/rasters/..%2Fsecrets/coverage").status_code == 404
