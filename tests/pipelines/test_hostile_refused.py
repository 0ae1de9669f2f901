"""Hostile files refused whole (issue 8): one printable ``error:`` line naming file/row/field, database untouched.

Each case runs through :func:`pipelines.ingest.ingest_file` and ``cim ingest`` (see ``conftest.assert_refused``).
Files whose faults are confined to some rows are not here: they load with rejects (``test_hostile_rows``).
Own throwaway database.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

HEADER = "device_id,camera_type,owner,lon,lat"


def _camera(i: int, owner: str = "区公安分局") -> str:
    return f"{31011200001320000000 + i},dome,{owner},121.40,31.10"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


def _points(tmp: Path, file_name: str, **columns) -> Path:
    n = len(next(iter(columns.values())))
    frame = gpd.GeoDataFrame(columns, geometry=shapely.points([121.40 + i * 1e-3 for i in range(n)], [31.10] * n),
                             crs="EPSG:4326")
    path = tmp / file_name
    pyogrio.write_dataframe(frame, path, **({"encoding": "ISO-8859-1"} if file_name.endswith(".shp") else {}))
    return path


def _cases(tmp: Path) -> dict[str, tuple[str, Path, dict, str]]:
    """id -> (layer, file, options, expected message regex)."""
    damaged = [HEADER, _camera(1, "丰巢"), _camera(2, "速递易"), _camera(3, "菜鸟")]
    damaged_bytes = _lines(*damaged).encode().replace("速".encode(), b"\xff\xfe")
    big_utf8 = [HEADER] + [_camera(i, "闵行区公安分局视频专网") for i in range(15_000)]
    big_gbk = [_camera(i, "闵行区公安分局视频专网") for i in range(15_000, 20_000)]
    late_nul = [HEADER] + [_camera(i) for i in range(20_000)]
    late_nul[20_000] = _camera(19_999, "区公安\x00分局")
    gpkg = _points(tmp, "empty_contents.gpkg", space_id=["U1"], name=["车库"])
    with sqlite3.connect(gpkg) as con:
        con.execute("DELETE FROM gpkg_contents")
    doc = {"type": "FeatureCollection", "features": []}
    deep = "[" * 100_000 + "]" * 100_000
    houses = "house_id,address_code,floors,lon,lat\nH1,a1,99999999999,121.4,31.1\n"
    return {
        "damaged-utf8-guess": ("cameras", _write(tmp / "damaged.csv", damaged_bytes), {},
                               r"damaged\.csv: .*looks like UTF-8, but 1 of its 3 lines with non-ASCII text do not "
                               r"decode \(first at line 2\); name the encoding with --encoding"),
        "latin1-guess": ("cameras", _write(tmp / "latin1.csv", _lines(HEADER, _camera(1, "Café Müller"))
                                           .encode("latin-1")), {},
                         r"latin1\.csv: cannot tell the text encoding .*neither UTF-8 nor GB18030.*--encoding"),
        "utf16-without-bom": ("cameras", _write(tmp / "utf16.csv", _lines(HEADER, _camera(1)).encode("utf-16-le")),
                              {}, r"utf16\.csv: contains binary data \(NUL bytes\).*--encoding utf-16-le"),
        "bom-contradicts-encoding": ("cameras", _write(tmp / "bom.csv", "\ufeff".encode() + _lines(
            HEADER, _camera(1)).encode()), {"encoding": "gbk"}, r"bom\.csv: the file starts with a UTF-8 byte-order "
                                                                r"mark, not GBK text"),
        "guess-does-not-hold": ("cameras", _write(tmp / "mixed.csv", _lines(*big_utf8).encode()
                                                  + _lines(*big_gbk).encode("gbk")), {},
                                r"mixed\.csv: 5000 of 20000 rows are not valid UTF-8 text \(first: mixed\.csv row "
                                r"15001, field 'owner': not valid UTF-8 text at byte offset \d+ .*--encoding"),
        "late-nul-abort": ("cameras", _write(tmp / "late.csv", _lines(*late_nul).encode()), {"on_error": "abort"},
                           r"late\.csv row 20000, field 'owner': a NUL byte at byte offset \d+ \(binary data"),
        "int32-overflow-abort": ("houses", _write(tmp / "houses.csv", houses.encode()), {"on_error": "abort"},
                                 r"houses\.csv row 1, field 'floors': '99999999999' is out of range for an integer "
                                 r"field \(-2147483648 to 2147483647\)"),
        "key-too-long-abort": ("iot_nodes", _write(tmp / "nodes.csv", _lines(
            "node_id,sensor_kind,lon,lat", f"{'N' * 2100},road,121.4,31.1").encode()), {"on_error": "abort"},
            r"nodes\.csv row 1, field 'node_id': the key field 'node_id' is 2100 bytes long; at most 2000 fit"),
        "gpkg-empty-contents": ("underground_spaces", gpkg, {},
                                r"empty_contents\.gpkg: the GeoPackage has no feature layer: gpkg_contents lists "
                                r"none \(tables without a registered geometry: empty_contents\)"),
        "dbf-latin1": ("smart_lockers", _points(tmp, "lockers.shp", locker_id=["L1", "L2"],
                                                operator=["Café", "Müller"]), {},
                       r"lockers\.dbf: cannot tell the text encoding of the lockers\.dbf text.*--encoding "
                       r"\(its \.cpg says '.*'\)"),
        "geojson-deeply-nested": ("key_areas", _write(tmp / "deep.geojson", deep.encode()), {},
                                  r"deep\.geojson: invalid JSON: arrays or objects are nested too deeply"),
        "geojson-number-too-long": ("key_areas", _write(tmp / "digits.geojson", json.dumps(doc).replace(
            "[]", "[" + "7" * 5000 + "]").encode()), {}, r"digits\.geojson: invalid JSON: .*digits"),
        "geojson-not-utf8": ("key_areas", _write(tmp / "gbk.geojson", json.dumps(
            {"type": "FeatureCollection", "features": [], "name": "闵行"}, ensure_ascii=False).encode("gbk")),
            {}, r"gbk\.geojson: not UTF-8 text at byte offset \d+ \(line 1\); GeoJSON must be UTF-8"),
        "encoding-for-geojson": ("key_areas", _write(tmp / "doc.geojson", json.dumps(doc).encode()),
                                 {"encoding": "gbk"}, r"doc\.geojson: --encoding applies to CSV files and shapefiles"),
        "repeated-column": ("cameras", _write(tmp / "twice.csv", _lines(
            "device_id,camera_type,owner,owner,lon,lat", "31011200001320000001,dome,a,b,121.4,31.1").encode()), {},
            r"twice\.csv: the column 'owner' appears more than once in the header"),
        "header-not-decodable": ("cameras", _write(tmp / "header.csv", b"device_id,camera_type,own\xff\xfeer,lon,lat\n"
                                                   + _lines(*[_camera(i, "丰巢") for i in range(50)]).encode()),
                                 {}, r"header\.csv: the header is not readable: not valid UTF-8 text at byte offset "
                                     r"25 \(bytes ff\)"),
        "name-with-markup-and-newline": ("cameras", _write(tmp / "evil\n[red]\x1b[31m.csv", b""), {},
                                         r"evil\\n\[red\]\\x1b\[31m\.csv: the file is empty"),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return _cases(tmp_path_factory.mktemp("hostile"))


CASE_IDS = [
    "damaged-utf8-guess", "latin1-guess", "utf16-without-bom", "bom-contradicts-encoding", "guess-does-not-hold",
    "late-nul-abort", "int32-overflow-abort", "key-too-long-abort", "gpkg-empty-contents", "dbf-latin1",
    "geojson-deeply-nested", "geojson-number-too-long", "geojson-not-utf8", "encoding-for-geojson",
    "repeated-column", "header-not-decodable", "name-with-markup-and-newline",
]


@pytest.mark.parametrize("case", CASE_IDS)
def test_hostile_file_is_refused_in_one_line(case, cases, db, db_url, refused):
    layer, path, options, pattern = cases[case]
    refused(db, db_url, layer, path, options, pattern)


def test_cases_cover_the_list(cases):
    assert sorted(cases) == sorted(CASE_IDS)
