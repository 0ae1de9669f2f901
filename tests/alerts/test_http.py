"""Alerts over HTTP, end to end: a reading published with Debian's ``mosquitto_pub`` through the session broker
raises an alert visible at ``/alerts``, in the alerts collection and on the sensor's item; bad parameters are 400."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from cim_service.app import create_app
from tests.alerts.conftest import fresh_sensor
from tests.live.conftest import publish, wait_for


def _reading(value: float) -> str:
    return json.dumps({"result": value, "phenomenonTime": datetime.now(UTC).isoformat()})


def _mine(client: TestClient, ds: int, **params) -> list[dict]:
    r = client.get("/alerts", params={"layer": "waterlogging_sensors", "limit": 1000, **params})
    assert r.status_code == 200, r.text
    return [a for a in r.json()["alerts"] if a["datastream"] == ds]


def test_an_alarm_reading_is_an_alert_at_alerts_and_in_the_collection(alert_settings, mqtt_url, engine,
                                                                        depth_sensors):
    ds, fid, kind = fresh_sensor(engine, depth_sensors)
    with TestClient(create_app(alert_settings)) as client:
        publish(mqtt_url, ds, _reading(42.5))
        (a,) = wait_for(lambda: _mine(client, ds))
        assert (a["severity"], a["state"], a["value"], a["peak_value"]) == ("alarm", "active", 42.5, 42.5)
        assert a["layer_title"] == {"zh": "积水监测设备", "en": "Waterlogging sensors"} and a["unit"] == "cm"
        assert a["feature_id"] == fid and a["site_kind"] == kind and a["town"]
        item = client.get(f"/collections/waterlogging_sensors/items/{fid}").json()
        assert [round(c, 6) for c in item["geometry"]["coordinates"]] == [round(a["lon"], 6), round(a["lat"], 6)]
        assert item["properties"]["status"] == "alarm"
        rels = {link["rel"]: link["href"] for link in a["links"]}
        assert rels["feature"].endswith(f"/collections/waterlogging_sensors/items/{fid}")
        assert rels["datastream"].endswith(f"/sta/v1.1/Datastreams({ds})")
        assert client.get(rels["datastream"]).status_code == 200
        # the OGC API collection: listed, the alert a point feature with the same filters
        assert "alerts" in {c["id"] for c in client.get("/collections").json()["collections"]}
        r = client.get("/collections/alerts/items", params={"state": "active", "severity": "alarm",
                                                            "datastream": ds, "f": "json"})
        assert r.status_code == 200, r.text
        (feat,) = r.json()["features"]
        assert feat["id"] == a["id"] and feat["geometry"]["type"] == "Point"
        assert feat["properties"]["town"] == a["town"] and feat["properties"]["value"] == 42.5
        cql = client.get("/collections/alerts/items", params={"filter": f"datastream = {ds} AND value > 40"})
        assert [f["id"] for f in cql.json()["features"]] == [a["id"]]
        lon, lat = a["lon"], a["lat"]
        inside = client.get("/alerts", params={"bbox": f"{lon - .001},{lat - .001},{lon + .001},{lat + .001}"})
        assert a["id"] in [x["id"] for x in inside.json()["alerts"]]
        assert a["id"] in [x["id"] for x in client.get("/alerts", params={"town": a["town"]}).json()["alerts"]]
        metrics = client.get("/metrics").text
        assert 'cim_alerts_active{severity="alarm"}' in metrics
        # falling below the levels less the hysteresis clears it; the history keeps every change
        publish(mqtt_url, ds, _reading(20.0))
        wait_for(lambda: _mine(client, ds)[0]["severity"] == "warning")
        publish(mqtt_url, ds, _reading(1.0))
        wait_for(lambda: not _mine(client, ds))
        (done,) = [x for x in _mine(client, ds, state="cleared")]
        detail = client.get(f"/alerts/{done['id']}").json()
        assert [h["change"] for h in detail["history"]] == ["raised", "deescalated", "cleared"]
        assert [h["value"] for h in detail["history"]] == [42.5, 20.0, 1.0]
        assert detail["cleared_at"] and detail["peak_value"] == 42.5
        assert client.get(f"/collections/alerts/items/{done['id']}").json()["properties"]["state"] == "cleared"


BAD = [
    {"state": "open"}, {"severity": "critical"}, {"layer": "cameras"}, {"layer": "nowhere"},
    {"bbox": "1,2,3"}, {"bbox": "121,31,120,32"}, {"bbox": "a,b,c,d"}, {"bbox": "0,0,200,10"},
    {"from": "yesterday"}, {"to": "2026-13-01"}, {"from": "2026-02-01", "to": "2026-01-01"},
    {"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"offset": "-1"}, {"f": "xml"},
    {"town": ",".join(f"x{i}" for i in range(60))},
]


def test_bad_parameters_are_400(alert_settings):
    with TestClient(create_app(alert_settings.model_copy(update={"sensor_bridge": False}))) as client:
        for params in BAD:
            r = client.get("/alerts", params=params)
            assert r.status_code == 400, (params, r.text)
            assert next(iter(params)) in r.json()["description"], (params, r.text)
        assert client.get("/alerts/abc").status_code == 404
        assert client.get("/alerts/999999999").status_code == 404
        assert client.get("/collections/alerts/items", params={"severity": "alarm", "limit": "0"}).status_code == 400
