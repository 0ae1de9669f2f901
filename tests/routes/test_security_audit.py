"""Security audit: no SQL built from user strings, no personal data or restricted layer served without the scope.

Four callers: anonymous, ``analyst`` (internal), an *auditor* (``internal`` + ``restricted`` but NOT
``personal_data``: the case where a leak of personal fields through filters/sorting would matter, since the
layer itself is readable) and ``officer`` (restricted + personal_data). Personal values are those of the
fixture residents (``features_data`` in conftest) and of every demo resident, read from the database.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import morecantile
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import Principal, get_principal
from cim_service.features.cql2 import FilterContext, parse_filter, to_sql
from cim_service.features.crs import resolve_crs
from cim_service.features.params import parse_properties, parse_sortby
from cim_service.features.sql import Params
from tests.routes.conftest import db_count

WMQ = morecantile.tms.get("WebMercatorQuad")
PERSONAL = ("name", "id_number", "phone")
#: fixture residents lie at lon 121.3355..121.337, lat 31.005 (tests/routes/conftest.py)
FIXTURE_LON, FIXTURE_LAT = 121.336, 31.005
AUDITOR = Principal("auditor", "custom", frozenset({"internal", "restricted"}))
INJECTION = "x'); DROP TABLE cim.people; --"


@pytest.fixture(scope="module")
def personal_values(api, engine) -> list[str]:
    """Every personal value in cim.people (fixture and demo residents)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, id_number, phone FROM cim.people")).all()
    values = sorted({v for row in rows for v in row if v})
    assert "31011219800101123X" in values and "测试居民1" in values and len(values) >= 6
    return values


@pytest.fixture(scope="module")
def auditor(settings, features_data) -> Iterator[TestClient]:
    """A client whose principal may read restricted layers but holds no ``personal_data`` scope."""
    app = create_app(settings)
    app.dependency_overrides[get_principal] = lambda: AUDITOR
    with TestClient(app) as client:
        yield client


def assert_no_personal(text: str, values: list[str], where: str) -> None:
    """Fail when any personal value occurs in ``text``."""
    leaked = [v for v in values if v in text]
    assert not leaked, f"{where}: personal values served: {leaked[:3]}"


def tile_path(z: int, prefix: str = "/collections/people/tiles") -> str:
    t = WMQ.tile(FIXTURE_LON, FIXTURE_LAT, z)
    return f"{prefix}/WebMercatorQuad/{z}/{t.x}/{t.y}"


def decode(content: bytes) -> dict:
    return mapbox_vector_tile.decode(content) if content else {}


def access_log_count(engine, layer: str = "people") -> int:
    return db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE layer_id = :l", l=layer)


# -- 1. SQL is built from catalog identifiers and bound parameters only ------------------------------

def _translate(text: str, fields: dict, lang: str | None = None) -> tuple[str, list]:
    params = Params()
    sql = to_sql(parse_filter(text, lang), FilterContext(fields, resolve_crs(None, "filter-crs"), params))
    return sql, params.values


def test_cql2_literals_are_bound_never_in_sql_text(catalog):
    cams = {f.name: f for f in catalog.get("cameras").fields}
    payload = "x); DROP TABLE cim.people; --$1\\"  # pygeofilter's text grammar has no '' escape: no quote here
    for text in (f"owner = '{payload}'", f"owner LIKE '%{payload}%'", f"owner IN ('a', '{payload}')",
                 f"CASEI(owner) = CASEI('{payload}')", f"owner <> '{payload}' AND device_id = '{payload}'"):
        sql, values = _translate(text, cams)
        assert "DROP" not in sql and "people" not in sql and "'" not in sql and "\\" not in sql, sql
        assert any(payload in str(v) for v in values), (text, values)
    for value in (INJECTION, "' OR '1'='1"):  # quotes reach the translator through CQL2 JSON
        sql, values = _translate(json.dumps({"op": "=", "args": [{"property": "owner"}, value]}), cams, "cql2-json")
        assert sql == '("owner" = $1::text)' and values == [value]


def test_identifiers_outside_the_catalog_are_rejected(catalog):
    from cim_service.errors import InvalidParameter

    cams = {f.name: f for f in catalog.get("cameras").fields}
    for text in ('"owner"" = 1 OR 1=1 --" = \'x\'', "feature_key = 'x'", "batch_id = 1", "pg_sleep(5) = 1",
                 "owner = current_user"):
        with pytest.raises(InvalidParameter):
            _translate(text, cams)
    with pytest.raises(InvalidParameter):
        _translate(json.dumps({"op": "=", "args": [{"property": 'owner" OR 1=1 --'}, "x"]}), cams, "cql2-json")
    visible = list(catalog.get("cameras").fields)
    for bad in ("owner;DROP TABLE x", 'owner"', "geom", "feature_key"):
        with pytest.raises(InvalidParameter):
            parse_sortby(bad, visible)
        with pytest.raises(InvalidParameter):
            parse_properties(bad, visible)


def test_injection_attempts_over_http_are_400_or_inert(api, engine):
    people_before = db_count(engine, "SELECT count(*) FROM cim.people")
    cases = [
        ({"filter": f"owner = '{INJECTION}'"}, 400),  # unbalanced quote: a parse error, not SQL
        ({"filter": "owner = 'x); DROP TABLE cim.people; --'"}, 200),
        ({"filter": json.dumps({"op": "=", "args": [{"property": "owner"}, INJECTION]}), "filter-lang": "cql2-json"},
         200),
        ({"owner": INJECTION}, 200),
        ({"sortby": "owner; DROP TABLE cim.people"}, 400),
        ({"properties": 'owner" FROM cim.people --'}, 400),
        ({"bbox": "121,31,122,32); DROP TABLE cim.people; --"}, 400),
        ({"datetime": "2023-01-01'; DROP TABLE cim.people; --"}, 400),
        ({"crs": "EPSG:4326'; --"}, 400),
        ({"bbox-crs": "4326) --", "bbox": "121,31,122,32"}, 400),
        ({"filter-lang": "sql", "filter": "1=1"}, 400),
        ({"filter": "S_INTERSECTS(geometry, POINT(121 31)) OR pg_sleep(1) = 1"}, 400),
        ({"x' OR '1'='1": "1"}, 400),
    ]
    for params, status in cases:
        r = api.get("/collections/cameras/items", params=params)
        assert r.status_code == status, (params, r.text)
        body = r.text.lower()
        assert "select " not in body and "traceback" not in body and "syntax error" not in body, params
        if status == 200:
            assert r.json()["numberReturned"] == 0, params  # the payload is compared as a value: matches nothing
    assert db_count(engine, "SELECT count(*) FROM cim.people") == people_before


def test_like_wildcards_are_cql2_semantics_and_values_are_bound(api, engine):
    """A CQL2 LIKE pattern is the client's pattern by definition (``%``/``_`` are its wildcards): bound, not SQL."""
    n = db_count(engine, "SELECT count(*) FROM cim.cameras WHERE owner LIKE '%分局'")
    doc = api.get("/collections/cameras/items", params={"filter": "owner LIKE '%分局'", "limit": 1}).json()
    assert doc["numberMatched"] == n and n > 0
    pattern = {"op": "like", "args": [{"property": "owner"}, "%' OR '1'='1"]}
    doc = api.get("/collections/cameras/items", params={"filter": json.dumps(pattern), "filter-lang": "cql2-json"})
    assert doc.status_code == 200 and doc.json()["numberReturned"] == 0


def test_map_search_escapes_like_wildcards_and_injection(api, engine):
    literal_pct = db_count(engine, "SELECT count(*) FROM cim.addresses WHERE strpos(full_address, '%') > 0")
    literal_us = db_count(engine, "SELECT count(*) FROM cim.addresses WHERE strpos(full_address, '_') > 0")
    assert db_count(engine, "SELECT count(*) FROM cim.addresses") > 10  # so an unescaped % would match rows
    for q, expected in (("%", literal_pct), ("_", literal_us), ("%%", 0), ("' OR '1'='1", 0), (INJECTION, 0)):
        r = api.get("/map/search", params={"q": q, "limit": 50})
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == min(expected, 50), q
    assert db_count(engine, "SELECT count(*) FROM cim.people") > 0


def test_indicator_town_and_id_are_not_sql(api):
    for town in ("x' OR '1'='1", INJECTION):
        r = api.get("/indicators/camera_density", params={"town": town})
        assert r.status_code == 404 and "select" not in r.text.lower()
    r = api.get("/indicators/camera_density'; DROP TABLE cim.people; --")
    assert r.status_code == 404 and "select" not in r.text.lower()


def test_api_key_lookup_is_bound(api):
    for key in ("' OR '1'='1", "x' OR 1=1 --", "%", "*"):
        for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            r = api.get("/collections/people", headers=headers)
            assert r.status_code == 401, (headers, r.text)


# -- 2. the restricted layer is invisible without the `restricted` scope ---------------------------

PEOPLE_PATHS = ("/collections/people", "/collections/people?f=html", "/collections/people/queryables",
                "/collections/people/items", "/collections/people/items?f=csv", "/collections/people/items?f=html",
                "/collections/people/items/1", "/collections/people/tiles",
                "/collections/people/tiles/WebMercatorQuad",
                "/collections/people/tiles/WebMercatorQuad/tilejson.json",
                "/tiles/WebMercatorQuad?collections=people",
                "/tiles/WebMercatorQuad/tilejson.json?collections=people")


@pytest.mark.parametrize("who", ["anonymous", "analyst"])
def test_people_is_404_without_restricted_scope(api, analyst, personal_values, who):
    headers = analyst if who == "analyst" else {}
    unknown = api.get("/collections/no_such_layer", headers=headers).json()["description"]
    for path in (*PEOPLE_PATHS, tile_path(16), tile_path(12), tile_path(16, "/tiles") + "?collections=people",
                 tile_path(16, "/tiles") + "?collections=cameras,people"):
        r = api.get(path, headers=headers)
        assert r.status_code == 404, (who, path, r.status_code)
        assert_no_personal(r.text, personal_values, path)
        assert r.json()["description"] == unknown.replace("no_such_layer", "people"), path
    listing = api.get("/collections", headers=headers).json()
    assert "people" not in {c["id"] for c in listing["collections"]}
    html = api.get("/collections?f=html", headers=headers).text
    assert "/collections/people" not in html and "实有人口" not in html
    for path in ("/tiles/WebMercatorQuad", "/tiles/WebMercatorQuad/tilejson.json"):
        doc = api.get(path, headers=headers).json()
        ids = {layer["id"] for layer in doc.get("layers", doc.get("vector_layers", []))}
        assert ids and "people" not in ids, path
    r = api.get(tile_path(16, "/tiles"), headers=headers)
    assert r.status_code in (200, 204) and "people" not in decode(r.content)
    assert_no_personal(r.content.decode("latin-1"), [v for v in personal_values if v.isascii()], "tile")


def test_no_personal_values_in_service_documents(api, personal_values):
    for path in ("/", "/?f=html", "/api", "/conformance", "/collections", "/indicators", "/indicators?f=csv",
                 "/indicators/gaps?wait=false", "/map", "/metrics"):
        r = api.get(path)
        assert r.status_code == 200, path
        assert_no_personal(r.text, personal_values, path)
    openapi = api.get("/api").text
    assert "id_number" not in openapi and "31011219800101123X" not in openapi


def test_map_search_never_returns_people(api, personal_values):
    for q in ("测试居民1", "31011219800101123X", "13900000000", "莲花南路"):
        r = api.get("/map/search", params={"q": q, "limit": 50})
        assert r.status_code == 200
        for row in r.json()["results"]:
            assert set(row) == {"label", "town", "longitude", "latitude", "match"}
        assert_no_personal(json.dumps(r.json()["results"], ensure_ascii=False), personal_values, q)


def test_map_export_reads_public_layers_only(api, catalog, personal_values):
    from cim_service.webmap.export import collect_inline_data

    inline, report = collect_inline_data(api, catalog, sample=20)
    assert "people" not in inline["layers"] and "organisations" not in inline["layers"]
    assert "people" not in report.features and report.features
    assert_no_personal(json.dumps(inline, ensure_ascii=False), personal_values, "export")


def test_metrics_do_not_name_restricted_layers(api, officer, analyst):
    assert api.get("/collections/people/items", headers=officer, params={"limit": 2}).status_code == 200
    assert api.get("/collections/organisations/items", headers=analyst, params={"limit": 2}).status_code == 200
    assert api.get("/collections/cameras/items", params={"limit": 2}).status_code == 200
    text = api.get("/metrics").text
    assert 'collection="cameras"' in text
    assert 'collection="people"' not in text and 'collection="organisations"' not in text
    assert 'cim_features_returned_total{collection="(restricted)"}' in text  # still counted


# -- 3. personal fields need `personal_data`, even on a layer the caller can read ------------------

LEAKY_FILTERS = (
    "id_number LIKE '3101%'", "\"id_number\" LIKE '3101%'", "name = '测试居民1'", "phone IS NULL",
    "phone IN ('13900000000')", "CASEI(name) = CASEI('x')", "UPPER(id_number) LIKE '3101%'",
    "id_number BETWEEN '3' AND '4'", "gender = name", "birth_year < 2000 OR id_number LIKE '3%'",
    "NOT (phone <> '1')", "S_INTERSECTS(name, POINT(121 31))",
)
LEAKY_JSON = (
    {"op": "like", "args": [{"property": "id_number"}, "3101%"]},
    {"op": "=", "args": [{"function": {"name": "upper", "args": [{"property": "name"}]}}, "X"]},
    {"op": "isNull", "args": [{"property": "phone"}]},
)


def test_personal_fields_are_unknown_to_a_restricted_caller_without_personal_data(auditor, engine, personal_values):
    base = auditor.get("/collections/people/items", params={"limit": 100})
    assert base.status_code == 200 and base.json()["features"]
    assert_no_personal(base.text, personal_values, "items")
    for fmt in ("csv", "html"):
        r = auditor.get("/collections/people/items", params={"f": fmt, "limit": 100})
        assert r.status_code == 200 and "gender" in r.text
        assert_no_personal(r.text, personal_values, fmt)
        assert "id_number" not in r.text and "phone" not in r.text
    fid = base.json()["features"][0]["id"]
    one = auditor.get(f"/collections/people/items/{fid}")
    assert one.status_code == 200 and not set(one.json()["properties"]) & set(PERSONAL)
    assert_no_personal(auditor.get(f"/collections/people/items/{fid}?f=html").text, personal_values, "item html")
    queryables = auditor.get("/collections/people/queryables").json()["properties"]
    assert "gender" in queryables and not set(queryables) & set(PERSONAL)
    attempts = [{"filter": f} for f in LEAKY_FILTERS]
    attempts += [{"filter": json.dumps(j), "filter-lang": "cql2-json"} for j in LEAKY_JSON]
    attempts += [{"sortby": s} for s in ("id_number", "-name", "+phone", "phone DESC", "gender,name")]
    attempts += [{"properties": p} for p in ("name", "gender,phone", "id_number")]
    attempts += [{"id_number": "31011219800101123X"}, {"phone": "13900000000"}, {"name": "测试居民1"}]
    attempts += [{"properties": "gender", "f": "csv", "sortby": "id_number"}]
    for params in attempts:
        r = auditor.get("/collections/people/items", params=params)
        assert r.status_code == 400, (params, r.status_code, r.text[:200])
        assert_no_personal(r.text, [v for v in personal_values if v not in str(params)], str(params))
        listing = r.json()["description"].partition(";")[2]  # the names offered instead: visible ones only
        assert not any(re.search(rf"\b{p}\b", listing) for p in PERSONAL), (params, listing)
        one = auditor.get(f"/collections/people/items/{fid}", params={"properties": "name"})
        assert one.status_code == 400


def test_personal_fields_absent_from_tiles_and_tile_metadata_without_personal_data(auditor, personal_values):
    for path in ("/collections/people/tiles/WebMercatorQuad/tilejson.json",
                 "/tiles/WebMercatorQuad/tilejson.json?collections=people"):
        fields = {k for layer in auditor.get(path).json()["vector_layers"] for k in layer["fields"]}
        assert "gender" in fields and not fields & set(PERSONAL), path
    for path in ("/collections/people/tiles/WebMercatorQuad", "/tiles/WebMercatorQuad?collections=people"):
        props = {k for layer in auditor.get(path).json()["layers"] for k in layer["propertiesSchema"]["properties"]}
        assert "gender" in props and not props & set(PERSONAL), path
    for z in (16, 12):  # plain and thinned point tiles
        for path in (tile_path(z), tile_path(z, "/tiles") + "?collections=people,cameras"):
            r = auditor.get(path)
            assert r.status_code == 200, path
            people = decode(r.content)["people"]["features"]
            assert people and all(not set(f["properties"]) & set(PERSONAL) for f in people), path
            assert all("gender" in f["properties"] for f in people)
            assert_no_personal(r.content.decode("utf-8", "replace"), personal_values, path)
    for params in ({"properties": "name"}, {"properties": "gender,phone"}, {"filter": "id_number LIKE '3101%'"},
                   {"filter": "CASEI(name) = 'x'"}):
        assert auditor.get(tile_path(16), params=params).status_code == 400, params
    r = auditor.get(tile_path(16, "/tiles"), params={"collections": "people", "properties": "phone"})
    assert r.status_code == 400


def test_officer_reads_personal_data_and_every_read_is_logged(api, officer, engine, personal_values):
    tile = tile_path(16)
    reads = [
        ("/collections/people/items", {"limit": 5}),
        ("/collections/people/items", {"limit": 5, "f": "csv"}),
        ("/collections/people/items", {"limit": 5, "f": "html"}),
        ("/collections/people/items", {"properties": "gender", "filter": "id_number LIKE '3101%'"}),
        (tile, {}),
        (tile, {}),  # a tile-cache hit is logged as well
        (tile, {"filter": "name LIKE '测试居民%'"}),
        (tile_path(16, "/tiles"), {"collections": "people"}),
        (tile_path(16, "/tiles"), {}),  # all readable layers, people included
    ]
    for path, params in reads:
        before = access_log_count(engine)
        r = api.get(path, headers=officer, params=params)
        assert r.status_code == 200, (path, params, r.text[:200])
        assert access_log_count(engine) == before + 1, (path, params)
    doc = api.get("/collections/people/items", headers=officer, params={"filter": "name LIKE '测试居民%'"}).json()
    assert {f["properties"]["id_number"] for f in doc["features"]} == {"31011219800101123X"}
    feats = decode(api.get(tile, headers=officer).content)["people"]["features"]
    assert any(f["properties"].get("phone") == "13900000000" for f in feats)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT principal, role, action FROM cim_meta.access_log "
                                   "WHERE layer_id = 'people' ORDER BY id DESC LIMIT 1")).one()
    assert row.role == "officer" and row.principal.startswith("test-officer-") and row.action == "tile"


def test_restricted_reads_without_personal_fields_are_logged_too(auditor, engine):
    for path, params in (("/collections/people/items", {"limit": 3}), (tile_path(16), {})):
        before = access_log_count(engine)
        assert auditor.get(path, params=params).status_code == 200
        assert access_log_count(engine) == before + 1, path
    with engine.connect() as conn:
        fields = conn.execute(sa.text("SELECT fields FROM cim_meta.access_log WHERE layer_id = 'people' "
                                      "ORDER BY id DESC LIMIT 1")).scalar_one()
    assert "gender" in fields and not set(fields) & set(PERSONAL)


def test_database_errors_do_not_echo_sql_or_values(api, officer):
    r = api.get("/collections/people/items", headers=officer, params={"filter": "birth_year / 0 = 1"})
    assert r.status_code == 500 and r.json() == {"code": "ServerError", "description": "internal server error"}
    r = api.get("/collections/people/items", headers=officer, params={"birth_year": "abc'--"})
    assert r.status_code == 400 and "select" not in r.text.lower()


def test_key_of_unknown_role_is_refused(api, engine):
    name = f"odd-role-{uuid.uuid4().hex[:6]}"
    key = "cim_" + uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO cim_meta.api_key (name, key_prefix, key_hash, role) "
                             "VALUES (:n, :p, :h, 'superuser')"),
                     {"n": name, "p": key[:10], "h": hashlib.sha256(key.encode()).hexdigest()})
    assert api.get("/collections/people", headers={"X-API-Key": key}).status_code == 401


@pytest.fixture(scope="module")
def internal_people(settings, features_data, tmp_path_factory) -> Iterator[TestClient]:
    """The service with a catalog where ``people`` is only ``internal``: personal fields alone trigger the log."""
    from cim_service.core.settings import Settings

    folder = tmp_path_factory.mktemp("layers-internal-people")
    for path in Path(catalog_folder()).glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if path.stem == "people":
            text = text.replace("access: restricted", "access: internal")
        (folder / path.name).write_text(text, encoding="utf-8")
    app = create_app(Settings(database_url=settings.database_url, environment="test", home=settings.home,
                              layers_dir=folder))
    assert app.state.catalog.get("people").access.value == "internal"
    with TestClient(app) as client:
        yield client


def catalog_folder() -> Path:
    import layers

    return Path(layers.__file__).resolve().parent


def test_filtering_or_sorting_on_a_personal_field_is_logged(internal_people, officer, engine):
    """Regression: reads that use a personal field only in filter/sortby/equality were not written to the log."""
    client = internal_people
    before = access_log_count(engine)
    r = client.get("/collections/people/items", headers=officer, params={"properties": "gender", "limit": 3})
    assert r.status_code == 200 and access_log_count(engine) == before  # no personal field read: not logged
    for path, params in (
        ("/collections/people/items", {"properties": "gender", "filter": "id_number LIKE '3101%'"}),
        ("/collections/people/items", {"properties": "gender", "sortby": "-phone"}),
        ("/collections/people/items", {"properties": "gender", "name": "测试居民1"}),
        (tile_path(16), {"properties": "gender", "filter": "name LIKE '测试%'"}),
    ):
        before = access_log_count(engine)
        r = client.get(path, headers=officer, params=params)
        assert r.status_code == 200, (params, r.text[:200])
        assert access_log_count(engine) == before + 1, params
        with engine.connect() as conn:
            fields = conn.execute(sa.text("SELECT fields FROM cim_meta.access_log WHERE layer_id = 'people' "
                                          "ORDER BY id DESC LIMIT 1")).scalar_one()
        assert "gender" in fields and set(fields) & set(PERSONAL), (params, fields)


def test_multi_layer_properties_do_not_unlock_a_personal_field_of_the_same_name(auditor, personal_values):
    """``properties=name`` is valid because organisations has a (non-personal) ``name``; people must not get one."""
    r = auditor.get(tile_path(12, "/tiles"), params={"collections": "people,organisations", "properties": "name"})
    assert r.status_code == 200
    layers = decode(r.content)
    assert layers["organisations"]["features"]
    assert all("name" in f["properties"] for f in layers["organisations"]["features"])
    assert layers["people"]["features"] and all("name" not in f["properties"] for f in layers["people"]["features"])
    assert_no_personal(r.content.decode("utf-8", "replace"), personal_values, "multi-layer tile")
