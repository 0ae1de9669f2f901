"""``?expand=`` on a standard address: its houses, organisations and residents, each with its access rules."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cim_service.auth import create_api_key
from cim_service.core.catalog import Role
from cim_service.store.layer_state import bump_version

from .conftest import rows


@pytest.fixture(scope="module")
def linked(geo_engine, catalog, address_table):
    """Two houses, one organisation and three residents at one real address; one house elsewhere."""
    a, b = rows(geo_engine, f"SELECT id, address_code, ST_X(geom) x, ST_Y(geom) y FROM {address_table} "
                            f"ORDER BY id LIMIT 2")
    layers = {layer.id: layer for layer, _, _ in catalog.links_to(catalog.require_role(Role.standard_addresses))}
    assert {"houses", "organisations", "people"} <= set(layers)
    with geo_engine.begin() as conn:
        pt = "ST_SetSRID(ST_MakePoint(:x, :y), 4326)"
        for key, code in (("h1", a.address_code), ("h2", a.address_code), ("h3", b.address_code)):
            conn.execute(sa.text(f"INSERT INTO {layers['houses'].qualified_table} (feature_key, house_id, "
                                 f"address_code, use, floors, geom) VALUES (:k, :k, :c, 'residential', 6, {pt})"),
                         {"k": f"gx-{key}", "c": code, "x": a.x, "y": a.y})
        conn.execute(sa.text(f"INSERT INTO {layers['organisations'].qualified_table} (feature_key, org_id, "
                             f"address_code, name, category, geom) "
                             f"VALUES ('gx-o1', 'O1', :c, '测试商店', 'shop', {pt})"),
                     {"c": a.address_code, "x": a.x, "y": a.y})
        for i in range(3):
            conn.execute(sa.text(f"INSERT INTO {layers['people'].qualified_table} (feature_key, person_id, "
                                 f"address_code, name, id_number, phone, gender, birth_year, residence_type, geom) "
                                 f"VALUES (:k, :k, :c, :n, '31011219800101123X', '13900000000', 'F', 1980, "
                                 f"'resident', {pt})"),
                         {"k": f"gx-p{i}", "c": a.address_code, "n": f"测试居民{i}", "x": a.x, "y": a.y})
        for layer in layers.values():
            bump_version(conn, layer.id, layer.qualified_table)
    keys = {role: create_api_key(geo_engine, f"geocode-expand-{role}", role) for role in ("analyst", "officer")}
    return {"address": a, "keys": keys, "collection": catalog.require_role(Role.standard_addresses).id}


def _get(api, linked, expand, key=None, **params):
    headers = {"X-API-Key": linked["keys"][key]} if key else {}
    return api.get(f"/collections/{linked['collection']}/items/{linked['address'].id}",
                   params={"expand": expand, **params}, headers=headers)


def test_anonymous_gets_the_public_houses(geo_api, linked):
    r = _get(geo_api, linked, "houses")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == linked["address"].id
    houses = doc["expanded"]["houses"]
    assert houses["numberReturned"] == 2 == houses["numberMatched"]
    assert {f["properties"]["house_id"] for f in houses["features"]} == {"gx-h1", "gx-h2"}


@pytest.mark.parametrize("layer", ["organisations", "people"])
def test_anonymous_cannot_expand_what_it_may_not_read(geo_api, linked, layer):
    r = _get(geo_api, linked, layer)
    assert r.status_code == 400 and "expand" in r.json()["description"]
    assert layer not in r.json()["description"].split("linked:")[-1]  # not offered as a link


def test_analyst_gets_organisations_but_not_people(geo_api, linked):
    doc = _get(geo_api, linked, "houses,organisations", "analyst").json()
    assert [f["properties"]["name"] for f in doc["expanded"]["organisations"]["features"]] == ["测试商店"]
    r = _get(geo_api, linked, "people", "analyst")
    assert r.status_code == 400


def test_officer_gets_people_with_personal_fields_and_is_logged(geo_api, geo_engine, linked):
    before = rows(geo_engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'expand'")[0][0]
    r = _get(geo_api, linked, "people", "officer", crs="gcj02")
    assert r.status_code == 200, r.text
    people = r.json()["expanded"]["people"]
    assert people["numberReturned"] == 3
    assert {f["properties"]["name"] for f in people["features"]} == {"测试居民0", "测试居民1", "测试居民2"}
    assert all(f["properties"]["id_number"] for f in people["features"])
    log = rows(geo_engine, "SELECT principal, layer_id, fields FROM cim_meta.access_log WHERE action = 'expand' "
                           "ORDER BY id DESC LIMIT 1")
    assert rows(geo_engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'expand'")[0][0] == before + 1
    assert log[0].principal == "geocode-expand-officer" and "id_number" in log[0].fields


@pytest.mark.parametrize("expand", ["", "cameras", "houses,nope"])
def test_unknown_expand_is_400(geo_api, linked, expand):
    r = _get(geo_api, linked, expand)
    assert r.status_code == 400 and "expand" in r.json()["description"]


def test_expand_on_a_layer_nothing_links_to_is_400(geo_api, linked, geo_engine, catalog):
    towns = catalog.require_role(Role.town_boundaries)
    fid = rows(geo_engine, f"SELECT min(id) FROM {towns.qualified_table}")[0][0]
    r = geo_api.get(f"/collections/{towns.id}/items/{fid}", params={"expand": "houses"})
    assert r.status_code == 400


def test_expand_in_html_and_with_properties(geo_api, linked):
    r = _get(geo_api, linked, "houses", f="html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    doc = _get(geo_api, linked, "houses", properties="address_code").json()
    assert set(doc["properties"]) == {"address_code"}  # properties= selects the address's own fields
    assert doc["expanded"]["houses"]["numberReturned"] == 2


def test_etag_covers_the_expanded_records(geo_api, geo_engine, catalog, linked):
    r1 = _get(geo_api, linked, "houses")
    plain = geo_api.get(
        f"/collections/{linked['collection']}/items/{linked['address'].id}")
    assert r1.headers["etag"] != plain.headers["etag"]
    assert _get(geo_api, linked, "houses").headers["etag"] == r1.headers["etag"]
    houses = catalog.get("houses")
    with geo_engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {houses.qualified_table} SET floors = floors + 1 WHERE feature_key = 'gx-h1'"))
    r2 = geo_api.get(f"/collections/{linked['collection']}/items/{linked['address'].id}",
                     params={"expand": "houses"}, headers={"If-None-Match": r1.headers["etag"]})
    assert r2.status_code == 200 and r2.headers["etag"] != r1.headers["etag"]  # a linked record changed


def test_expand_with_at_is_400(geo_api, linked):
    r = _get(geo_api, linked, "houses", at="2026-01-01T00:00:00Z")
    assert r.status_code == 400 and "expand" in r.json()["description"]
