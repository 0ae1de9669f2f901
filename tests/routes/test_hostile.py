"""Hostile requests: every bad parameter is a 4xx naming it, never a 5xx, never SQL text in the answer.

The cases are families, not single instances: every integer field of the catalog beyond its type's range, a
NUL in every text parameter of items, tiles, multi-layer tiles, indicators and map search, every geometry
constructor of CQL2 with too few points or points outside its CRS, arithmetic that cannot be computed.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import sqlalchemy as sa

from cim_service.core.fieldtypes import FieldType
from cim_service.store.layer_state import bump_version

SQL_TEXT = re.compile(r"\b(SELECT|FROM\s+\"?cim|WHERE|ST_\w+\(|\$\d+|syntax error|asyncpg|Traceback)\b", re.I)
E4549 = "http://www.opengis.net/def/crs/EPSG/0/4549"
E3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
E4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
TILE = "WebMercatorQuad/12/3429/1675"


def assert_rejected(r, parameter: str | None) -> None:
    """A 4xx with the OGC error body naming ``parameter``, and no SQL or traceback text."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"code", "description"}, body
    if parameter is not None:
        assert repr(parameter) in body["description"] or parameter in body["description"], body
    assert not SQL_TEXT.search(body["description"]), body


# -- CQL2 ----------------------------------------------------------------------------------------

ARITHMETIC = [
    "floors / 0 > 1",
    "floors / (floors - floors) > 1",  # only the database can see this one
    "floors + 'abc' > 1",
    "floors * 99999999999 * 99999999999 > 1",
    "floors * 2147483647 * 2147483647 * 2147483647 > 1",
    "floors + 99999999999999999999999 > 1",
    "floors > 99999999999999999999999",
    "floor_area_m2 > 1e400",
    "floors = -9223372036854775808 - 1",
    "floors + true > 1",
    "floors = use",  # property-property of different types
    "lower(use) = 3",
    "floors IN ('a', 'b')",
    "lower(use) IN (1, 2)",
    "(floors + 1) BETWEEN 'a' AND 'b'",
    "0 IN (use)",  # a literal on the left is not coerced to the list's properties
    "'x' BETWEEN floors AND built_year",
]


@pytest.mark.parametrize("text", ARITHMETIC)
def test_cql2_arithmetic_and_types_are_400(api, text):
    assert_rejected(api.get("/collections/houses/items", params={"filter": text}), "filter")
    assert_rejected(api.get(f"/collections/houses/tiles/{TILE}", params={"filter": text}), "filter")


GEOMETRIES = [
    "POLYGON((121 31, 122 31, 121 31))",  # fewer than 4 points
    "POLYGON((121 31, 122 31, 122 32))",  # not closed
    "POLYGON((121 31, 122 32, 122 31, 121 32, 121 31))",  # self-intersecting
    "LINESTRING(121 31)",
    "MULTIPOLYGON(((121 31, 122 31, 121 31)))",
    "MULTILINESTRING((121 31))",
    "POINT(500 500)",
    "MULTIPOINT((121 31), (500 0))",
    "BBOX(122, 31, 121, 32)",
    "BBOX(121, 31, 1e400, 32)",
    "POINT(121 31 5 6)",
]


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_cql2_bad_geometry_literals_are_400(api, geom):
    text = f"S_INTERSECTS(geometry, {geom})"
    assert_rejected(api.get("/collections/houses/items", params={"filter": text}), "filter")


@pytest.mark.parametrize("crs,point", [
    (E4549, "POINT(-1e8 1e8)"),  # outside the Gauss-Krüger projection's domain
    (E4549, "POINT(1e9 1e9)"),
    (E3857, "POINT(1e30 1e30)"),
    (E4326, "POINT(500 100)"),
    ("urn:cim:crs:gcj02", "POINT(1e300 1e300)"),
    ("urn:cim:crs:bd09", "POINT(-200 0)"),
])
def test_a_point_outside_the_filter_crs_domain_is_400(api, crs, point):
    for pred in (f"S_INTERSECTS(geometry, {point})", f"S_DWITHIN(geometry, {point}, 10, meters)"):
        r = api.get("/collections/houses/items", params={"filter": pred, "filter-crs": crs})
        assert_rejected(r, "filter")
        r = api.get(f"/collections/houses/tiles/{TILE}", params={"filter": pred, "filter-crs": crs})
        assert_rejected(r, "filter")


def test_bbox_corners_outside_the_projection_domain_are_400(api):
    r = api.get("/collections/houses/items", params={"bbox": "-1e8,1e8,-1e7,1e9", "bbox-crs": E4549})
    assert_rejected(r, "bbox")


CQL2_JSON = [
    {"op": "=", "args": [[1], [2]]},
    {"op": "=", "args": [{"property": "floors"}, [1, 2]]},
    {"op": "in", "args": [{"property": "floors"}, [[1], [2]]]},
    {"op": "+", "args": [[1], 2]},
    {"op": "=", "args": [{"op": "+", "args": [{"property": "floors"}, [1]]}, 3]},
    {"op": "s_intersects", "args": [{"property": "geometry"}, [121, 31]]},
    {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": [[[1, 2]]]}]},
    {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [1]}]},
    {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [1, 2, 3]}]},
    {"op": "like", "args": [{"property": "use"}, ["a"]]},
    {"op": "=", "args": [{"property": "use"}, "a\u0000b"]},
    {"op": "=", "args": [{"property": "use"}]},
    {"op": "and", "args": "not a list"},
    {"op": "in", "args": [{"property": "floors"}, True]},
    {"op": "between", "args": [{"property": "floors"}, {"op": "and", "args": []}, 3]},
    {"op": "t_after", "args": [{"property": "floors"}, {"timestamp": "2020-01-01T00:00:00Z"}]},
    [1, 2, 3],
    "just a string",
]


@pytest.mark.parametrize("doc", CQL2_JSON, ids=[json.dumps(d)[:40] for d in CQL2_JSON])
def test_cql2_json_arrays_and_junk_as_arguments_are_400(api, doc):
    params = {"filter": json.dumps(doc), "filter-lang": "cql2-json"}
    assert_rejected(api.get("/collections/houses/items", params=params), "filter")


@pytest.mark.parametrize("text", [
    "T_AFTER(installed_at, TIMESTAMP('0001-01-01T00:00:00+01:00'))",
    "T_BEFORE(installed_at, TIMESTAMP('9999-12-31T23:59:59-10:00'))",
    "T_DURING(installed_at, INTERVAL('0001-01-01T00:00:00+05:00', '..'))",
])
def test_timestamps_beyond_the_supported_range_are_400(api, text):
    assert_rejected(api.get("/collections/cameras/items", params={"filter": text}), "filter")


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "2020-01-01/9999-12-31T23:59:59-12:00",
                                   "10000-01-01", "2020-13-01"])
def test_datetime_out_of_range_is_400(api, value):
    assert_rejected(api.get("/collections/cameras/items", params={"datetime": value}), "datetime")


def test_filter_depth_and_length_are_bounded(api):
    deep = "(" * 200 + "floors = 1" + ")" * 200
    assert_rejected(api.get("/collections/houses/items", params={"filter": deep}), "filter")
    long = "floors = 1" + " OR floors = 1" * 1500  # > 20,000 characters, < the query-string bound
    assert_rejected(api.get("/collections/houses/items", params={"filter": long}), "filter")


# -- integer fields and NUL in every text parameter ------------------------------------------------

def integer_fields(catalog):
    """(layer, field, first value beyond the type's range) for every public integer field of the catalog."""
    out = []
    for spec in catalog:
        if spec.access.value != "public":
            continue
        for f in spec.public_fields(personal_data=False):
            if f.type is FieldType.integer:
                out.append((spec.id, f.name, 2**31))
            elif f.type is FieldType.bigint:
                out.append((spec.id, f.name, 2**63))
    return out


def test_every_integer_field_beyond_its_range_is_400(api, catalog):
    cases = integer_fields(catalog)
    assert len(cases) >= 5
    for layer, name, beyond in cases:
        for value in (beyond, -beyond - 1, 99999999999999999999999):
            r = api.get(f"/collections/{layer}/items", params={name: str(value)})
            assert_rejected(r, name)
            r = api.get(f"/collections/{layer}/items", params={"filter": f"{name} = {value}"})
            assert_rejected(r, "filter")
        # the largest value of the type is fine
        ok = api.get(f"/collections/{layer}/items", params={name: str(beyond - 1)})
        assert ok.status_code == 200, (layer, name, ok.text[:200])


def test_floors_beyond_int32_names_the_parameter(api):
    r = api.get("/collections/houses/items", params={"floors": "99999999999"})
    assert_rejected(r, "floors")
    assert "out of range" in r.json()["description"]


NUL = "a\x00b"
NUL_CASES = [
    ("/collections/houses/items", {"use": NUL}, "use"),
    ("/collections/houses/items", {"filter": f"use = '{NUL}'"}, "filter"),
    ("/collections/houses/items", {"properties": NUL}, "properties"),
    ("/collections/houses/items", {"sortby": NUL}, "sortby"),
    ("/collections/houses/items", {"crs": NUL}, "crs"),
    ("/collections/houses/items", {"bbox": NUL}, "bbox"),
    ("/collections/cameras/items", {"datetime": NUL}, "datetime"),
    ("/collections/houses/items/1", {"properties": NUL}, "properties"),
    (f"/collections/houses/tiles/{TILE}", {"filter": f"use = '{NUL}'"}, "filter"),
    (f"/collections/houses/tiles/{TILE}", {"properties": NUL}, "properties"),
    (f"/tiles/{TILE}", {"collections": "houses" + NUL}, "collections"),
    (f"/tiles/{TILE}", {"properties": NUL}, "properties"),
    ("/tiles/WebMercatorQuad/tilejson.json", {"collections": NUL}, "collections"),
    ("/indicators/camera_density", {"town": "七宝" + NUL}, "town"),
    ("/indicators", {"town": NUL, "f": "csv"}, "town"),
    ("/map/search", {"q": "莲花南路" + NUL}, "q"),
    ("/collections", {"f": NUL}, "f"),
    ("/collections/houses/items", {NUL: "1"}, None),
]


@pytest.mark.parametrize("path,params,name", NUL_CASES, ids=[f"{p}?{n}" for p, _, n in NUL_CASES])
def test_a_nul_character_in_any_parameter_is_400(api, path, params, name):
    assert_rejected(api.get(path, params=params), name)


@pytest.mark.parametrize("path", ["/collections/houses%00/items", "/rasters/a%00b/tilejson.json",
                                  "/collections/houses/items/1%00", "/indicators/camera%00density"])
def test_a_nul_character_in_the_path_is_4xx(api, path):
    assert_rejected(api.get(path), None)


def test_cql2_json_nul_inside_a_string_is_400(api):
    doc = {"op": "like", "args": [{"property": "use"}, "res\u0000%"]}
    r = api.get("/collections/houses/items", params={"filter": json.dumps(doc), "filter-lang": "cql2-json"})
    assert_rejected(r, "filter")


# -- CSV formula injection -------------------------------------------------------------------------

FORMULAS = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1", "\r=1+1"]


@pytest.fixture
def formula_houses(engine, catalog):
    """Houses whose text fields start like spreadsheet formulas (removed afterwards)."""
    spec = catalog.get("houses")
    rows = [{"k": f"csvinj-{i}", "h": f"csvinj-{i}", "a": value, "x": 121.3501 + i * 1e-5, "y": 31.0101}
            for i, value in enumerate(FORMULAS)]
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {spec.qualified_table} (feature_key, house_id, address_code, geom) "
                             "VALUES (:k, :h, :a, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"), rows)
        bump_version(conn, spec.id, spec.qualified_table)
    yield rows
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {spec.qualified_table} WHERE feature_key LIKE 'csvinj-%'"))
        bump_version(conn, spec.id, spec.qualified_table)


def test_csv_export_escapes_formula_cells(api, formula_houses):
    r = api.get("/collections/houses/items", params={"filter": "house_id LIKE 'csvinj-%'", "f": "csv",
                                                     "sortby": "house_id", "properties": "house_id,address_code"})
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    assert [row["address_code"] for row in rows] == ["'" + v for v in FORMULAS]
    assert all(not row["address_code"].startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows)
    # JSON keeps the values exactly
    doc = api.get("/collections/houses/items", params={"filter": "house_id LIKE 'csvinj-%'",
                                                       "sortby": "house_id"}).json()
    assert [f["properties"]["address_code"] for f in doc["features"]] == FORMULAS


def test_indicator_csv_and_xlsx_escape_formula_cells(tmp_path):
    from openpyxl import load_workbook

    from cim_service.indicators.tables import COLUMNS, to_csv, to_xlsx

    rows = [{c: None for c in COLUMNS} | {"id": "x", "area": value, "value": -3.5} for value in FORMULAS]
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows), newline="")))
    assert [p["area"] for p in parsed] == ["'" + v for v in FORMULAS]
    assert parsed[0]["value"] == "-3.5"  # numbers stay numbers
    path = tmp_path / "i.xlsx"
    to_xlsx(rows, str(path))
    sheet = load_workbook(path).active
    area = COLUMNS.index("area") + 1
    cells = [sheet.cell(row=i + 2, column=area) for i in range(len(rows))]
    assert all(c.data_type == "s" for c in cells)
    assert [c.value for c in cells] == ["'" + v for v in FORMULAS]
    assert sheet.cell(row=2, column=COLUMNS.index("value") + 1).value == -3.5


# -- the database's own data errors ----------------------------------------------------------------

def test_a_division_by_zero_found_by_the_database_is_400_without_its_message(api):
    r = api.get("/collections/houses/items", params={"filter": "floors / (floors - floors) > 1"})
    assert_rejected(r, "filter")
    assert "division by zero" in r.json()["description"]


@pytest.mark.parametrize("text", [
    "T_AFTER(installed_at, INTERVAL('2000-01-01', '2000-01-01'))",  # the interval's start is not in the SQL
    "T_BEFORE(installed_at, INTERVAL('2020-01-01', '2030-01-01'))",
    "T_METBY(installed_at, INTERVAL('..', '2021-03-01'))",
])
def test_temporal_relations_that_use_one_bound_of_an_interval_are_200(api, text):
    r = api.get("/collections/cameras/items", params={"filter": text})
    assert r.status_code == 200, r.text[:300]
