"""Things of a sensing layer follow the layer's access level: a restricted layer's Things are invisible."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.settings import PROJECT_ROOT
from tests.sta.conftest import STA


@pytest.fixture(scope="module")
def restricted_api(settings, engine, tmp_path_factory) -> Iterator[tuple[TestClient, dict]]:
    """The service with ``iot_nodes`` declared restricted, and one Thing of that layer with a Datastream."""
    layers = tmp_path_factory.mktemp("layers")
    for path in (PROJECT_ROOT / "layers").glob("*.yaml"):
        shutil.copy(path, layers / path.name)
    spec = yaml.safe_load((layers / "iot_nodes.yaml").read_text(encoding="utf-8"))
    assert spec.get("sensing"), "iot_nodes must be a sensing layer"
    spec["access"] = "restricted"
    (layers / "iot_nodes.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    key = f"acc-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        thing = conn.execute(sa.text(
            "INSERT INTO cim_sta.thing (name, description, layer_id, feature_key) "
            "VALUES ('secret node', 'restricted', 'iot_nodes', :k) RETURNING id"), {"k": key}).scalar_one()
        loc = conn.execute(sa.text(
            "INSERT INTO cim_sta.location (name, description, geom, catalog_key) VALUES ('n', 'n', "
            "ST_SetSRID(ST_MakePoint(121.4, 31.1), 4326), :c) RETURNING id"), {"c": f"iot_nodes|{key}"}).scalar_one()
        conn.execute(sa.text("INSERT INTO cim_sta.thing_location VALUES (:t, :l)"), {"t": thing, "l": loc})
        sensor = conn.execute(sa.text("INSERT INTO cim_sta.sensor (name, catalog_key) VALUES ('s', :c) "
                                      "ON CONFLICT (catalog_key) DO UPDATE SET name = excluded.name RETURNING id"),
                              {"c": "iot_nodes"}).scalar_one()
        prop = conn.execute(sa.text("INSERT INTO cim_sta.observed_property (name, catalog_key) VALUES ('p', :c) "
                                    "ON CONFLICT (catalog_key) DO UPDATE SET name = excluded.name RETURNING id"),
                            {"c": "iot_nodes/battery"}).scalar_one()
        ds = conn.execute(sa.text(
            "INSERT INTO cim_sta.datastream (name, thing_id, sensor_id, observed_property_id, catalog_key) "
            "VALUES ('battery', :t, :s, :p, :c) RETURNING id"),
            {"t": thing, "s": sensor, "p": prop, "c": f"iot_nodes|{key}|battery"}).scalar_one()
    app_settings = settings.model_copy(update={"layers_dir": layers})
    with TestClient(create_app(app_settings)) as client:
        yield client, {"thing": thing, "location": loc, "datastream": ds}
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cim_sta.thing WHERE id = :t"), {"t": thing})
        conn.execute(sa.text("DELETE FROM cim_sta.location WHERE id = :l"), {"l": loc})


def test_restricted_things_are_invisible_to_anonymous_and_internal_callers(restricted_api, keys):
    api, ids = restricted_api
    t, d, loc = ids["thing"], ids["datastream"], ids["location"]
    for headers in ({}, {"X-API-Key": keys["analyst"]}, {"X-API-Key": keys["sensor"]}):
        assert api.get(f"{STA}/Things({t})", headers=headers).status_code == 404
        assert t not in [x["@iot.id"] for x in api.get(f"{STA}/Things?$top=10000", headers=headers).json()["value"]]
        assert api.get(f"{STA}/Datastreams({d})", headers=headers).status_code == 404
        assert api.get(f"{STA}/Locations({loc})", headers=headers).status_code == 404
        assert api.get(f"{STA}/Things", headers=headers,
                       params={"$filter": "name eq 'secret node'"}).json()["value"] == []
        # not through a navigation path or an expand either
        hits = api.get(f"{STA}/Datastreams", headers=headers,
                       params={"$filter": "Thing/name eq 'secret node'"}).json()["value"]
        assert hits == []
        assert api.get(f"{STA}/Locations({loc})/Things", headers=headers).status_code == 404
    # and not writable: a POST under it is a 404 like a read
    r = api.post(f"{STA}/Datastreams({d})/Observations", json={"result": 1}, headers={"X-API-Key": keys["sensor"]})
    assert r.status_code == 404


def test_restricted_things_are_visible_with_the_scope(restricted_api, keys):
    api, ids = restricted_api
    t, d = ids["thing"], ids["datastream"]
    for key in (keys["officer"], keys["admin"]):
        h = {"X-API-Key": key}
        doc = api.get(f"{STA}/Things({t})?$expand=Datastreams,Locations", headers=h).json()
        assert doc["name"] == "secret node" and [x["@iot.id"] for x in doc["Datastreams"]] == [d]
        hits = api.get(f"{STA}/Datastreams", headers=h, params={"$filter": "Thing/name eq 'secret node'"}).json()
        assert [x["@iot.id"] for x in hits["value"]] == [d]
