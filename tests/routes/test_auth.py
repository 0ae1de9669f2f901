"""Access control: anonymous/analyst/officer visibility, personal fields, API keys, the access log."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa

from cim_service.auth import ANONYMOUS, ROLES, Principal, can_read_layer, create_api_key, revoke_api_key, visible_fields
from cim_service.errors import InvalidParameter
from tests.routes.conftest import db_count


def test_anonymous_sees_only_public_layers(api, catalog):
    collections = api.get("/collections").json()["collections"]
    listed = {c["id"] for c in collections if c["itemType"] == "feature"}  # rasters (coverages) are public too
    public = {s.id for s in catalog if s.access.value == "public"}
    assert listed == public
    for path in ("/collections/people", "/collections/people/items", "/collections/people/queryables",
                 "/collections/organisations/items", "/collections/people/items/1"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.json()["description"] == f"collection {path.split('/')[2]!r} not found"  # same as unknown ids


def test_analyst_reads_internal_not_restricted(api, analyst):
    listed = {c["id"] for c in api.get("/collections", headers=analyst).json()["collections"]}
    assert "organisations" in listed and "people" not in listed
    doc = api.get("/collections/organisations/items", headers=analyst, params={"filter": "employees >= 20"}).json()
    assert doc["numberReturned"] >= 2 and all(f["properties"]["employees"] >= 20 for f in doc["features"])
    assert api.get("/collections/people/items", headers=analyst).status_code == 404


def test_officer_reads_people_with_personal_fields_and_is_logged(api, officer, engine):
    before = db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE layer_id = 'people'")
    r = api.get("/collections/people/items", headers=officer,
                params={"filter": "name LIKE '测试居民%'", "sortby": "-name", "limit": 10})
    assert r.status_code == 200, r.text
    feats = r.json()["features"]
    assert len(feats) == 4 and feats[0]["properties"]["name"] == "测试居民4"
    assert feats[0]["properties"]["id_number"] == "31011219800101123X"
    props = api.get("/collections/people/queryables", headers=officer).json()["properties"]
    assert "id_number" in props
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT principal, role, action, fields, detail FROM cim_meta.access_log "
            "WHERE layer_id = 'people' ORDER BY id DESC LIMIT 1")).one()
    assert db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE layer_id = 'people'") == before + 1
    assert row.principal.startswith("test-officer-") and row.role == "officer" and row.action == "items"
    assert "id_number" in row.fields and row.detail["returned"] == 4


def test_public_reads_without_personal_fields_are_not_logged(api, engine):
    before = db_count(engine, "SELECT count(*) FROM cim_meta.access_log")
    assert api.get("/collections/cameras/items", params={"limit": 2}).status_code == 200
    assert db_count(engine, "SELECT count(*) FROM cim_meta.access_log") == before


def test_single_item_of_people_is_logged(api, officer, engine):
    with engine.connect() as conn:
        fid = conn.execute(sa.text("SELECT id FROM cim.people WHERE person_id = 'FP1'")).scalar_one()
    before = db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'item'")
    r = api.get(f"/collections/people/items/{fid}", headers=officer)
    assert r.status_code == 200 and r.json()["properties"]["name"] == "测试居民1"
    assert db_count(engine, "SELECT count(*) FROM cim_meta.access_log WHERE action = 'item'") == before + 1


def test_personal_fields_hidden_without_scope():
    from cim_service.core.catalog import load_catalog

    people = load_catalog().get("people")
    restricted_only = Principal("auditor", "custom", frozenset({"internal", "restricted"}))
    assert can_read_layer(people, restricted_only)
    names = [f.name for f in visible_fields(people, restricted_only)]
    assert "name" not in names and "id_number" not in names and "phone" not in names and "gender" in names
    officer = Principal("o", "officer", ROLES["officer"])
    assert {"name", "id_number", "phone"} <= {f.name for f in visible_fields(people, officer)}
    assert not can_read_layer(people, ANONYMOUS)


def test_personal_field_is_an_unknown_property_without_scope(settings, features_data, engine):
    """A principal with `restricted` but not `personal_data` cannot select, filter or sort on personal fields."""
    from fastapi.testclient import TestClient

    from cim_service.app import create_app
    from cim_service.auth import get_principal

    app = create_app(settings)
    app.dependency_overrides[get_principal] = lambda: Principal("auditor", "custom",
                                                                 frozenset({"internal", "restricted"}))
    with TestClient(app) as client:
        doc = client.get("/collections/people/items", params={"limit": 5}).json()
        assert doc["features"] and all("name" not in f["properties"] and "id_number" not in f["properties"]
                                       for f in doc["features"])
        assert "phone" not in client.get("/collections/people/queryables").json()["properties"]
        for params in ({"filter": "id_number = '31011219800101123X'"}, {"sortby": "name"},
                       {"properties": "phone"}, {"name": "测试居民1"}):
            r = client.get("/collections/people/items", params=params)
            assert r.status_code == 400 and "unknown" in r.json()["description"], params


def test_bad_and_revoked_keys_are_401(api, engine):
    assert api.get("/collections", headers={"X-API-Key": "cim_not-a-key"}).status_code == 401
    assert api.get("/collections", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    name = f"revoke-me-{uuid.uuid4().hex[:6]}"
    key = create_api_key(engine, name, "analyst")
    assert api.get("/collections/organisations", headers={"X-API-Key": key}).status_code == 200
    assert revoke_api_key(engine, name) is True
    r = api.get("/collections/organisations", headers={"X-API-Key": key})
    assert r.status_code == 401 and r.json()["code"] == "NotAuthenticated"
    assert revoke_api_key(engine, name) is False


def test_keys_are_stored_hashed(engine):
    name = f"hash-check-{uuid.uuid4().hex[:6]}"
    key = create_api_key(engine, name, "officer")
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT key_prefix, key_hash, role FROM cim_meta.api_key WHERE name = :n"),
                           {"n": name}).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() and key.startswith(row.key_prefix)
    assert len(row.key_prefix) < 12 and row.role == "officer"
    with pytest.raises(InvalidParameter):
        create_api_key(engine, name, "officer")
    with pytest.raises(InvalidParameter):
        create_api_key(engine, "x" + name, "superuser")


def test_cim_keys_commands(settings, monkeypatch):
    from typer.testing import CliRunner

    from cim_service.cli import app

    monkeypatch.setenv("CIM_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    name = f"cli-{uuid.uuid4().hex[:6]}"
    created = runner.invoke(app, ["keys", "create", name, "--role", "officer"])
    assert created.exit_code == 0, created.output
    assert created.output.strip().startswith("cim_")
    listed = runner.invoke(app, ["keys", "list"])
    assert name in listed.output and "officer" in listed.output and created.output.strip() not in listed.output
    assert runner.invoke(app, ["keys", "revoke", name]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", name])
    assert again.exit_code != 0
