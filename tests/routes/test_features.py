"""OGC API Features Parts 1-3 on the fixture data: collections, items, paging, CRS, CQL2, formats, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa
from pyproj import Transformer

from cim_service.core.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.routes.conftest import AREA, N_CAMERAS, db_count

BBOX = ",".join(map(str, AREA))
IN_AREA = "geom && ST_MakeEnvelope(121.33, 31.0, 121.36, 31.03, 4326)"


def items(api, collection="cameras", **params):
    r = api.get(f"/collections/{collection}/items", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def ids(doc) -> set[int]:
    return {f["id"] for f in doc["features"]}


def db_ids(engine, where: str, **params) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(f"SELECT id FROM cim.cameras WHERE {IN_AREA} AND {where}"), params).scalars())


# -- discovery -----------------------------------------------------------------------------------

def test_landing_page_json_and_html(api):
    doc = api.get("/").json()
    rels = {link["rel"]: link["href"] for link in doc["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"].endswith("/api")
    html = api.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.headers["content-type"].startswith("text/html")
    for href in ('href="http://testserver/map"', 'href="http://testserver/api.html"',
                 'href="http://testserver/collections"'):
        assert href in html.text


def test_conformance_declares_parts_1_to_3(api):
    classes = api.get("/conformance").json()["conformsTo"]
    for suffix in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                   "ogcapi-features-2/1.0/conf/crs", "ogcapi-features-3/1.0/conf/filter",
                   "ogcapi-features-3/1.0/conf/features-filter", "cql2/1.0/conf/cql2-text",
                   "cql2/1.0/conf/cql2-json", "cql2/1.0/conf/spatial-functions", "cql2/1.0/conf/temporal-functions"):
        assert any(c.endswith(suffix) for c in classes), suffix
    assert len(classes) == len(set(classes))


def test_openapi_document(api):
    doc = api.get("/api").json()
    assert doc["openapi"].startswith("3.")
    shared = doc["components"]["parameters"]  # limit is one shared parameter ($ref)
    params = {(shared[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p)["name"]
              for p in doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]}
    assert {"bbox", "bbox-crs", "datetime", "limit", "offset", "filter", "filter-lang", "filter-crs", "crs",
            "sortby", "properties"} <= params


def test_collections_lists_public_layers_with_extent(api, engine):
    doc = api.get("/collections").json()
    by_id = {c["id"]: c for c in doc["collections"]}
    assert "people" not in by_id and "organisations" not in by_id
    cams = by_id["cameras"]
    assert cams["title_zh"] == "视频监控" and cams["title"] == "Video cameras"
    assert cams["featureCount"] == db_count(engine, "SELECT count(*) FROM cim.cameras")
    minx, miny, maxx, maxy = cams["extent"]["spatial"]["bbox"][0]
    assert minx <= AREA[0] + 0.002 and maxx >= AREA[2] - 0.002 and miny <= AREA[1] + 0.002
    lo, hi = cams["extent"]["temporal"]["interval"][0]
    with engine.connect() as conn:
        dmin, dmax = conn.execute(sa.text("SELECT min(installed_at), max(installed_at) FROM cim.cameras")).one()
    assert (lo, hi) == (dmin.isoformat(), dmax.isoformat())
    assert "http://www.opengis.net/def/crs/EPSG/0/4326" in cams["crs"]
    assert "temporal" not in by_id["towns"]["extent"]


def test_collection_document_links(api):
    doc = api.get("/collections/cameras").json()
    rels = {(link["rel"], link.get("type")) for link in doc["links"]}
    assert ("items", "application/geo+json") in rels and ("items", "text/csv") in rels
    assert ("http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json") in rels
    assert any(link["href"].endswith("/collections/cameras/tiles") for link in doc["links"])
    assert doc["storageCrs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def test_queryables(api):
    r = api.get("/collections/cameras/queryables")
    assert r.headers["content-type"].startswith("application/schema+json")
    props = r.json()["properties"]
    assert props["installed_at"]["format"] == "date" and props["direction_deg"]["type"] == "number"
    assert props["camera_type"]["enum"] == ["bullet", "dome", "ptz", "checkpoint", "panoramic"]
    assert "geometry" in props


# -- items: bbox, paging, limit --------------------------------------------------------------------

def test_bbox_returns_exactly_the_features_in_the_box(api, engine):
    doc = items(api, bbox="121.33,31.0,121.345,31.015", limit=1000)
    expected = db_ids(engine, "geom && ST_MakeEnvelope(121.33, 31.0, 121.345, 31.015, 4326)")
    assert ids(doc) == expected and len(expected) > 10
    assert doc["numberMatched"] == len(expected) == doc["numberReturned"]


def test_paging_follows_next_links_to_the_end(api, engine):
    seen: list[int] = []
    url = f"/collections/cameras/items?bbox={BBOX}&limit=40"
    pages = 0
    while url:
        doc = api.get(url).json()
        seen += [f["id"] for f in doc["features"]]
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        url = nxt[0] if nxt else None
        pages += 1
        assert pages < 50
    assert len(seen) == len(set(seen)) == db_count(engine, f"SELECT count(*) FROM cim.cameras WHERE {IN_AREA}")
    assert pages == -(-len(seen) // 40)
    second = api.get(f"/collections/cameras/items?bbox={BBOX}&limit=40&offset=40").json()
    prev = [link["href"] for link in second["links"] if link["rel"] == "prev"]
    assert prev and "offset=0" in prev[0]


def test_unfiltered_number_matched_is_the_table_count(api, engine):
    doc = items(api, limit=1)
    assert doc["numberMatched"] == db_count(engine, "SELECT count(*) FROM cim.cameras")
    assert doc["numberReturned"] == 1


def test_stale_layer_state_count_is_not_reported(api, engine):
    with engine.begin() as conn:
        real = conn.execute(sa.text(
            "SELECT feature_count FROM cim_meta.layer_state WHERE layer_id = 'cameras'")).scalar()
        conn.execute(sa.text("UPDATE cim_meta.layer_state SET feature_count = 3 WHERE layer_id = 'cameras'"))
    try:
        doc = items(api, limit=10)
        assert "numberMatched" not in doc and doc["numberReturned"] == 10
        assert any(link["rel"] == "next" for link in doc["links"])
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE cim_meta.layer_state SET feature_count = :n WHERE layer_id = 'cameras'"),
                         {"n": real})


def test_limit_is_clamped_to_the_maximum(api, settings, engine):
    total = db_count(engine, "SELECT count(*) FROM cim.cameras")
    assert total > settings.default_limit
    doc = items(api, limit=10**9)
    assert doc["numberReturned"] == min(total, settings.max_limit)
    assert items(api)["numberReturned"] == settings.default_limit


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5"])
def test_limit_rejects_non_positive_or_non_integer(api, value):
    r = api.get("/collections/cameras/items", params={"limit": value})
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameterValue" and "limit" in r.json()["description"]


# -- CRS (Part 2) -------------------------------------------------------------------------------------

def _first(api, **params):
    doc = items(api, bbox=BBOX, limit=1, sortby="id", **params)
    return doc["features"][0]


def test_crs_axis_order_and_content_crs(api):
    lon, lat = _first(api)["geometry"]["coordinates"]
    r = api.get("/collections/cameras/items", params={"bbox": BBOX, "limit": 1, "sortby": "id",
                                                       "crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4326>"
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-7)
    cgcs = _first(api, crs="http://www.opengis.net/def/crs/EPSG/0/4490")["geometry"]["coordinates"]
    assert cgcs == pytest.approx([lat, lon], abs=1e-6)
    merc = _first(api, crs="http://www.opengis.net/def/crs/EPSG/0/3857")["geometry"]["coordinates"]
    assert merc == pytest.approx(Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat), abs=0.01)
    gk = _first(api, crs="http://www.opengis.net/def/crs/EPSG/0/4549")["geometry"]["coordinates"]
    e, n = Transformer.from_crs(4326, 4549, always_xy=True).transform(lon, lat)
    assert gk == pytest.approx([n, e], abs=0.01)  # EPSG:4549 axis order: northing, easting


def test_gcj02_and_bd09_output(api):
    lon, lat = _first(api)["geometry"]["coordinates"]
    r = api.get("/collections/cameras/items", params={"bbox": BBOX, "limit": 1, "sortby": "id",
                                                       "crs": "urn:cim:crs:gcj02"})
    assert r.headers["content-crs"] == "<urn:cim:crs:gcj02>"
    gx, gy = r.json()["features"][0]["geometry"]["coordinates"]
    ex, ey = wgs84_to_gcj02(lon, lat)
    assert (gx, gy) == pytest.approx((float(ex), float(ey)), abs=1e-7)
    # the GCJ-02 offset in Shanghai is several hundred metres, mostly eastward
    assert 0.003 < gx - lon < 0.006 and -0.004 < gy - lat < 0.0
    bx, by = _first(api, crs="bd09")["geometry"]["coordinates"]
    assert (bx, by) == pytest.approx(tuple(map(float, wgs84_to_bd09(lon, lat))), abs=1e-7)


def test_bbox_crs_lat_lon_and_projected(api):
    base = ids(items(api, bbox="121.33,31.0,121.345,31.015", limit=1000))
    latlon = items(api, bbox="31.0,121.33,31.015,121.345", limit=1000,
                   **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert ids(latlon) == base
    t = Transformer.from_crs(4326, 3857, always_xy=True)
    (x1, y1), (x2, y2) = t.transform(121.33, 31.0), t.transform(121.345, 31.015)
    merc = items(api, bbox=f"{x1},{y1},{x2},{y2}", limit=1000, **{"bbox-crs": "EPSG:3857"})
    assert ids(merc) == base


def test_gcj02_bbox_matches_shifted_wgs84_box(api, engine):
    (gx1, gx2), (gy1, gy2) = wgs84_to_gcj02([121.33, 121.345], [31.0, 31.015])
    doc = items(api, bbox=f"{gx1},{gy1},{gx2},{gy2}", limit=1000, **{"bbox-crs": "urn:cim:crs:gcj02"})
    expected = ids(items(api, bbox="121.33,31.0,121.345,31.015", limit=1000))
    assert len(ids(doc) ^ expected) <= 2  # the shifted box is not exactly axis-aligned in WGS84


# -- datetime -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,where", [
    ("2022-02-02", "installed_at = DATE '2022-02-02'"),
    ("2022-01-01/2022-12-31", "installed_at BETWEEN DATE '2022-01-01' AND DATE '2022-12-31'"),
    ("../2021-06-30", "installed_at <= DATE '2021-06-30'"),
    ("2024-01-01T00:00:00Z/..", "installed_at >= DATE '2024-01-01'"),
])
def test_datetime_instant_and_intervals(api, engine, value, where):
    doc = items(api, bbox=BBOX, datetime=value, limit=1000)
    expected = db_ids(engine, where)
    assert ids(doc) == expected and expected


def test_datetime_on_a_layer_without_time_is_400(api):
    r = api.get("/collections/towns/items", params={"datetime": "2022-01-01"})
    assert r.status_code == 400 and "datetime" in r.json()["description"]


# -- CQL2 (Part 3) ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cql,where", [
    ("camera_type = 'dome' AND direction_deg > 100", "camera_type = 'dome' AND direction_deg > 100"),
    ("owner LIKE '闵行%'", "owner LIKE '闵行%'"),
    ("camera_type IN ('ptz', 'checkpoint')", "camera_type IN ('ptz', 'checkpoint')"),
    ("direction_deg BETWEEN 10 AND 20", "direction_deg BETWEEN 10 AND 20"),
    ("fov_deg IS NULL AND NOT (camera_type = 'bullet')", "fov_deg IS NULL AND camera_type <> 'bullet'"),
    ("CASEI(camera_type) = casei('DOME') OR direction_deg + 1 = 5", "camera_type = 'dome' OR direction_deg = 4"),
    ("installed_at > DATE('2023-06-01')", "installed_at > DATE '2023-06-01'"),
    ("T_AFTER(installed_at, DATE('2023-06-01'))", "installed_at > DATE '2023-06-01'"),
    ("T_BEFORE(installed_at, TIMESTAMP('2021-03-01T00:00:00Z'))", "installed_at < DATE '2021-03-01'"),
    ("T_DURING(installed_at, INTERVAL('2022-01-01', '2022-06-30'))",
     "installed_at > DATE '2022-01-01' AND installed_at < DATE '2022-06-30'"),
    ("T_INTERSECTS(installed_at, INTERVAL('..', '2021-02-01'))", "installed_at <= DATE '2021-02-01'"),
    ("installed_at T_INTERSECTS INTERVAL('2022-01-01', '2022-03-31')",
     "installed_at BETWEEN DATE '2022-01-01' AND DATE '2022-03-31'"),
    ("owner = 'a T_AFTER b INTERVAL(' OR camera_type = 'ptz'", "camera_type = 'ptz'"),
    ("S_INTERSECTS(geometry, POLYGON((121.33 31.0, 121.34 31.0, 121.34 31.01, 121.33 31.01, 121.33 31.0)))",
     "ST_Intersects(geom, ST_MakeEnvelope(121.33, 31.0, 121.34, 31.01, 4326))"),
    ("S_WITHIN(geometry, BBOX(121.34, 31.01, 121.35, 31.02))",
     "ST_Within(geom, ST_MakeEnvelope(121.34, 31.01, 121.35, 31.02, 4326))"),
    ("S_DWITHIN(geometry, POINT(121.345 31.015), 800, meters)",
     "ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(121.345, 31.015), 4326)::geography, 800)"),
    ("S_DISJOINT(geometry, BBOX(121.33, 31.0, 121.35, 31.03))",
     "NOT ST_Intersects(geom, ST_MakeEnvelope(121.33, 31.0, 121.35, 31.03, 4326))"),
])
def test_cql2_text_matches_sql(api, engine, cql, where):
    doc = items(api, bbox=BBOX, filter=cql, limit=1000)
    expected = db_ids(engine, where)
    assert ids(doc) == expected
    in_area = db_count(engine, f"SELECT count(*) FROM cim.cameras WHERE {IN_AREA}")
    assert 0 < len(expected) < in_area, "the case must select a proper subset"
    assert doc["numberMatched"] == len(expected)


def test_cql2_json_spatial_and_temporal(api, engine):
    cql = {"op": "and", "args": [
        {"op": "s_intersects", "args": [{"property": "geometry"},
                                        {"type": "Polygon", "coordinates": [[[121.33, 31.0], [121.35, 31.0],
                                                                             [121.35, 31.02], [121.33, 31.02],
                                                                             [121.33, 31.0]]]}]},
        {"op": "t_after", "args": [{"property": "installed_at"}, {"date": "2022-06-30"}]},
        {"op": "in", "args": [{"property": "camera_type"}, ["dome", "ptz"]]},
    ]}
    doc = items(api, bbox=BBOX, filter=json.dumps(cql), limit=1000, **{"filter-lang": "cql2-json"})
    expected = db_ids(engine, "ST_Intersects(geom, ST_MakeEnvelope(121.33, 31.0, 121.35, 31.02, 4326)) "
                              "AND installed_at > DATE '2022-06-30' AND camera_type IN ('dome', 'ptz')")
    assert ids(doc) == expected and expected


def test_filter_crs_lat_lon_literal(api):
    poly = "POLYGON((31.0 121.33, 31.0 121.34, 31.01 121.34, 31.01 121.33, 31.0 121.33))"
    flipped = items(api, bbox=BBOX, filter=f"S_INTERSECTS(geometry, {poly})", limit=1000,
                    **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    plain = items(api, bbox=BBOX, limit=1000,
                  filter="S_INTERSECTS(geometry, BBOX(121.33, 31.0, 121.34, 31.01))")
    assert ids(flipped) == ids(plain) and ids(plain)


def test_filter_crs_gcj02_literal(api):
    (x1, x2), (y1, y2) = wgs84_to_gcj02([121.335, 121.35], [31.005, 31.02])
    shifted = items(api, bbox=BBOX, filter=f"S_INTERSECTS(geometry, BBOX({x1}, {y1}, {x2}, {y2}))", limit=1000,
                    **{"filter-crs": "urn:cim:crs:gcj02"})
    plain = items(api, bbox=BBOX, limit=1000, filter="S_INTERSECTS(geometry, BBOX(121.335, 31.005, 121.35, 31.02))")
    assert ids(plain) and len(ids(shifted) ^ ids(plain)) <= 2


def test_property_equality_query_parameter(api, engine):
    doc = items(api, bbox=BBOX, camera_type="ptz", limit=1000)
    assert ids(doc) == db_ids(engine, "camera_type = 'ptz'")


# -- sortby, properties ---------------------------------------------------------------------------------

def test_sortby_descending_and_ascending(api, engine):
    values = [f["properties"]["direction_deg"] for f in items(api, bbox=BBOX, sortby="-direction_deg",
                                                             limit=50)["features"]]
    with engine.connect() as conn:
        top = conn.execute(sa.text(f"SELECT max(direction_deg) FROM cim.cameras WHERE {IN_AREA}")).scalar_one()
    assert values == sorted(values, reverse=True) and values[0] == top
    dates = [f["properties"]["installed_at"] for f in items(api, bbox=BBOX, sortby="installed_at,-id",
                                                           limit=50)["features"]]
    assert dates == sorted(dates)


def test_properties_selection(api):
    feats = items(api, bbox=BBOX, properties="camera_type,owner", limit=5)["features"]
    assert all(list(f["properties"]) == ["camera_type", "owner"] for f in feats)
    empty = items(api, bbox=BBOX, properties="", limit=2)["features"]
    assert all(f["properties"] == {} for f in empty)


# -- formats ---------------------------------------------------------------------------------------------

def test_csv_output(api, engine):
    r = api.get("/collections/cameras/items", params={"bbox": BBOX, "limit": 1000, "f": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())  # BOM: Excel reads the Chinese text as UTF-8
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == db_count(engine, f"SELECT count(*) FROM cim.cameras WHERE {IN_AREA}")
    assert rows[0]["geometry"].startswith("POINT (121.3") and "camera_type" in rows[0]
    with engine.connect() as conn:
        owner = conn.execute(sa.text("SELECT owner FROM cim.cameras WHERE id = :i"), {"i": int(rows[0]["id"])}).scalar()
    assert rows[0]["owner"] == owner


def test_accept_header_negotiation(api):
    r = api.get("/collections/cameras/items", params={"bbox": BBOX, "limit": 3}, headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv") and len(r.text.strip().splitlines()) == 4
    r = api.get("/collections/cameras/items", params={"limit": 1, "f": "json"}, headers={"Accept": "text/html"})
    assert r.headers["content-type"] == "application/geo+json"
    r = api.get("/collections", headers={"Accept": "application/json;q=0.5, text/html;q=0.9"})
    assert r.headers["content-type"].startswith("text/html")


def test_html_output(api):
    r = api.get("/collections/cameras/items", params={"bbox": BBOX, "limit": 5},
                headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<table>" in r.text and "视频监控" in r.text and "/collections/cameras/items/" in r.text
    assert "<script" not in r.text and "http://cdn" not in r.text
    r2 = api.get("/collections?f=html")
    assert "测试" not in r2.text and 'href="http://testserver/collections/cameras?f=html"' in r2.text


def test_single_item(api, engine):
    with engine.connect() as conn:
        fid, dev, x, y = conn.execute(sa.text(
            f"SELECT id, device_id, ST_X(geom), ST_Y(geom) FROM cim.cameras WHERE {IN_AREA} LIMIT 1")).one()
    r = api.get(f"/collections/cameras/items/{fid}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert doc["id"] == fid and doc["properties"]["device_id"] == dev
    assert doc["geometry"]["coordinates"] == pytest.approx([x, y], abs=1e-7)
    assert any(link["rel"] == "collection" for link in doc["links"])
    flipped = api.get(f"/collections/cameras/items/{fid}", params={"crs": "EPSG:4326"}).json()
    assert flipped["geometry"]["coordinates"] == pytest.approx([y, x], abs=1e-7)
    assert api.get(f"/collections/cameras/items/{fid}?f=html").text.count(dev) >= 1


# -- bad requests -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("params,needle", [
    ({"bbox": "121.3,95,121.4,96"}, "bbox"),
    ({"bbox": "121.3,31.0,121.4"}, "bbox"),
    ({"bbox": "121.4,31.0,121.3,31.1"}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": "121.3,31,121.4,31.1", "bbox-crs": "EPSG:999999"}, "bbox-crs"),
    ({"crs": "EPSG:2000"}, "crs"),
    ({"filter": "camera_type = "}, "filter"),
    ({"filter": "S_INTERSECTS(geometry, POINT(1 2)"}, "filter"),
    ({"filter": "{not json", "filter-lang": "cql2-json"}, "filter"),
    ({"filter": "x", "filter-lang": "ecql"}, "filter-lang"),
    ({"filter": "nonexistent = 1"}, "'nonexistent'"),
    ({"filter": "\"name; DROP TABLE x\" = 1"}, "name; DROP TABLE x"),
    ({"filter": "direction_deg = 'north'"}, "direction_deg"),
    ({"filter": "T_AFTER(owner, DATE('2020-01-01'))"}, "owner"),
    ({"sortby": "name; DROP TABLE cim.cameras"}, "sortby"),
    ({"properties": "owner,\"; DROP TABLE cim.cameras --"}, "properties"),
    ({"datetime": "yesterday"}, "datetime"),
    ({"datetime": "2024-01-01/2023-01-01"}, "datetime"),
    ({"f": "xml"}, "'f'"),
    ({"colour": "red"}, "unknown query parameter 'colour'"),
    ({"filter": " OR ".join(["owner = 'a'"] * 1000)}, "nested too deeply"),
    ({"filter": "owner = '" + "x" * 20_001 + "'"}, "longer than"),
    ({"direction_deg": "north"}, "parameter 'direction_deg': value 'north' is not a valid float"),
])
def test_bad_requests_are_400_with_clear_messages(api, engine, params, needle):
    r = api.get("/collections/cameras/items", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue" and needle in body["description"]
    assert "SELECT" not in body["description"] and "Traceback" not in body["description"]
    assert db_count(engine, "SELECT count(*) FROM cim.cameras") >= N_CAMERAS


def test_unknown_collection_and_feature_are_404(api):
    for path in ("/collections/nope", "/collections/nope/items", "/collections/cameras/items/999999999",
                 "/collections/cameras/items/abc", "/collections/cameras/items/99999999999999999999999"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "NotFound"

