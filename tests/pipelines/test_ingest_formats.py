"""Ingest of each supported format and option on small generated files (own throwaway database)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
import sqlalchemy as sa

from cim_service.core.crs import bd09_to_wgs84, gcj02_to_wgs84
from pipelines.ingest import IngestError, ingest_file
from pipelines.readers import column_mapping, find_coordinate_columns


def _empty(engine, table):
    with engine.begin() as conn:
        conn.execute(sa.text(f'TRUNCATE "cim"."{table}"'))


def _one(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).one()


def _all(engine, sql, **params):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]


def test_gbk_csv_with_chinese_headers(tmp_path, db, catalog):
    _empty(db, "smart_lockers")
    path = tmp_path / "lockers.csv"
    path.write_bytes("柜体编号,运营商,经度,纬度,安装日期\nL1,丰巢,121.40,31.10,2023年3月5日\nL2,速递易,121.41,31.11,"
                     "2024/1/2\n".encode("gbk"))
    # a field's Chinese title is not an accepted column name: the required id has no column
    with pytest.raises(IngestError, match="required field\\(s\\) locker_id"):
        ingest_file(db, catalog, "smart_lockers", path, crs="wgs84", lon_col="经度", lat_col="纬度")
    path.write_bytes("locker_id,operator,经度,纬度,installed_at\nL1,丰巢,121.40,31.10,2023年3月5日\nL2,速递易,121.41,31.11,"
                     "2024/1/2\n".encode("gbk"))
    result = ingest_file(db, catalog, "smart_lockers", path, crs="wgs84")
    assert result.inserted == 2
    rows = _all(db, "SELECT locker_id, operator, installed_at::text, ST_X(geom) FROM cim.smart_lockers ORDER BY 1")
    assert rows == [("L1", "丰巢", "2023-03-05", 121.40), ("L2", "速递易", "2024-01-02", 121.41)]
    assert _one(db, "SELECT options->>'encoding' FROM cim_meta.ingest_batch WHERE id = :b",
                b=result.batch_id)[0] == "gb18030"


def test_utf8_bom_and_bd09(tmp_path, db, catalog):
    _empty(db, "charging_stations")
    path = tmp_path / "charging.csv"
    path.write_bytes("\ufeffstation_id,name,connectors,fast,lng,lat\nC1,莘庄站,12,是,121.3915,31.1173\n"
                     "C2,七宝站,4,false,121.3563,31.1615\n".encode("utf-8"))
    result = ingest_file(db, catalog, "charging_stations", path, crs="bd09")
    assert result.inserted == 2
    x, y, connectors, fast = _one(db, "SELECT ST_X(geom), ST_Y(geom), connectors, fast FROM cim.charging_stations "
                                      "WHERE station_id = 'C1'")
    want = bd09_to_wgs84(121.3915, 31.1173)
    assert (x, y) == pytest.approx((float(want[0]), float(want[1])), abs=1e-9)
    assert (connectors, fast) == (12, True)


def test_geojson_crs_member_is_ignored_with_a_warning(tmp_path, db, catalog):
    _empty(db, "key_areas")
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:3857"}},
           "features": [{"type": "Feature", "properties": {"name": "虹桥商务区", "g5_target_coverage": 0.95},
                         "geometry": shapely.geometry.mapping(shapely.box(121.30, 31.17, 121.34, 31.21))}]}
    path = tmp_path / "areas.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    warnings: list[str] = []
    result = ingest_file(db, catalog, "key_areas", path, crs="gcj02", warn=warnings.append)
    assert result.inserted == 1
    assert len(warnings) == 1 and "EPSG:3857" in warnings[0] and "GCJ02" in warnings[0]
    xmin = _one(db, "SELECT ST_XMin(geom) FROM cim.key_areas")[0]
    assert xmin == pytest.approx(float(gcj02_to_wgs84(121.30, 31.17)[0]), abs=1e-4)


def test_geopackage_layer_choice_and_shapefile_prj(tmp_path, db, catalog):
    _empty(db, "underground_spaces")
    pts = gpd.GeoDataFrame({"space_id": ["U1", "U2"], "name": ["地下车库", "人防"],
                            "space_kind": ["garage", "civil_defence"]},
                           geometry=shapely.points([121.40, 121.41], [31.10, 31.11]), crs="EPSG:4490")
    gpkg = tmp_path / "spaces.gpkg"
    pyogrio.write_dataframe(pts, gpkg, layer="spaces")
    pyogrio.write_dataframe(pts.iloc[:1], gpkg, layer="other", append=False)
    with pytest.raises(IngestError, match="has 2 layers.*--gpkg-layer"):
        ingest_file(db, catalog, "underground_spaces", gpkg)
    result = ingest_file(db, catalog, "underground_spaces", gpkg, gpkg_layer="spaces")
    assert result.inserted == 2 and result.layer_id == "underground_spaces"
    assert _one(db, "SELECT source_crs FROM cim_meta.ingest_batch WHERE id = :b", b=result.batch_id)[0] == "EPSG:4490"
    shp = tmp_path / "spaces.shp"
    pyogrio.write_dataframe(pts.assign(space_kind=["mall", "mall"]), shp)
    result = ingest_file(db, catalog, "underground_spaces", shp)  # CRS from the .prj
    assert result.updated == 2
    assert _all(db, "SELECT DISTINCT space_kind FROM cim.underground_spaces") == [("mall",)]


def test_swap_axes_and_isolated_swapped_rows(tmp_path, db, catalog):
    _empty(db, "bus_stops")
    path = tmp_path / "stops.csv"
    path.write_text("stop_id,name,lat,lon\nS1,甲,121.40,31.10\nS2,乙,121.41,31.11\nS3,丙,31.12,121.42\n",
                    encoding="utf-8")
    with pytest.raises(IngestError, match="columns 'lon' \\(longitude\\) and 'lat' \\(latitude\\) look swapped"):
        ingest_file(db, catalog, "bus_stops", path)
    result = ingest_file(db, catalog, "bus_stops", path, swap_axes=True)
    assert result.inserted == 3
    assert _all(db, "SELECT stop_id, ST_X(geom) FROM cim.bus_stops ORDER BY 1") == [
        ("S1", 121.40), ("S2", 121.41), ("S3", 121.42)]
    assert _one(db, "SELECT options->>'swapped_rows' FROM cim_meta.ingest_batch WHERE id = :b",
                b=result.batch_id)[0] == "2"
    # a single swapped row among good ones is rejected, not swapped silently
    path.write_text("stop_id,name,lon,lat\nS4,丁,121.40,31.10\nS5,戊,121.41,31.11\nS6,己,31.12,121.42\n",
                    encoding="utf-8")
    result = ingest_file(db, catalog, "bus_stops", path)
    assert (result.inserted, result.rejected) == (2, 1)


def test_invalid_polygon_is_repaired_and_counted(tmp_path, db, catalog):
    _empty(db, "planning_zones")
    bowtie = shapely.Polygon([(121.3, 31.0), (121.5, 31.2), (121.5, 31.0), (121.3, 31.2), (121.3, 31.0)])
    assert not bowtie.is_valid
    frame = gpd.GeoDataFrame({"zone": ["outside_s20"], "name": ["外环外"], "charging_radius_m": [1500.0]},
                             geometry=[bowtie], crs="EPSG:4326")
    path = tmp_path / "zones.geojson"
    pyogrio.write_dataframe(frame, path)
    result = ingest_file(db, catalog, "planning_zones", path)
    assert result.inserted == 1
    valid, kind, area = _one(db, "SELECT ST_IsValid(geom), GeometryType(geom), ST_Area(geom) FROM cim.planning_zones")
    assert valid and kind == "MULTIPOLYGON" and area == pytest.approx(0.02, rel=1e-6)
    assert _one(db, "SELECT options->>'repaired_geometries' FROM cim_meta.ingest_batch WHERE id = :b",
                b=result.batch_id)[0] == "1"


def test_csv_streams_in_chunks(tmp_path, db, catalog):
    _empty(db, "iot_nodes")
    n = 2_500
    rng = np.random.default_rng(7)
    lines = ["node_id,sensor_kind,x,y"] + [
        f"N{i},{'road' if i % 2 else 'water'},{121.3 + rng.random() * 0.2:.6f},{31.0 + rng.random() * 0.15:.6f}"
        for i in range(n)
    ]
    path = tmp_path / "nodes.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[int] = []
    result = ingest_file(db, catalog, "iot_nodes", path, chunk_rows=1_000, progress=seen.append)
    assert seen == [1_000, 2_000, 2_500]
    assert result.inserted == n and _one(db, "SELECT count(*) FROM cim.iot_nodes")[0] == n


def test_column_detection():
    assert find_coordinate_columns(["ID", "Longitude", "Latitude"]) == ("Longitude", "Latitude")
    assert find_coordinate_columns(["lon_gcj02", "lat_gcj02", "name"]) == ("lon_gcj02", "lat_gcj02")
    assert find_coordinate_columns(["经度", "纬度"]) == ("经度", "纬度")
    assert find_coordinate_columns(["a", "b"], lon_col="A", lat_col="b") == ("a", "b")


def test_column_mapping_uses_aliases_in_order(catalog):
    spec = catalog.get("addresses")
    mapping = column_mapping(spec, ["district", "street_level", "address", "complete_address", "lng", "lat"],
                             exclude=("lng", "lat"))
    assert mapping["full_address"] == ["complete_address", "address"] and mapping["town"] == ["street_level"]
    assert "lng" not in {c for cols in mapping.values() for c in cols}
