"""Validation and reader units (no database): type coercion, catalog rules, coordinates, geometries, encodings."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import shapely

from cim_service.core.catalog import FieldSpec
from cim_service.core.crs import gcj02_to_wgs84
from pipelines.readers import ReadError, detect_encoding, detect_format, sha256_file
from pipelines.validate import (
    Faults,
    PointColumns,
    ValidationError,
    check_geometries,
    coerce_field,
    coerce_fields,
    far_outside,
    looks_swapped,
)


def _field(**kw) -> FieldSpec:
    return FieldSpec(title_zh="字段", title_en="Field", **{"name": "f", **kw})


def _coerce(values, **kw):
    faults = Faults()
    series = pd.Series(values, index=range(1, len(values) + 1), dtype=object)
    out = coerce_field(_field(**kw), series, faults)
    return out, {r.row_number: r.reason for r in faults.rejects.values()}


def test_integer_and_float_rules():
    out, bad = _coerce(["3", " 4 ", "4.5", "x", "", "1e3"], type="integer", minimum=0, maximum=500)
    assert list(out[:2]) == [3, 4] and pd.isna(out[5])
    assert bad == {3: "'4.5' is not an integer", 4: "'x' is not an integer", 6: "'1e3' is above the 500 allowed"}
    out, bad = _coerce(["1.5", "-2", "NaN", "inf"], type="float", minimum=0)
    assert out[1] == 1.5 and set(bad) == {2, 3, 4} and "below the 0 allowed" in bad[2]


def test_boolean_date_timestamp_json():
    out, bad = _coerce(["是", "否", "TRUE", "0", "maybe"], type="boolean")
    assert list(out[:4]) == [True, False, True, False] and bad == {5: "'maybe' is not a boolean (true/false)"}
    out, bad = _coerce(["2023-03-05", "2023/3/5", "2023年3月5日", "yesterday"], type="date")
    assert list(out[:3]) == [dt.date(2023, 3, 5)] * 3 and bad == {4: "'yesterday' is not a date"}
    out, bad = _coerce(["2024-01-02 08:00:00", "2024-01-02T00:00:00Z", "2024-01-02 09:00+09:00", "soon"],
                       type="timestamp")
    assert list(out[:3]) == [pd.Timestamp("2024-01-02 00:00:00", tz="UTC")] * 3  # naive = Shanghai (UTC+8)
    assert bad == {4: "'soon' is not a date-time"}
    out, bad = _coerce(['{"a": 1}', "[1, 2]", "{bad"], type="json")
    assert out[1] == {"a": 1} and out[2] == [1, 2] and bad == {3: "'{bad' is not valid JSON"}


def test_text_rules_required_enum_pattern():
    out, bad = _coerce(["5g", "4G", "6G", None], enum=["4G", "5G"], required=True)
    assert list(out[:2]) == ["5G", "4G"]
    assert bad == {3: "'6G' is not one of 4G, 5G", 4: "field 'f' is required but empty"}
    out, bad = _coerce([310112, 310112.0, "31011"], pattern=r"^\d{6}$")
    assert list(out[:2]) == ["310112", "310112"] and set(bad) == {3}
    out, bad = _coerce([None, "", "macro"], enum=["macro", "small", "unknown"])
    assert list(out) == ["unknown", "unknown", "macro"] and not bad


def test_first_fault_per_row_and_raw_values(catalog):
    spec = catalog.get("cameras")
    raw = pd.DataFrame({"device_id": ["1" * 20, "12", "3" * 20], "camera_type": ["dome", "tripod", "ptz"],
                        "direction_deg": ["90", "400", "x"]}, index=[1, 2, 3])
    faults = Faults()
    out = coerce_fields(spec, raw, {c: c for c in raw.columns}, faults)
    rejects = faults.finish(raw)
    assert [(r.row_number, r.field) for r in rejects] == [(2, "device_id"), (3, "direction_deg")]
    assert rejects[0].raw == {"device_id": "12", "camera_type": "tripod", "direction_deg": "400"}
    assert out.loc[1, "direction_deg"] == 90.0 and pd.isna(out.loc[1, "owner"])


def test_points_convert_crs_and_flag_bad_rows():
    raw = pd.DataFrame({"x": ["121.4", "abc", "", "116.4", "121.41"], "y": ["31.1", "31.1", "31.1", "39.9", "31.11"]},
                       index=range(1, 6))
    faults = Faults()
    pts = PointColumns("x", "y", "GCJ02").points(raw, faults)
    want = gcj02_to_wgs84(121.4, 31.1)
    assert (shapely.get_x(pts[0]), shapely.get_y(pts[0])) == pytest.approx((float(want[0]), float(want[1])))
    assert [pts[i] is None for i in range(5)] == [False, True, True, True, False]
    reasons = {r.row_number: r.reason for r in faults.rejects.values()}
    assert reasons == {2: "'abc' is not a number", 3: "empty coordinate in column 'x'",
                       4: "(116.4, 39.9) is far outside Shanghai"}


def test_projected_crs_is_not_checked_for_swapped_axes():
    raw = pd.DataFrame({"x": ["40595000"], "y": ["3442000"]}, index=[1])  # CGCS2000 3-degree GK zone 40
    faults = Faults()
    pts = PointColumns("x", "y", "EPSG:4528").points(raw, faults)
    assert not faults.rejects and 120.5 < shapely.get_x(pts[0]) < 122.5 and 30.5 < shapely.get_y(pts[0]) < 32


def test_swapped_and_far_masks():
    lon, lat = np.array([121.4, 31.1, 116.4]), np.array([31.1, 121.4, 39.9])
    assert list(looks_swapped(lon, lat)) == [False, True, False]
    assert list(far_outside(lon, lat)) == [False, True, True]


def test_geometries_are_repaired_typed_and_swapped(catalog):
    spec = catalog.get("key_areas")
    bowtie = shapely.Polygon([(121.3, 31.0), (121.5, 31.2), (121.5, 31.0), (121.3, 31.2)])
    line = shapely.LineString([(121.3, 31.0), (121.4, 31.1)])
    geoms = pd.Series([bowtie, line, None, shapely.box(121.3, 31.0, 121.4, 31.1)], index=[1, 2, 3, 4])
    faults = Faults()
    out, report = check_geometries(spec, geoms, "EPSG:4326", faults)
    assert report.repaired == 1 and out[1].geom_type == "MultiPolygon" and out[1].is_valid
    assert {r.row_number: r.field for r in faults.rejects.values()} == {2: "geometry", 3: "geometry"}
    assert "layer key_areas needs MultiPolygon" in faults.rejects[2].reason
    swapped = pd.Series([shapely.box(31.0, 121.3, 31.1, 121.4)] * 3, index=[1, 2, 3])
    with pytest.raises(ValidationError, match="pass --swap-axes"):
        check_geometries(spec, swapped, "EPSG:4326", Faults())
    fixed, report = check_geometries(spec, swapped, "EPSG:4326", Faults(), swap_axes=True)
    assert report.swapped == 3 and fixed[1].bounds == pytest.approx((121.3, 31.0, 121.4, 31.1))


def test_encodings_and_formats(tmp_path):
    gbk = tmp_path / "a.csv"
    gbk.write_bytes("名称,经度,纬度\n莘庄,121.38,31.11\n".encode("gbk"))
    assert detect_encoding(gbk) == "gb18030"
    bom = tmp_path / "b.csv"
    bom.write_bytes("\ufeffname,lon,lat\n莘庄,121.38,31.11\n".encode("utf-8"))
    assert detect_encoding(bom) == "utf-8-sig" and detect_encoding(bom, "UTF8") == "utf-8-sig"
    with pytest.raises(ReadError, match="not valid ascii"):
        detect_encoding(gbk, "ascii")
    binary = tmp_path / "c.csv"
    binary.write_bytes(b"lon,lat\x00\x00\x01")
    with pytest.raises(ReadError, match="binary data"):
        detect_encoding(binary)
    assert detect_format(tmp_path / "a.csv") == "csv"
    with pytest.raises(ReadError, match="no such file"):
        detect_format(tmp_path / "missing.geojson")
    assert sha256_file(gbk) != sha256_file(bom) and len(sha256_file(gbk)) == 64

