"""POST /geocode/batch (CSV in, CSV out) and GET /geocode/reverse on the real Minhang addresses."""

from __future__ import annotations

import csv
import io

import pytest

from cim_service.core.address import address_code, parse_address
from cim_service.core.crs import gcj02_to_wgs84, wgs84_to_gcj02

from .conftest import rows


@pytest.fixture(scope="module")
def real_rows(shared_data) -> list[dict]:
    with open(shared_data / "addresses/minhang_addresses_gcj02.csv", encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _csv(rows_: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows_:
        w.writerow([r[c] for c in columns])
    return buf.getvalue()


def _read(response) -> list[dict]:
    assert response.content.startswith("\ufeff".encode()), "UTF-8 with a byte-order mark for Excel"
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def test_batch_of_the_real_file_finds_the_ingested_codes(geo_api, real_rows):
    body = _csv(real_rows, ["street_level", "address", "lng"])
    r = geo_api.post("/geocode/batch", params={"column": "address", "town_column": "street_level",
                                                "crs": "gcj02"}, content=body.encode("utf-8"),
                     headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    out = _read(r)
    assert len(out) == len(real_rows) == int(r.headers["x-rows"])
    assert list(out[0]) == ["street_level", "address", "lng", "address_code", "match_level", "score", "lon", "lat",
                            "town"]
    assert [o["address"] for o in out] == [r_["address"] for r_ in real_rows]  # the same rows, in order
    plate = [(o, r_) for o, r_ in zip(out, real_rows, strict=True) if o["match_level"] in ("door_plate", "building")]
    assert len(plate) >= 0.85 * len(real_rows)
    same = sum(o["address_code"] == address_code(parse_address(r_["address"], town_hint=r_["street_level"]))
               for o, r_ in plate)
    assert same >= 0.97 * len(plate), same
    # GCJ-02 output: the geocoded point of an exact match is the file's own GCJ-02 point (the ingest converted it
    # to WGS84, the batch back), to the conversion's round trip
    close = 0
    for o, r_ in plate:
        if abs(float(o["lon"]) - float(r_["lng"])) < 2e-6:
            close += 1
    assert close >= 0.5 * len(plate)


def test_batch_gbk_upload_and_excel_safety(geo_api, geo_engine, address_table):
    a = rows(geo_engine, f"SELECT road, lane, address_code FROM {address_table} WHERE lane IS NOT NULL "
                         f"AND number IS NULL ORDER BY id LIMIT 1")[0]
    body = f"名称,地址\n=cmd|' /C calc'!A0,{a.road}{a.lane}弄\n空,\n".encode("gbk")
    r = geo_api.post("/geocode/batch", params={"column": "地址"}, content=body)
    assert r.status_code == 200, r.text
    out = _read(r)
    assert out[0]["名称"] == "'=cmd|' /C calc'!A0"  # a formula is kept as text
    assert out[0]["address_code"] == a.address_code and out[0]["match_level"] == "door_plate"
    assert out[1]["match_level"] == "none" and out[1]["lon"] == ""


def test_batch_projected_crs_has_x_y(geo_api):
    r = geo_api.post("/geocode/batch", params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4549"},
                     content="address\n七宝镇\n".encode())
    out = _read(r)
    assert list(out[0])[-3:] == ["x", "y", "town"]
    assert out[0]["match_level"] == "town" and 3.4e6 < float(out[0]["y"]) < 3.5e6  # northing of Minhang


@pytest.mark.parametrize(
    ("body", "params", "named"),
    [
        (b"", {}, "body"),
        (b"name,addr\nx,y\n", {}, "column"),
        (b"address,b\n\xe8\x8e\x98\xe6\x9d\xbe\xe8\xb7\xaf1\xe5\x8f\xb7,2\nx\n", {}, "row 2"),
        (b"address\n\"unterminated\n", {}, "row 1"),
        (b"address\nok\nbad\x00row\n", {}, "row 2"),
        ("address\n莘松路1号\n".encode() + b"\xff\xfe\xfa\n", {"encoding": "utf-8"}, "row 2"),
        (b"address\nx\n", {"encoding": "klingon"}, "encoding"),
        (b"address\nx\n", {"crs": "EPSG:1"}, "crs"),
        (b"address\nx\n", {"column": "address", "town_column": "nope"}, "town_column"),
        (b"address\nx\n", {"extra": "1"}, "extra"),
    ],
)
def test_bad_csv_is_400_naming_row_or_parameter(geo_api, body, params, named):
    r = geo_api.post("/geocode/batch", params=params, content=body)
    assert r.status_code == 400, r.text
    assert named in r.json()["description"], r.json()


def test_reverse_finds_the_nearest_address_and_town(geo_api, geo_engine, address_table, catalog):
    a = rows(geo_engine, f"SELECT id, address_code, ST_X(geom) x, ST_Y(geom) y FROM {address_table} "
                         f"ORDER BY id LIMIT 1 OFFSET 100")[0]
    lon, lat = a.x + 0.00002, a.y  # ~2 m east
    nearest = rows(geo_engine, f"SELECT id FROM {address_table} ORDER BY geom::geography <-> "
                               f"ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography LIMIT 1", x=lon, y=lat)[0].id
    towns = catalog.role("town_boundaries")
    town = rows(geo_engine, f"SELECT name FROM {towns.qualified_table} WHERE ST_Intersects(geom, "
                            f"ST_SetSRID(ST_MakePoint(:x, :y), 4326))", x=lon, y=lat)
    doc = geo_api.get("/geocode/reverse", params={"lon": lon, "lat": lat}).json()
    assert doc["numberReturned"] == 1 and doc["features"][0]["id"] == nearest
    assert doc["features"][0]["properties"]["distance_m"] < 200
    assert doc["town"] == (town[0].name if town else doc["features"][0]["properties"]["town"])


def test_reverse_in_gcj02_reads_and_answers_in_gcj02(geo_api, geo_engine, address_table):
    a = rows(geo_engine, f"SELECT id, ST_X(geom) x, ST_Y(geom) y FROM {address_table} ORDER BY id LIMIT 1")[0]
    gx, gy = (float(v) for v in wgs84_to_gcj02(a.x, a.y))
    doc = geo_api.get("/geocode/reverse", params={"lon": gx, "lat": gy, "crs": "gcj02", "radius": 5}).json()
    f = doc["features"][0]
    assert f["id"] == a.id and f["properties"]["distance_m"] < 0.5
    back = gcj02_to_wgs84(*f["geometry"]["coordinates"])
    assert [float(back[0]), float(back[1])] == pytest.approx([a.x, a.y], abs=1e-6)


def test_reverse_outside_the_radius_is_empty(geo_api):
    doc = geo_api.get("/geocode/reverse", params={"lon": 122.5, "lat": 30.5, "radius": 100}).json()
    assert doc["features"] == [] and doc["town"] is None


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"lon": 121.4}, "lat"),
        ({"lon": "nan", "lat": 31.1}, "lon"),
        ({"lon": 121.4, "lat": 31.1, "radius": 0}, "radius"),
        ({"lon": 121.4, "lat": 31.1, "radius": 5000}, "radius"),
        ({"lon": 500, "lat": 31.1}, "lon"),
        ({"lon": 121.4, "lat": 31.1, "crs": "EPSG:7"}, "crs"),
    ],
)
def test_reverse_bad_parameters(geo_api, params, named):
    r = geo_api.get("/geocode/reverse", params=params)
    assert r.status_code == 400, r.text
    assert named in r.json()["description"]
