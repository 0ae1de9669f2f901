"""Hostile files whose faults are confined to rows (issue 8): those rows are rejected, by number, with the reason;
every other row loads exactly as written (no garbled or truncated text); a second run changes nothing.

Own throwaway database; every test empties the layer it loads.
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from typer.testing import CliRunner

from cim_service.cli import app
from pipelines.ingest import ingest_file

CAMERA_HEADER = "device_id,camera_type,owner,lon,lat"
DEVICE = 31011200001320000000


def _empty(engine, table):
    with engine.begin() as conn:
        conn.execute(sa.text(f'TRUNCATE "cim"."{table}"'))


def _all(engine, sql, **params):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]


def _rejects(engine, batch):
    return _all(engine, "SELECT row_number, field, reason FROM cim_meta.ingest_reject WHERE batch_id = :b "
                        "ORDER BY row_number", b=batch)


def _load(engine, catalog, layer, path, **kw):
    """Ingest ``path`` into an emptied ``layer``; check that a second run is a no-op; return the first result."""
    _empty(engine, catalog.get(layer).table)
    warned: list[str] = []
    result = ingest_file(engine, catalog, layer, path, warn=warned.append, **kw)
    assert result.status == "committed"
    assert result.loaded + result.rejected + result.duplicates == result.rows_read
    again = ingest_file(engine, catalog, layer, path, **kw)
    assert (again.status, again.batch_id, again.version) == ("unchanged", result.batch_id, result.version)
    result.warnings = warned
    return result


def _cameras(owners: list[str]) -> list[str]:
    return [CAMERA_HEADER] + [f"{DEVICE + i},dome,{o},121.40,31.10" for i, o in enumerate(owners, start=1)]


def _owners(engine):
    return {int(k): v for k, v in _all(engine, f"SELECT device_id::numeric - {DEVICE}, owner FROM cim.cameras")}


def test_invalid_utf8_bytes_reject_their_row_and_nothing_is_garbled(tmp_path, db, catalog):
    owners = ["丰巢", "速递易", "区公安分局"] * 20
    data = ("\n".join(_cameras(owners)) + "\n").encode()
    row7 = data.index(f"{DEVICE + 7},dome,".encode()) + len(f"{DEVICE + 7},dome,")
    data = data[:row7] + b"\xff\xfe" + data[row7:]  # two bytes no UTF-8 text holds, in row 7's owner
    path = tmp_path / "lockers.csv"
    path.write_bytes(data)
    result = _load(db, catalog, "cameras", path)
    assert (result.rows_read, result.inserted, result.rejected) == (60, 59, 1)
    assert _rejects(db, result.batch_id) == [
        (7, "owner", f"not valid UTF-8 text at byte offset {row7} (bytes ff)")]
    loaded = _owners(db)
    assert 7 not in loaded and all(loaded[i] == owners[i - 1] for i in loaded)  # exactly as written: 丰巢, not õĖ░ÕĘó
    assert _all(db, "SELECT options->>'encoding' FROM cim_meta.ingest_batch WHERE id = :b", b=result.batch_id) == [
        ("utf-8",)]


def test_nul_after_the_first_megabyte_rejects_its_row(tmp_path, db, catalog):
    owners = ["闵行区城运中心"] * 30_000
    owners[25_000 - 1] = "闵行区\x00城运中心"
    data = ("\n".join(_cameras(owners)) + "\n").encode()
    offset = data.index(b"\x00")
    assert offset > 1 << 20
    path = tmp_path / "late_nul.csv"
    path.write_bytes(data)
    result = _load(db, catalog, "cameras", path)
    assert (result.inserted, result.rejected) == (29_999, 1)
    assert _rejects(db, result.batch_id) == [
        (25_000, "owner", f"a NUL byte at byte offset {offset} (binary data in a text file)")]


def test_gbk_file_with_damaged_row_and_explicit_encoding(tmp_path, db, catalog):
    owners = ["莘庄镇", "七宝镇", "浦江镇", "吴泾镇"] * 10
    data = ("\n".join(_cameras(owners)) + "\n").encode("gbk")
    cut = data.index("七".encode("gbk"))
    data = data[:cut] + b"\x81" + data[cut + 6:]  # a lead byte without its trail byte ('七宝镇' lost), in row 2
    path = tmp_path / "towns_gbk.csv"
    path.write_bytes(data)
    for options in ({}, {"encoding": "gbk"}):
        result = _load(db, catalog, "cameras", path, **options)
        assert (result.inserted, result.rejected) == (39, 1)
        (row, field, reason), = _rejects(db, result.batch_id)
        assert (row, field) == (2, "owner") and reason.startswith(f"not valid {'GBK' if options else 'GB18030'} "
                                                                  f"text at byte offset {cut} (bytes 81")
        loaded = _owners(db)
        assert all(loaded[i] == owners[i - 1] for i in loaded)


def test_integers_beyond_int32_and_int64_are_rejected_exact_ones_load(tmp_path, db, catalog):
    path = tmp_path / "houses.csv"
    path.write_text("house_id,address_code,floors,built_year,lon,lat\n"
                    "H1,a1,12,1998,121.40,31.10\n"
                    "H2,a2,2147483648,1998,121.40,31.10\n"
                    "H3,a3,99999999999999999999999,1998,121.40,31.10\n"
                    "H4,a4,-9223372036854775809,1998,121.40,31.10\n"
                    "H5,a5,4.0,2.0e3,121.40,31.10\n"
                    "H6,a6,1e400,1998,121.40,31.10\n", encoding="utf-8")
    result = _load(db, catalog, "houses", path)
    assert (result.inserted, result.rejected) == (2, 4)
    reasons = {r: (f, why) for r, f, why in _rejects(db, result.batch_id)}
    assert reasons[2] == ("floors", "'2147483648' is out of range for an integer field (-2147483648 to 2147483647)")
    assert reasons[3][1].startswith("'99999999999999999999999' is out of range")
    assert reasons[4][1].startswith("'-9223372036854775809' is out of range")
    assert reasons[6] == ("floors", "'1e400' is out of range for an integer field (-2147483648 to 2147483647)")
    assert _all(db, "SELECT house_id, floors, built_year FROM cim.houses ORDER BY 1") == [
        ("H1", 12, 1998), ("H5", 4, 2000)]


def test_geojson_nul_wrong_members_z_and_big_ids(tmp_path, db, catalog):
    def feature(props, geometry):
        return {"type": "Feature", "properties": props, "geometry": geometry}

    point = {"type": "Point", "coordinates": [121.40, 31.10]}
    features = [
        feature({"device_id": DEVICE + 1, "camera_type": "dome", "owner": "区公安分局"}, point),  # a JSON number id
        feature({"device_id": str(DEVICE + 2), "camera_type": "dome", "owner": "区公安\u0000分局"}, point),
        feature({"device_id": str(DEVICE + 3), "camera_type": "dome"}, {"type": "Point", "coordinates": "121,31"}),
        feature({"device_id": str(DEVICE + 4), "camera_type": "dome"}, {"type": "Circle", "coordinates": [1, 2]}),
        "not a feature",
        feature({"device_id": str(DEVICE + 6), "camera_type": "dome"}, {"type": "Point", "coordinates": [121.4]}),
        feature({"device_id": str(DEVICE + 7), "camera_type": "dome", "owner": "测绘"},
                {"type": "Point", "coordinates": [121.41, 31.11, 12.5]}),  # a survey point with its height
        feature({"device_id": str(DEVICE + 8), "camera_type": "dome", "direction_deg": float("nan")}, point),
        feature({"device_id": str(DEVICE + 9), "camera_type": "dome", "owner": "\x1b[31m红色\x1b[0m"}, point),
    ]
    path = tmp_path / "cameras.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
                    encoding="utf-8")
    result = _load(db, catalog, "cameras", path, crs="wgs84")
    assert (result.rows_read, result.inserted, result.rejected) == (9, 2, 7)
    assert _rejects(db, result.batch_id) == [
        (2, "owner", "holds the control character U+0000 (NUL) at character 4"),
        (3, "geometry", "a position must be an array of 2 or 3 numbers"),
        (4, "geometry", "unknown geometry type 'Circle'"),
        (5, None, "not a GeoJSON Feature object"),
        (6, "geometry", "a position must be an array of 2 or 3 numbers"),
        (8, "direction_deg", "nan is not a JSON value (NaN and Infinity are not allowed)"),
        (9, "owner", "holds the control character U+001B (ESC, which starts ANSI terminal escape sequences) at "
                     "character 1"),
    ]
    assert _all(db, "SELECT device_id, owner, ST_X(geom), ST_NDims(geom) FROM cim.cameras ORDER BY 1") == [
        (str(DEVICE + 1), "区公安分局", 121.40, 2), (str(DEVICE + 7), "测绘", 121.41, 2)]
    assert "1 features have Z (height) or M ordinates; they were loaded as 2D" in " ".join(result.warnings)
    assert _all(db, "SELECT options->>'z_dropped' FROM cim_meta.ingest_batch WHERE id = :b", b=result.batch_id) == [
        ("1",)]


def test_text_keeps_a_leading_tab_and_rejects_control_characters(tmp_path, db, catalog):
    owners = ['"\t=cmd|\' /C calc\'!A0"', '"  \t+1"', '"\r@SUM(A1)"', "  plain  ", "bidi\u202etxt.exe",
              "bell\x07", "c1\x9b31m"]
    path = tmp_path / "owners.csv"
    path.write_text("\n".join(_cameras(owners)) + "\n", encoding="utf-8")
    result = _load(db, catalog, "cameras", path)
    assert (result.inserted, result.rejected) == (4, 3)
    assert [(r, f) for r, f, _ in _rejects(db, result.batch_id)] == [(5, "owner"), (6, "owner"), (7, "owner")]
    assert "bidirectional formatting character U+202E" in _rejects(db, result.batch_id)[0][2]
    assert _owners(db) == {1: "\t=cmd|' /C calc'!A0", 2: "\t+1", 3: "\r@SUM(A1)", 4: "plain"}


def test_key_longer_than_an_index_row_is_rejected_by_row(tmp_path, db, catalog):
    path = tmp_path / "nodes.csv"
    path.write_text("node_id,sensor_kind,lon,lat\nN1,road,121.40,31.10\n" + "闵" * 700 + ",road,121.41,31.11\n"
                    "N3,water,121.42,31.12\n", encoding="utf-8")
    result = _load(db, catalog, "iot_nodes", path)
    assert (result.inserted, result.rejected) == (2, 1)
    assert _rejects(db, result.batch_id) == [
        (2, "node_id", "the key field 'node_id' is 2100 bytes long; at most 2000 fit the layer's unique index")]


def _shapefile(tmp: Path, name: str, frame: gpd.GeoDataFrame, **kw) -> Path:
    path = tmp / f"{name}.shp"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Normalized/laundered field name", RuntimeWarning)  # what we test
        pyogrio.write_dataframe(frame, path, **kw)
    return path


def _houses(n: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "house_id": [f"H{i}" for i in range(1, n + 1)], "address_code": [f"a{i}" for i in range(1, n + 1)],
        "floor_area_m2": [80.5 + i for i in range(n)], "floors": list(range(1, n + 1)),
    }, geometry=shapely.points([121.40 + i * 1e-3 for i in range(n)], [31.10] * n), crs="EPSG:4326")


def test_shapefile_names_cut_to_ten_characters_match_catalog_fields(tmp_path, db, catalog):
    path = _shapefile(tmp_path, "houses", _houses(3))
    assert {"address_co", "floor_area"} <= set(pyogrio.read_info(path)["fields"])
    result = _load(db, catalog, "houses", path)
    assert (result.inserted, result.rejected) == (3, 0)
    assert _all(db, "SELECT house_id, address_code, floor_area_m2 FROM cim.houses ORDER BY 1")[0] == ("H1", "a1", 80.5)
    cams = gpd.GeoDataFrame({"device_id": [str(DEVICE + 1)], "camera_type": ["ptz"], "installed_at": ["2023-05-06"]},
                            geometry=shapely.points([121.40], [31.10]), crs="EPSG:4326")
    result = _load(db, catalog, "cameras", _shapefile(tmp_path, "cams", cams))
    assert _all(db, "SELECT installed_at::text FROM cim.cameras") == [("2023-05-06",)]  # from 'installed_'


def _set_record_count(dbf: Path, count: int) -> None:
    data = bytearray(dbf.read_bytes())
    header_len, record_len = struct.unpack("<HH", data[8:12])
    data[4:8] = struct.pack("<I", count)
    dbf.write_bytes(bytes(data[: header_len + count * record_len]) + b"\x1a")


def test_shapes_and_records_that_do_not_pair_are_rejected(tmp_path, db, catalog):
    path = _shapefile(tmp_path, "short", _houses(5))
    _set_record_count(path.with_suffix(".dbf"), 3)  # a .dbf holding 3 records for 5 shapes
    result = _load(db, catalog, "houses", path)
    assert (result.rows_read, result.inserted, result.rejected) == (5, 3, 2)
    assert _rejects(db, result.batch_id) == [
        (4, None, "shape 4 has no attribute record: short.dbf holds 3 records for 5 shapes"),
        (5, None, "shape 5 has no attribute record: short.dbf holds 3 records for 5 shapes")]
    longer = _shapefile(tmp_path, "long", _houses(4))
    _shapefile(tmp_path, "two", _houses(2))
    for suffix in (".shp", ".shx"):
        longer.with_suffix(suffix).write_bytes((tmp_path / f"two{suffix}").read_bytes())  # 2 shapes, 4 records
    result = _load(db, catalog, "houses", longer)
    assert (result.rows_read, result.inserted, result.rejected) == (4, 2, 2)
    assert [(r, f) for r, f, _ in _rejects(db, result.batch_id)] == [(3, "geometry"), (4, "geometry")]


def test_gbk_dbf_without_or_with_a_wrong_cpg_is_read_as_gbk(tmp_path, db, catalog):
    lockers = gpd.GeoDataFrame({"locker_id": ["L1", "L2"], "operator": ["丰巢", "速递易"]},
                               geometry=shapely.points([121.40, 121.41], [31.10, 31.11]), crs="EPSG:4326")
    path = _shapefile(tmp_path, "lockers", lockers, encoding="GBK")
    path.with_suffix(".cpg").unlink()  # GDAL alone would read ISO-8859-1: '·á³²'
    result = _load(db, catalog, "smart_lockers", path)
    assert _all(db, "SELECT operator FROM cim.smart_lockers ORDER BY 1") == [("丰巢",), ("速递易",)]
    assert _all(db, "SELECT options->>'encoding' FROM cim_meta.ingest_batch WHERE id = :b", b=result.batch_id) == [
        ("gb18030",)]
    path.with_suffix(".cpg").write_text("UTF-8")
    result = _load(db, catalog, "smart_lockers", path)
    assert _all(db, "SELECT operator FROM cim.smart_lockers ORDER BY 1") == [("丰巢",), ("速递易",)]
    assert any("lockers.cpg says 'UTF-8', but the text of lockers.dbf is GB18030" in w for w in result.warnings)


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_3d_points_load_as_2d(tmp_path, db, catalog, suffix):
    lockers = gpd.GeoDataFrame({"locker_id": ["L1", "L2"]},
                               geometry=shapely.points([121.40, 121.41], [31.10, 31.11], [4.5, 5.0]), crs="EPSG:4326")
    path = tmp_path / f"lockers_z{suffix}"
    pyogrio.write_dataframe(lockers, path)
    result = _load(db, catalog, "smart_lockers", path)
    assert (result.inserted, result.rejected) == (2, 0)
    assert _all(db, "SELECT DISTINCT ST_NDims(geom) FROM cim.smart_lockers") == [(2,)]
    assert _all(db, "SELECT options->>'z_dropped' FROM cim_meta.ingest_batch WHERE id = :b", b=result.batch_id) == [
        ("2",)]


def test_rejects_listing_shows_hostile_values_as_text(tmp_path, db, db_url, catalog):
    path = tmp_path / "markup.csv"
    path.write_text(f"{CAMERA_HEADER}\n{DEVICE + 1},[/],x,121.40,31.10\n{DEVICE + 2},dome,ok,121.40,31.10\n"
                    f'{DEVICE + 3},"ptz\x9b31m",x,121.40,31.10\n', encoding="utf-8")
    result = _load(db, catalog, "cameras", path)
    shown = CliRunner().invoke(app, ["rejects", str(result.batch_id)], env={"CIM_DATABASE_URL": db_url,
                                                                           "COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "'[/]' is not one of" in shown.output and "\x9b" not in shown.output and "\\x9b" in shown.output
