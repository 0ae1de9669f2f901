"""Rasters as OGC API Coverages collections: a COG in EPSG:4549 written here, read back over HTTP by rasterio and
by GDAL's OGCAPI: driver (gdal-bin 3.6, as a subprocess)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from cim_service.app import create_app
from tests.routes.serving import in_thread

NAME = "density_cov_test"
SIZE = 64
#: the cells' north-west corner in EPSG:4549 (CGCS2000 / 3-degree GK CM 120E), over Minhang; 100 m cells
ORIGIN = (620_000.0, 3_450_000.0)


@pytest.fixture(scope="module")
def cog(settings, tmp_path_factory):
    src = tmp_path_factory.mktemp("coverage") / "plain.tif"
    data = np.add.outer(np.arange(SIZE), np.arange(SIZE)).astype("float32")  # row + column: 0..126
    data[0, 0] = -1  # one nodata cell (the legend then starts at 1)
    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": 1, "dtype": "float32",
               "crs": "EPSG:4549", "transform": from_origin(*ORIGIN, 100, 100), "nodata": -1}
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(data, 1)
    target = settings.home / "rasters" / f"{NAME}.tif"
    target.parent.mkdir(parents=True, exist_ok=True)
    cog_translate(src, target, cog_profiles.get("deflate"), quiet=True)
    yield target
    target.unlink()


@pytest.fixture(scope="module")
def client(settings, cog) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def served(settings, cog) -> Iterator[str]:
    with in_thread(settings) as url:
        yield url


def _tiff(content: bytes):
    with MemoryFile(content) as mem, mem.open() as ds:
        return ds.profile, ds.read(1), ds.bounds


def _source_value(cog, lon: float, lat: float) -> float:
    from rasterio.warp import transform

    with rasterio.open(cog) as src:
        xs, ys = transform("EPSG:4326", src.crs, [lon], [lat])
        return float(next(src.sample([(xs[0], ys[0])]))[0])


def test_the_raster_is_a_coverage_collection(client):
    listing = client.get("/collections").json()["collections"]
    doc = next(c for c in listing if c["id"] == NAME)
    assert doc == client.get(f"/collections/{NAME}").json()
    assert doc["itemType"] == "coverage" and doc["storageCrs"].endswith("EPSG/0/4549")
    west, south, east, north = doc["extent"]["spatial"]["bbox"][0]
    assert 121.0 < west < east < 121.6 and 31.0 < south < north < 31.3
    links = {(link["rel"].rsplit("/", 1)[-1], link["type"]): link["href"] for link in doc["links"]}
    assert links[("coverage", "image/tiff; application=geotiff")].endswith(f"/collections/{NAME}/coverage")
    assert links[("coverage-domainset", "application/json")].endswith("/coverage/domainset")
    assert links[("coverage-rangetype", "application/json")].endswith("/coverage/rangetype")
    assert doc["legend"]["min"] == 1 and doc["legend"]["max"] == 126 and len(doc["legend"]["stops"]) >= 2
    assert "coverage" in client.get(f"/collections/{NAME}?f=html").text
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/subsetting" in conf


def test_domainset_rangetype_and_tilejson_zooms(client):
    dom = client.get(f"/collections/{NAME}/coverage/domainset").json()["generalGrid"]
    assert dom["srsName"].endswith("OGC/1.3/CRS84") and dom["axisLabels"] == ["Lon", "Lat"]
    lon, lat = dom["axis"]
    i, j = dom["gridLimits"]["axis"]
    assert lon["lowerBound"] < lon["upperBound"] and lat["lowerBound"] < lat["upperBound"]
    width, height = i["upperBound"] + 1, j["upperBound"] + 1
    assert width * lon["resolution"] == pytest.approx(lon["upperBound"] - lon["lowerBound"])
    assert height * lat["resolution"] == pytest.approx(lat["upperBound"] - lat["lowerBound"])
    assert 60 <= width <= 72 and 60 <= height <= 72  # 64 cells of 100 m, re-gridded in degrees
    rng = client.get(f"/collections/{NAME}/coverage/rangetype").json()["field"]
    assert len(rng) == 1 and rng[0]["definition"] == "ogcType:float32" and rng[0]["nilValues"][0]["value"] == -1
    tj = client.get(f"/rasters/{NAME}/tilejson.json").json()
    # cells of 100 m at 31° N: z11's pixels (65.6 m on the ground) are the first as fine; any zoom draws the raster
    assert tj["minzoom"] == 0 and tj["maxzoom"] == 11


def test_coverage_without_parameters_is_the_cog_with_ranges(client, cog):
    whole = client.get(f"/collections/{NAME}/coverage")
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("image/tiff")
    assert whole.content == cog.read_bytes()
    part = client.get(f"/collections/{NAME}/coverage", headers={"Range": "bytes=0-511"})
    assert part.status_code == 206 and part.content == cog.read_bytes()[:512]


def test_subset_bbox_and_scale_size_give_a_geotiff(client, cog):
    dom = client.get(f"/collections/{NAME}/coverage/domainset").json()["generalGrid"]["axis"]
    w, e = dom[0]["lowerBound"], dom[0]["upperBound"]
    s, n = dom[1]["lowerBound"], dom[1]["upperBound"]
    mid_lon, mid_lat = (w + e) / 2, (s + n) / 2
    sub = client.get(f"/collections/{NAME}/coverage",
                     params={"subset": f"Lon({w}:{mid_lon}),Lat({mid_lat}:{n})", "scaleSize": "Lon(40),Lat(30)"})
    assert sub.status_code == 200 and sub.headers["content-type"] == "image/tiff; application=geotiff"
    profile, data, bounds = _tiff(sub.content)
    assert profile["crs"].to_epsg() == 4326 and (profile["width"], profile["height"]) == (40, 30)
    assert bounds.left == pytest.approx(w) and bounds.top == pytest.approx(n)
    assert profile["nodata"] == -1
    # the cell at a point inside the window holds the source's value there (nearest cell, values kept)
    res_x, res_y = (mid_lon - w) / 40, (n - mid_lat) / 30
    col, row = 25, 17
    lon, lat = w + (col + 0.5) * res_x, n - (row + 0.5) * res_y
    assert data[row, col] == _source_value(cog, lon, lat)
    same = client.get(f"/collections/{NAME}/coverage",
                      params={"bbox": f"{w},{mid_lat},{mid_lon},{n}", "scaleSize": "Lon(40),Lat(30)"})
    assert same.content == sub.content
    two_params = client.get(f"/collections/{NAME}/coverage?subset=Lat({mid_lat}:{n})&subset=Lon({w}:{mid_lon})"
                            "&scaleSize=Lat(30),Long(40)")
    assert _tiff(two_params.content)[1].tolist() == data.tolist()
    native = _tiff(client.get(f"/collections/{NAME}/coverage", params={"scaleSize": "Lon(64),Lat(64)"}).content)
    assert native[0]["width"] == 64 and (native[1] > 0).sum() > 3000
    outside = _tiff(client.get(f"/collections/{NAME}/coverage", params={"bbox": "100,10,100.1,10.1",
                                                                         "scaleSize": "Lon(8),Lat(8)"}).content)
    assert (outside[1] == -1).all()  # beyond the raster: nodata


@pytest.mark.parametrize(("params", "word"), [
    ({"subset": "Lon(121.5:121.4)"}, "increasing"),
    ({"subset": "Time(1:2)"}, "axis"),
    ({"subset": "Lon(121.4)"}, "range"),
    ({"subset": "Lon(a:b)"}, "number"),
    ({"subset": "Lon(121.3:121.4),Lon(121.3:121.4)"}, "twice"),
    ({"subset": "Lon(nan:1)"}, "finite"),
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "121,31,122,32", "subset": "Lon(121.3:121.4)"}, "one of them"),
    ({"scaleSize": "Lon(100000),Lat(100000)"}, "scaleSize"),
    ({"scaleSize": "Lon(0),Lat(10)"}, "scaleSize"),
    ({"scaleSize": "Lon(10)"}, "both axes"),
    ({"scaleSize": "Lon(1.5),Lat(2)"}, "whole"),
    ({"bbox": "-200,0,10,10"}, "-180..180"),
])
def test_bad_coverage_requests_are_400_naming_the_parameter(client, params, word):
    r = client.get(f"/collections/{NAME}/coverage", params=params)
    assert r.status_code == 400 and word in r.json()["description"], r.text


def test_unknown_coverages_and_layers_are_404(client):
    assert client.get("/collections/nothing_here/coverage").status_code == 404
    assert client.get("/collections/..%2Fsecrets/coverage/domainset").status_code == 404
    assert client.get("/collections/cameras/coverage").status_code == 404  # a feature collection
    assert client.get("/collections/cameras").json()["itemType"] == "feature"


def test_gdal_feature_clients_do_not_take_the_coverage_for_a_layer(served):
    """OAPIF: (GDAL, QGIS's provider) lists the feature collections only: the coverage says it is one."""
    out = subprocess.run(["/usr/bin/ogrinfo", "-ro", "-so", f"OAPIF:{served}"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert ": cameras " in out.stdout and NAME not in out.stdout


def test_gdal_ogcapi_driver_reads_the_coverage(served, cog, tmp_path):
    """GDAL 3.6 opens OGCAPI:…/collections/<id> as a raster in CRS84 and reads it block by block through subset=
    and scaleSize=; the result matches gdalwarp of the COG to the same grid."""
    url = f"OGCAPI:{served}/collections/{NAME}"
    out = tmp_path / "read.tif"
    res = subprocess.run(["/usr/bin/gdal_translate", "-q", "-oo", "CACHE=NO", url, str(out)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)  # GDAL's WMS cache, if any, stays in tmp_path
    assert res.returncode == 0, res.stderr
    with rasterio.open(out) as got:
        data, bounds, shape = got.read(1), got.bounds, (got.height, got.width)
    assert got.crs.to_epsg() == 4326
    ref = tmp_path / "ref.tif"
    subprocess.run(["/usr/bin/gdalwarp", "-q", "-t_srs", "EPSG:4326", "-te", str(bounds.left), str(bounds.bottom),
                    str(bounds.right), str(bounds.top), "-ts", str(shape[1]), str(shape[0]), str(cog), str(ref)],
                   check=True, timeout=120)
    with rasterio.open(ref) as want:
        expected = want.read(1)
    assert (data == expected).mean() > 0.97  # nearest cells on both sides; borders of cells may round apart
    assert data.max() == pytest.approx(expected.max(), abs=2)


def _gdalinfo(target: str, cwd, *args: str) -> dict:
    res = subprocess.run(["/usr/bin/gdalinfo", "-json", *args, target], capture_output=True, text=True, timeout=120,
                         cwd=cwd)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_gdal_reads_the_nodata_of_the_range_type_where_it_can(served, client, tmp_path):
    """Issue 12: GDAL's nodata of the coverage. Ours agree everywhere: the range type's nil value is the COG's
    nodata tag and every served GeoTIFF's. GDAL 3.6's OGCAPI: driver reads only the data type from the range
    type (``InitWithCoverageAPI``: no ``nilValues``, no ``<NoDataValue>`` in the WMS description it builds), so
    through it the band has no nodata and the nodata cell counts as the value -1; ``-a_nodata`` with the range
    type's value (README, analyst section) makes the statistics those of the COG."""
    nil = client.get(f"/collections/{NAME}/coverage/rangetype").json()["field"][0]["nilValues"][0]["value"]
    legend = client.get(f"/collections/{NAME}").json()["legend"]
    coverage = f"{served}/collections/{NAME}/coverage"
    cog = _gdalinfo(f"/vsicurl/{coverage}", tmp_path, "-stats")["bands"][0]
    assert cog["noDataValue"] == nil == -1
    assert cog["minimum"] == legend["min"] == 1  # the nodata cell is left out
    part = tmp_path / "part.tif"
    part.write_bytes(client.get(f"/collections/{NAME}/coverage", params={"bbox": "121.26,31.11,121.32,31.16"}).content)
    assert _gdalinfo(str(part), tmp_path)["bands"][0]["noDataValue"] == nil
    # the OGCAPI: driver: no nodata (GDAL 3.6.2; when this fails GDAL reads nilValues: drop the README's -a_nodata)
    ogc = _gdalinfo(f"OGCAPI:{served}/collections/{NAME}", tmp_path, "-oo", "CACHE=NO", "-stats")["bands"][0]
    assert "noDataValue" not in ogc and ogc["minimum"] == nil
    fixed = tmp_path / "fixed.tif"
    res = subprocess.run(["/usr/bin/gdal_translate", "-q", "-oo", "CACHE=NO", "-a_nodata", str(nil),
                          f"OGCAPI:{served}/collections/{NAME}", str(fixed)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    band = _gdalinfo(str(fixed), tmp_path, "-stats")["bands"][0]
    assert band["noDataValue"] == nil and band["minimum"] == legend["min"]
