"""Alert rules evaluated by the trigger on the latest readings, on a database of this module's own: levels with
hysteresis, site-kind levels, the offline sweep, the alert layer's feed, the NOTIFY contract; bad rules files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import create_api_key
from cim_service.core.catalog import Role
from cim_service.core.settings import Settings
from cim_service.sensing import alerts
from cim_service.store import alerts as store
from cim_service.store import observations, sta_entities
from cim_service.store.db import libpq_url
from cim_service.store.observations import Observation
from tests.live.conftest import wait_for

RULES = """
rules:
  - {id: water_depth, layer: waterlogging_sensors, property: water_depth, warning: 15, alarm: 30, hysteresis: 2,
     by: site_kind, levels: {地下空间: {warning: 5, alarm: 10}}, offline_minutes: 0.01}
  - {id: battery, layer: iot_nodes, property: battery, direction: below, warning: 20, alarm: 5, offline_minutes: null}
"""
#: (sensor_id, site kind, lon, lat)
SENSORS = [("W1", "小区道路", 121.38, 31.11), ("W2", "地下空间", 121.39, 31.12), ("W3", "公交站点", 121.45, 31.05)]


@pytest.fixture(scope="module")
def world(db, db_url, catalog, tmp_path_factory):
    """Three depth sensors (two inside a town), their datastreams, and the module's rules installed."""
    spec = catalog.get("waterlogging_sensors")
    towns = catalog.require_role(Role.town_boundaries)
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    rules = alerts.load_rules(path, catalog)
    settings = Settings(database_url=db_url, environment="test", alert_rules=path, gap_refresh=False)
    with db.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {towns.qualified_table} (feature_key, name, geom) VALUES "
                             "('t1', '甲镇', ST_Multi(ST_MakeEnvelope(121.3, 31.1, 121.4, 31.2, 4326)))"))
        for key, kind, lon, lat in SENSORS:
            conn.execute(sa.text(f"INSERT INTO {spec.qualified_table} (feature_key, sensor_id, site_kind, geom) "
                                 "VALUES (:k, :k, :kind, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                         {"k": key, "kind": kind, "x": lon, "y": lat})
        sta_entities.sync_layer(conn, spec)
        observations.ensure_partitions_around(conn, datetime.now(UTC), back_days=1)
        alerts.install(conn, catalog, rules, settings)
        ds = dict(conn.execute(sa.text(
            "SELECT t.feature_key, d.id FROM cim_sta.datastream d JOIN cim_sta.thing t ON t.id = d.thing_id "
            "WHERE d.catalog_key LIKE '%|water_depth'")).all())
    return {"ds": ds, "settings": settings, "t": [datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)]}


def write(db_url, world, datastream: int, *values: float, batch: bool = False) -> None:
    """Readings one second apart, each its own transaction (or all in one batch), as the bridge writes them."""
    rows = []
    for v in values:
        world["t"][0] += timedelta(seconds=1)
        rows.append(Observation(datastream, world["t"][0], float(v)))
    with psycopg.connect(libpq_url(db_url)) as conn:
        for chunk in ([rows] if batch else [[r] for r in rows]):
            with conn.transaction():
                observations.write_batch(conn, chunk)


def changes(db, datastream):
    with db.connect() as conn:
        return [(c["change"], c["severity"], c["value"]) for c in store.changes(conn, datastream)]


def test_hysteresis_raise_once_escalate_deescalate_clear(db, db_url, world):
    ds = world["ds"]["W1"]
    write(db_url, world, ds, 14, 15.5, 14.5, 15.2, 13.5, 16, 31, 29, 27.9, 14, 12.9)
    assert changes(db, ds) == [("raised", "warning", 15.5), ("updated", "warning", 16.0),
                               ("escalated", "alarm", 31.0), ("deescalated", "warning", 27.9),
                               ("cleared", "warning", 12.9)]
    with db.connect() as conn:
        assert store.active(conn, ds) == []
        row = conn.execute(sa.text("SELECT * FROM cim_sta.alert WHERE datastream_id = :d"), {"d": ds}).mappings().one()
    assert row["peak_value"] == 31.0 and row["town"] == "甲镇" and row["site_kind"] == "小区道路"
    assert row["cleared_at"] is not None and row["rule"] == "water_depth"


def test_one_batch_is_evaluated_on_its_newest_reading(db, db_url, world):
    ds = world["ds"]["W3"]
    write(db_url, world, ds, 40, 3, 20, batch=True)  # the latest value of the batch is 20: a warning
    assert changes(db, ds) == [("raised", "warning", 20.0)]
    write(db_url, world, ds, 1)
    assert changes(db, ds)[-1] == ("cleared", "warning", 1.0)


def test_site_kind_levels(db, db_url, world):
    road, basement = world["ds"]["W1"], world["ds"]["W2"]
    write(db_url, world, road, 7)
    write(db_url, world, basement, 7)
    with db.connect() as conn:
        assert store.active(conn, road) == []
        (a,) = store.active(conn, basement)
    assert a["severity"] == "warning" and a["site_kind"] == "地下空间"
    write(db_url, world, basement, 11)
    with db.connect() as conn:
        assert store.active(conn, basement)[0]["severity"] == "alarm"
    write(db_url, world, basement, 0)


def test_changes_are_notified_with_the_contract_payload(db, db_url, world):
    ds = world["ds"]["W1"]
    with psycopg.connect(libpq_url(db_url), autocommit=True) as listener:
        listener.execute(f"LISTEN {store.CHANNEL}")
        write(db_url, world, ds, 35, 0)
        got = [json.loads(n.payload) for n in listener.notifies(timeout=5, stop_after=2)]
    assert [(p["change"], p["severity"], p["value"]) for p in got] == [("raised", "alarm", 35.0),
                                                                       ("cleared", "alarm", 0.0)]
    assert all(tuple(p) == store.PAYLOAD_KEYS for p in got)
    assert got[0]["datastream"] == ds and got[0]["layer"] == "waterlogging_sensors" and got[0]["feature_id"]
    assert got[0]["property"] == "water_depth" and got[0]["time"].endswith("Z")


def test_offline_sweep_raises_and_a_reading_clears(db, db_url, world, catalog):
    ds = world["ds"]["W3"]
    write(db_url, world, ds, 2)
    later = datetime.now(UTC) + timedelta(seconds=5)  # the rule's offline time is 0.6 s
    with db.begin() as conn:
        assert store.sweep(conn, later) >= 1
        assert store.sweep(conn, later) == 0  # raised once
        (a,) = [x for x in store.active(conn, ds) if x["severity"] == "offline"]
    write(db_url, world, ds, 3)
    assert changes(db, ds)[-2:] == [("raised", "offline", None), ("cleared", "offline", 3.0)]
    # the alert layer holds every alert, its version moved on with them
    feed = catalog.require_role(Role.alert_feed)
    with db.connect() as conn:
        row = conn.execute(sa.text(f"SELECT severity, state, town, sensor_key FROM {feed.qualified_table} "
                                   "WHERE id = :i"), {"i": a["id"]}).mappings().one()
        n = conn.execute(sa.text("SELECT count(*) FROM cim_sta.alert")).scalar_one()
        count = conn.execute(sa.text("SELECT feature_count FROM cim_meta.layer_state WHERE layer_id = :l"),
                             {"l": feed.id}).scalar_one()
    assert dict(row) == {"severity": "offline", "state": "cleared", "town": None, "sensor_key": "W3"}
    assert count == n


def test_the_map_status_is_the_alert_severity(db, db_url, world):
    """Within the hysteresis band the item's status stays what the alert says (one source of levels)."""
    ds = world["ds"]["W1"]
    with TestClient(create_app(world["settings"])) as client:
        fid = client.get("/collections/waterlogging_sensors/items", params={"sensor_id": "W1"}).json()
        fid = fid["features"][0]["id"]
        for value, status in ((16, "warning"), (14, "warning"), (12, "ok"), (33, "alarm"), (29, "alarm")):
            write(db_url, world, ds, value)
            props = client.get(f"/collections/waterlogging_sensors/items/{fid}").json()["properties"]
            assert (props["latest_value"], props["status"]) == (value, status)
        write(db_url, world, ds, 0)


BAD = {
    "layer: nowhere": "unknown layer 'nowhere'",
    "layer: cameras": "is not a sensing layer",
    "property: rainfall": "observes no 'rainfall'",
    "by: colour": "has no field 'colour'",
    "direction: sideways": "direction",
    "warning: 40": "warning level must come before the alarm level",
}


@pytest.mark.parametrize("change", list(BAD))
def test_a_bad_rules_file_is_refused_in_one_line(change, catalog, tmp_path, settings):
    key, value = change.split(": ")
    rule = {"id": "r", "layer": "waterlogging_sensors", "property": "water_depth", "warning": 15, "alarm": 30,
            key: value}
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps({"rules": [rule]}), encoding="utf-8")
    with pytest.raises(alerts.AlertRulesError) as err:
        alerts.load_rules(path, catalog)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and BAD[change] in message, message
    with pytest.raises(alerts.AlertRulesError):  # the service does not start
        create_app(settings.model_copy(update={"alert_rules": path}))


def test_the_project_rules_load(catalog):
    rules = alerts.load_rules(None, catalog)
    depth = rules.get("waterlogging_sensors", "water_depth")
    assert (depth.warning, depth.alarm, depth.direction) == (15, 30, "above")
    assert rules.get("iot_nodes", "battery").direction == "below"


def test_waterlogging_events_per_town_indicator(db, db_url, world):
    """The indicator counts this year's level alerts of the water-depth rule per town (an independent count)."""
    with db.connect() as conn:
        expected = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE ST_Intersects(geom, ST_MakeEnvelope(121.3, 31.1, 121.4, 31.2, 4326))), "
            "count(*) FROM cim_sta.alert WHERE rule = 'water_depth' AND severity <> 'offline' "
            "AND raised_at >= date_trunc('year', now() AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai'"
        )).one()
    assert expected[1] >= 4
    with TestClient(create_app(world["settings"])) as client:
        body = client.get("/indicators/waterlogging_events").json()
        assert body["value"] == expected[1] and body["status"] == "not_met", body
        towns = {t["town"]: t for t in body["towns"]}
        assert towns["甲镇"]["value"] == expected[0]
        listed = {i["id"] for i in client.get("/indicators").json()["indicators"]}
        assert "waterlogging_events" in listed and len(listed) >= 15
        before = client.get("/indicators/waterlogging_events", params={"at": "2020-12-31"}).json()
        assert before["value"] == 0 and before["status"] == "met"
        write(db_url, world, world["ds"]["W1"], 50)  # a new event: the alert layer's version moves, so does the value
        assert client.get("/indicators/waterlogging_events").json()["value"] == expected[1] + 1
        write(db_url, world, world["ds"]["W1"], 0)


def _next_time(world) -> str:
    world["t"][0] += timedelta(seconds=1)
    return world["t"][0].isoformat()


def test_every_writer_raises_alerts_sta_post_data_array_and_the_service_sweeps(db, db_url, world, mqtt_url,
                                                                             tmp_path):
    """STA POST and dataArray write through the same latest upsert (the trigger); the service's maintenance
    thread runs the offline sweep every CIM_ALERT_SWEEP_S."""
    ds = world["ds"]["W3"]
    key = create_api_key(db, "alerts-sensor", "sensor")
    settings = world["settings"].model_copy(update={"sensor_bridge": True, "mqtt_url": mqtt_url, "home": tmp_path,
                                                    "alert_sweep_s": 1.0})
    with TestClient(create_app(settings)) as client:
        r = client.post("/sta/v1.1/Observations", headers={"X-API-Key": key},
                        json={"Datastream": {"@iot.id": ds}, "result": 33.0, "phenomenonTime": _next_time(world)})
        assert r.status_code == 201, r.text
        with db.connect() as conn:
            assert [a["severity"] for a in store.active(conn, ds)] == ["alarm"]
        rows = [[_next_time(world), v] for v in (20.0, 2.0)]
        r = client.post("/sta/v1.1/CreateObservations", headers={"X-API-Key": key},
                        json=[{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
                               "dataArray": rows}])
        assert r.status_code == 201, r.text
        assert changes(db, ds)[-2:] == [("raised", "alarm", 33.0), ("cleared", "alarm", 2.0)]

        def offline():
            with db.connect() as conn:
                return [a for a in store.active(conn, ds) if a["severity"] == "offline"]
        wait_for(offline, timeout=30)  # the rule's offline time is 0.6 s, the sweep runs every second
