"""File exports of items read back by real clients: ogr2ogr (GDAL 3.6) for GeoPackage, FlatGeobuf and GeoJSONSeq,
pyarrow and geopandas for GeoParquet; counts, ids, attributes (Chinese text) and coordinates against the database."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
import shapely
import sqlalchemy as sa

from tests.routes.conftest import db_count

OGR2OGR = "/usr/bin/ogr2ogr"
FILE_FORMATS = ("gpkg", "fgb", "geojsonseq")


def export(api, layer: str, fmt: str, path: Path, headers: dict | None = None, **params) -> Path:
    r = api.get(f"/collections/{layer}/items", params={"f": fmt, **params}, headers=headers or {})
    assert r.status_code == 200, r.text
    path.write_bytes(r.content)
    return path


def ogr_to_geojson(path: Path, out: Path) -> dict:
    """Convert with ogr2ogr (the client under test) to GeoJSON and load it."""
    done = subprocess.run([OGR2OGR, "-preserve_fid", "-f", "GeoJSON", str(out), str(path)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def db_rows(engine, table: str, where: str = "TRUE") -> dict[int, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y, t.* FROM {table} t "
                                    f"WHERE {where} ORDER BY id")).mappings().all()
    return {int(r["id"]): dict(r) for r in rows}


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_ogr2ogr_reads_every_feature_with_its_attributes(api, engine, tmp_path, fmt):
    path = export(api, "addresses", fmt, tmp_path / f"addresses.{fmt}")
    doc = ogr_to_geojson(path, tmp_path / "back.geojson")
    expected = db_rows(engine, "cim.addresses")
    assert len(doc["features"]) == len(expected) > 1000
    seen = set()
    for feature in doc["features"]:
        props = feature["properties"]
        fid = int(props["id"]) if "id" in props else int(feature["id"])
        seen.add(fid)
        row = expected[fid]
        assert props["full_address"] == row["full_address"]
        assert props["town"] == row["town"]
        x, y = feature["geometry"]["coordinates"]
        assert x == pytest.approx(row["x"], abs=1e-7) and y == pytest.approx(row["y"], abs=1e-7)
    assert seen == set(expected)
    assert any("闵行" in f["properties"]["full_address"] for f in doc["features"])  # Chinese text intact


def test_geoparquet_metadata_and_values(api, engine, tmp_path):
    path = export(api, "addresses", "parquet", tmp_path / "addresses.parquet")
    meta = pq.read_metadata(path)
    geo = json.loads(meta.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Point"]
    assert "crs" not in column  # CRS84, the default
    assert column["covering"]["bbox"] == {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}
    table = pq.read_table(path)
    assert table.num_rows == db_count(engine, "SELECT count(*) FROM cim.addresses")
    assert table.schema.field("residential").type == "bool"
    # bbox covering matches the geometry
    geoms = shapely.from_wkb(table.column("geometry").to_pylist())
    bbox = table.column("bbox").to_pylist()
    bounds = shapely.bounds(geoms)
    assert all(b["xmin"] == pytest.approx(r[0]) and b["ymax"] == pytest.approx(r[3]) for b, r in zip(bbox, bounds,
                                                                                                    strict=True))
    # a reader of GeoParquet (geopandas) gets the same rows
    frame = gpd.read_parquet(path)
    expected = db_rows(engine, "cim.addresses")
    assert frame.crs.to_string() in ("OGC:CRS84", "EPSG:4326")
    sample = frame.sample(50, random_state=1)
    for fid, text, geom in zip(sample["id"], sample["full_address"], sample.geometry, strict=True):
        assert text == expected[int(fid)]["full_address"]
        assert geom.x == pytest.approx(expected[int(fid)]["x"], abs=1e-9)
    assert meta.num_row_groups >= 1


def test_filters_crs_and_properties_apply_like_json(api, engine, tmp_path):
    town = db_rows(engine, "cim.addresses", "town IS NOT NULL")
    name = next(iter(town.values()))["town"]
    params = {"filter": f"town = '{name}'", "properties": "full_address,town", "crs": "EPSG:4549"}
    expected = {i: r for i, r in town.items() if r["town"] == name}
    pq_path = export(api, "addresses", "parquet", tmp_path / "t.parquet", **params)
    table = pq.read_table(pq_path)
    assert table.num_rows == len(expected)
    assert table.column_names == ["id", "full_address", "town", "geometry", "bbox"]
    crs = json.loads(pq.read_metadata(pq_path).metadata[b"geo"])["columns"]["geometry"]["crs"]
    assert crs["id"] == {"authority": "EPSG", "code": 4549}
    x = shapely.from_wkb(table.column("geometry").to_pylist()[0]).x
    assert 300_000 < x < 700_000  # easting first in files, whatever the CRS's axis order
    gpkg = ogr_to_geojson(export(api, "addresses", "gpkg", tmp_path / "t.gpkg", **params), tmp_path / "g.geojson")
    assert len(gpkg["features"]) == len(expected)
    assert set(gpkg["features"][0]["properties"]) == {"id", "full_address", "town"}
    # limit and sortby: the first n in that order
    r = api.get("/collections/addresses/items", params={"f": "geojsonseq", "limit": 7, "sortby": "-id"})
    records = r.content.split(b"\x1e")[1:]
    assert r.headers["content-type"].startswith("application/geo+json-seq")
    assert len(records) == 7 and all(rec.endswith(b"\n") for rec in records)
    assert [json.loads(rec)["id"] for rec in records] == sorted(db_rows(engine, "cim.addresses"), reverse=True)[:7]


def test_gcj02_export_converts_coordinates(api, engine, tmp_path):
    from cim_service.core.crs import transform_geometry

    path = export(api, "addresses", "parquet", tmp_path / "g.parquet", crs="gcj02", limit=20)
    table = pq.read_table(path)
    assert json.loads(pq.read_metadata(path).metadata[b"geo"])["columns"]["geometry"]["crs"] is None
    rows = db_rows(engine, "cim.addresses")
    for fid, wkb in zip(table.column("id").to_pylist(), table.column("geometry").to_pylist(), strict=True):
        expected = transform_geometry(shapely.Point(rows[fid]["x"], rows[fid]["y"]), "EPSG:4326", "GCJ02")
        got = shapely.from_wkb(wkb)
        assert got.x == pytest.approx(expected.x, abs=1e-9) and got.x != pytest.approx(rows[fid]["x"], abs=1e-5)


def test_personal_fields_need_the_scope_and_exports_are_logged(api, engine, officer, analyst, tmp_path):
    assert api.get("/collections/people/items", params={"f": "parquet"}).status_code == 404
    assert api.get("/collections/people/items", params={"f": "parquet"}, headers=analyst).status_code == 404
    before = db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'export'")
    path = export(api, "people", "parquet", tmp_path / "p.parquet", headers=officer)
    table = pq.read_table(path)
    assert {"name", "id_number", "phone"} <= set(table.column_names)
    assert table.num_rows == db_count(engine, "SELECT count(*) FROM cim.people")
    with engine.connect() as conn:
        log = conn.execute(sa.text("SELECT layer_id, fields FROM cim_meta.access_log WHERE action = 'export' "
                                   "ORDER BY id DESC LIMIT 1")).mappings().one()
    assert db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'export'") == before + 1
    assert log["layer_id"] == "people" and "id_number" in log["fields"]


def test_internal_layer_without_personal_fields(api, analyst, engine, tmp_path):
    path = export(api, "organisations", "fgb", tmp_path / "o.fgb", headers=analyst)
    doc = ogr_to_geojson(path, tmp_path / "o.geojson")
    assert len(doc["features"]) == db_count(engine, "SELECT count(*) FROM cim.organisations")
    assert api.get("/collections/organisations/items", params={"f": "fgb"}).status_code == 404


def test_empty_result_is_a_valid_file(api, tmp_path):
    r = api.get("/collections/addresses/items", params={"f": "geojsonseq", "filter": "town = '不存在的镇'"})
    assert r.status_code == 200 and r.content == b""  # a sequence of no text (GDAL opens no empty file)
    for fmt in ("gpkg", "fgb"):
        path = export(api, "addresses", fmt, tmp_path / f"empty.{fmt}", filter="town = '不存在的镇'")
        doc = ogr_to_geojson(path, tmp_path / f"empty-{fmt}.geojson")
        assert doc["features"] == []
    table = pq.read_table(export(api, "addresses", "parquet", tmp_path / "e.parquet", filter="town = '不存在'"))
    assert table.num_rows == 0 and "geometry" in table.column_names


def test_bad_parameters_are_400_before_any_byte(api, settings):
    r = api.get("/collections/addresses/items", params={"f": "shp"})
    assert r.status_code == 400 and "'f'" in r.json()["description"]
    r = api.get("/collections/addresses/items", params={"f": "gpkg", "filter": "nosuch = 1"})
    assert r.status_code == 400 and "filter" in r.json()["description"]
    r = api.get("/collections/addresses/items", params={"f": "parquet", "cursor": "garbage!"})
    assert r.status_code == 400 and "'cursor'" in r.json()["description"]


def test_export_larger_than_the_maximum_is_refused_without_limit(settings, demo_database_url, engine):
    from fastapi.testclient import TestClient

    from cim_service.app import create_app

    n = db_count(engine, "SELECT count(*) FROM cim.addresses")
    small = settings.model_copy(update={"max_export_features": n - 1, "default_limit": 10, "max_limit": 100})
    with TestClient(create_app(small)) as client:
        r = client.get("/collections/addresses/items", params={"f": "parquet"})
        assert r.status_code == 400 and "'limit'" in r.json()["description"]
        assert str(n - 1) in r.json()["description"]
        # with a limit, the house rule: clamped to the maximum
        r = client.get("/collections/addresses/items", params={"f": "geojsonseq", "limit": n + 50})
        assert r.status_code == 200 and r.content.count(b"\x1e") == n - 1


def test_collection_lists_its_downloads(api):
    doc = api.get("/collections/cameras").json()
    enclosures = {link["type"]: link["href"] for link in doc["links"] if link["rel"] == "enclosure"}
    assert set(enclosures) == {"application/geopackage+sqlite3", "application/flatgeobuf",
                               "application/vnd.apache.parquet", "application/geo+json-seq"}
    for media, href in enclosures.items():
        r = api.get(href.replace("http://testserver", ""))
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert r.headers["content-disposition"].startswith('attachment; filename="cameras.')


def test_head_of_an_export_does_not_run_it(api, engine):
    before = db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'export'")
    r = api.head("/collections/addresses/items", params={"f": "parquet"})
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"].startswith("application/vnd.apache.parquet")
    assert r.headers["content-disposition"] == 'attachment; filename="addresses.parquet"'
    assert api.app.state.exports.busy == 0
    r = api.head("/collections/addresses/items", params={"f": "parquet", "filter": "nosuch = 1"})
    assert r.status_code == 400  # parameters are still checked
    assert db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'export'") == before


@pytest.mark.parametrize("fmt", FILE_FORMATS)
@pytest.mark.parametrize("coding", ["br", "gzip"])
def test_exports_are_compressed_on_the_wire_when_accepted(api, fmt, coding):
    """GeoJSONSeq, FlatGeobuf and GeoPackage travel in the coding the client accepts (decoded: the same file);
    GeoParquet, compressed inside, and clients that accept nothing get the file as it is."""
    params = {"f": fmt, "limit": 2000}
    plain = api.get("/collections/addresses/items", params=params, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    with api.stream("GET", "/collections/addresses/items", params=params,
                    headers={"Accept-Encoding": coding}) as coded:
        body = coded.read()
        wire = coded.num_bytes_downloaded
    assert coded.headers["content-encoding"] == coding and "Accept-Encoding" in coded.headers["vary"]
    if fmt == "gpkg":  # SQLite pages: the same features, not necessarily the same bytes from run to run
        assert body[:16] == b"SQLite format 3\x00" and abs(len(body) - len(plain.content)) < len(plain.content) / 4
    else:
        assert body == plain.content
    assert wire * 4 < len(body)
    parquet = api.get("/collections/addresses/items", params={"f": "parquet", "limit": 2000},
                      headers={"Accept-Encoding": coding})
    assert "content-encoding" not in parquet.headers
