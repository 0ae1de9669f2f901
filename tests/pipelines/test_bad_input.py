"""Bad input: every fault gives a one-line message naming the file, a non-zero CLI exit, and no database change.

Each case runs twice: through :func:`pipelines.ingest.ingest_file` (message checked) and through
``cim ingest`` (exit code 1 and a single ``error:`` line). A snapshot of the batch, reject and layer
state tables and of the layer's rows is compared before and after. Own throwaway database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.ingest import ingest_file

GOOD_ROW = "12345678901234567890,dome,121.40,31.10"
HEADER = "device_id,camera_type,lon,lat"


def _csv(tmp_path: Path, name: str, *rows: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join(rows) + "\n").encode(encoding))
    return path


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _cut(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def _cases(tmp: Path, data: Path) -> list[tuple[str, str, Path, dict, str]]:
    """(id, layer, file, options, expected message regex)."""
    shp = tmp / "cut.shp"
    _cut(data / "boundaries/shanghai_townships_noattrs.shp", shp, 0.6)
    (tmp / "cut.shx").write_bytes((data / "boundaries/shanghai_townships_noattrs.shx").read_bytes())
    png = tmp / "photo.geojson"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    prose = _csv(tmp, "notes.txt", "闵行区数字化转型规划", "这不是一个数据文件。")
    far = [HEADER] + [f"1234567890123456789{i},dome,116.40,39.90" for i in range(5)]
    swapped = [HEADER] + [f"1234567890123456789{i},dome,31.1{i},121.4{i}" for i in range(5)]
    return [
        ("truncated-geojson", "district", _cut(data / "boundaries/minhang_district_gcj02.geojson",
                                               tmp / "cut.geojson"), {}, r"cut\.geojson: the file is truncated"),
        ("truncated-shapefile", "towns", shp, {"crs": "wgs84"}, r"cut\.shp: the file is truncated"),
        ("png", "district", png, {}, r"photo\.geojson: is a PNG image, not a geodata file"),
        ("plain-text", "cameras", prose, {}, r"notes\.txt: cannot tell the longitude column"),
        ("unsupported-suffix", "cameras", _csv(tmp, "readme.md", "hello"), {}, r"unsupported file type \.md"),
        ("unknown-encoding", "cameras", _csv(tmp, "c1.csv", HEADER, GOOD_ROW), {"encoding": "klingon"},
         r"c1\.csv: unknown encoding 'klingon'"),
        ("wrong-encoding", "cameras", _csv(tmp, "gbk.csv", "device_id,camera_type,经度,纬度",
                                          "12345678901234567890,dome,121.4,31.1", encoding="gbk"),
         {"encoding": "utf-8"}, r"gbk\.csv: the file is not valid utf-8 text"),
        ("text-in-coordinate", "cameras", _csv(tmp, "cameras.csv", HEADER, GOOD_ROW,
                                               "12345678901234567891,dome,abc,31.1"),
         {"on_error": "abort"}, r"cameras\.csv row 2, field 'lon': 'abc' is not a number"),
        ("all-coordinates-text", "cameras", _csv(tmp, "c2.csv", HEADER, "12345678901234567891,dome,abc,def"),
         {}, r"c2\.csv: all 1 rows were rejected, e.g. c2\.csv row 1, field 'lon': 'abc' is not a number"),
        ("swapped-axes", "cameras", _csv(tmp, "swapped.csv", *swapped), {},
         r"swapped\.csv: columns 'lon' \(longitude\) and 'lat' \(latitude\) look swapped"),
        ("far-outside-abort", "cameras", _csv(tmp, "beijing.csv", *far), {"on_error": "abort"},
         r"beijing\.csv row 1, field 'lon': \(116\.4, 39\.9\) is far outside Shanghai"),
        ("far-outside-all", "cameras", _csv(tmp, "beijing2.csv", *far), {}, r"all 5 rows were rejected"),
        ("bad-value-abort", "cameras", _csv(tmp, "c3.csv", HEADER, "123,dome,121.4,31.1"),
         {"on_error": "abort"}, r"c3\.csv row 1, field 'device_id': '123' does not match the pattern"),
        ("unknown-layer", "nope", _csv(tmp, "c4.csv", HEADER, GOOD_ROW), {}, r"unknown layer 'nope'"),
        ("unknown-crs", "cameras", _csv(tmp, "c5.csv", HEADER, GOOD_ROW), {"crs": "mars2000"},
         r"unknown CRS 'mars2000'"),
        ("empty-file", "cameras", _empty_file(tmp / "empty.csv"), {}, r"empty\.csv: the file is empty"),
        ("header-only", "cameras", _csv(tmp, "header.csv", HEADER), {}, r"header\.csv: the file has no rows"),
        ("missing-required-column", "cameras", _csv(tmp, "c6.csv", "device_id,lon,lat", "1,121.4,31.1"), {},
         r"c6\.csv: required field\(s\) camera_type of layer cameras have no column"),
        ("no-prj", "towns", data / "boundaries/shanghai_townships_noattrs.shp", {}, r"no \.prj.*--crs"),
        ("derived-layer", "gap_5g", _csv(tmp, "c7.csv", HEADER, GOOD_ROW), {}, r"layer 'gap_5g' is derived"),
    ]


@pytest.fixture(scope="module")
def cases(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("bad")
    return {c[0]: c[1:] for c in _cases(tmp, shared_data)}


CASE_IDS = [
    "truncated-geojson", "truncated-shapefile", "png", "plain-text", "unsupported-suffix", "unknown-encoding",
    "wrong-encoding", "text-in-coordinate", "all-coordinates-text", "swapped-axes", "far-outside-abort",
    "far-outside-all", "bad-value-abort", "unknown-layer", "unknown-crs", "empty-file", "header-only",
    "missing-required-column", "no-prj", "derived-layer",
]


@pytest.mark.parametrize("case", CASE_IDS)
def test_fault_is_refused_with_a_message_and_no_change(case, cases, db, db_url, refused):
    layer, path, options, pattern = cases[case]
    refused(db, db_url, layer, path, options, pattern)


def test_cases_cover_the_list(cases):
    assert sorted(cases) == sorted(CASE_IDS)


def test_rejected_rows_load_the_rest(tmp_path, db, catalog):
    path = _csv(tmp_path, "mixed.csv", HEADER, GOOD_ROW, "12345678901234567891,dome,abc,31.1",
                "12345678901234567892,tripod,121.41,31.11", "12345678901234567893,ptz,116.4,39.9",
                "12345678901234567894,PTZ,121.42,31.12")
    result = ingest_file(db, catalog, "cameras", path)
    assert (result.rows_read, result.inserted, result.rejected) == (5, 2, 3)
    with db.connect() as conn:
        rejects = conn.execute(sa.text("SELECT row_number, field, reason FROM cim_meta.ingest_reject "
                                       "WHERE batch_id = :b ORDER BY row_number"), {"b": result.batch_id}).all()
        kinds = conn.execute(sa.text("SELECT camera_type FROM cim.cameras ORDER BY device_id")).scalars().all()
    assert [(r[0], r[1]) for r in rejects] == [(2, "lon"), (3, "camera_type"), (4, "lon")]
    assert "'tripod' is not one of bullet, dome, ptz" in rejects[1][2]
    assert kinds[-2:] == ["dome", "ptz"]  # 'PTZ' is canonicalised to the declared spelling
