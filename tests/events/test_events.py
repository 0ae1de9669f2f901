"""``GET /events`` end to end on a real server: a reading published with Debian's ``mosquitto_pub`` and an STA
POST reach the subscribers of their datastream (observation, then the alert it raised); subscriptions filter;
bad parameters are 400; a restricted layer's datastreams and alerts need a key; more streams than allowed is 503;
HEAD opens no stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from cim_service.auth import create_api_key
from tests.alerts.conftest import fresh_sensor
from tests.events.conftest import RESTRICTED_SENSING
from tests.live.conftest import publish


def _reading(value: float) -> str:
    return json.dumps({"result": value, "phenomenonTime": datetime.now(UTC).isoformat()})


def _of(ds: int, kind: str):
    return lambda e: e.get("event") == kind and e["data"].get("datastream") == ds


def test_a_published_alarm_reading_is_an_observation_and_an_alert_event(open_stream, events_url, mqtt_url, engine,
                                                                        depth_sensors):
    ds, fid, kind = fresh_sensor(engine, depth_sensors)
    other, _, _ = fresh_sensor(engine, depth_sensors)
    mine = open_stream({"datastreams": f"{ds}", "alerts": "true"})
    theirs = open_stream({"datastreams": f"{other}"})
    assert mine.status == 200 and mine.headers["content-type"].startswith("text/event-stream")
    assert mine.headers["cache-control"] == "no-cache" and "content-encoding" not in mine.headers
    assert mine.retry == 3000
    publish(mqtt_url, ds, _reading(42.5))
    obs = mine.next(_of(ds, "observation"))
    assert obs["data"]["result"] == 42.5 and obs["data"]["status"] == "alarm"
    assert obs["data"]["layer"] == "waterlogging_sensors" and obs["data"]["feature_id"] == fid
    assert obs["data"]["phenomenonTime"].endswith("Z")
    alert = mine.next(_of(ds, "alert"))
    assert (alert["data"]["change"], alert["data"]["severity"], alert["data"]["value"]) == ("raised", "alarm", 42.5)
    assert alert["data"]["site_kind"] == kind and alert["data"]["town"] and alert["data"]["lon"]
    assert alert["data"]["raised_at"] and alert["data"]["state"] == "active"
    assert alert["id"] != obs["id"] and all(isinstance(e["id"], int) for e in (alert, obs))
    # the other datastream's subscriber saw none of it
    assert not [e for e in theirs.drain(0.3) if e["event"] in ("observation", "alert")]
    # the reading falling back clears the alert: deescalated, then cleared
    publish(mqtt_url, ds, _reading(1.0))
    assert mine.next(_of(ds, "observation"))["data"]["status"] == "ok"
    assert mine.next(_of(ds, "alert"))["data"]["change"] == "cleared"
    assert any(c == ": heartbeat" for c in theirs.comments)  # a quiet stream keeps sending heartbeats
    metrics = httpx.get(f"{events_url}/metrics", timeout=10).text
    sent = [ln for ln in metrics.splitlines() if ln.startswith('cim_events_sent_total{type="alert"}')]
    assert sent and float(sent[0].rsplit(" ", 1)[1]) >= 2
    streams = [ln for ln in metrics.splitlines() if ln.startswith("cim_events_streams ")]
    assert streams and float(streams[0].rsplit(" ", 1)[1]) >= 2


def test_an_sta_post_reaches_the_datastream_subscribers(open_stream, events_url, engine, depth_sensors):
    ds, _, _ = fresh_sensor(engine, depth_sensors)
    key = create_api_key(engine, "events-sensor", "sensor")
    stream = open_stream({"datastreams": str(ds)})
    r = httpx.post(f"{events_url}/sta/v1.1/Datastreams({ds})/Observations", headers={"X-API-Key": key},
                   json={"phenomenonTime": datetime.now(UTC).isoformat(), "result": 7.25})
    assert r.status_code == 201, r.text
    obs = stream.next(_of(ds, "observation"))
    assert obs["data"]["result"] == 7.25 and obs["data"]["status"] == "ok"


def test_layer_subscribers_get_the_layers_version_changes(open_stream, events_url, engine):
    stream = open_stream({"layers": "cameras"})
    others = open_stream({"layers": "base_stations"})
    with engine.begin() as conn:
        version = conn.execute(sa.text(
            "UPDATE cim_meta.layer_state SET version = version + 1 WHERE layer_id = 'cameras' RETURNING version"
        )).scalar_one()
    event = stream.next(lambda e: e["event"] == "layer")
    assert event["data"] == {"layer": "cameras", "version": version}
    assert not [e for e in others.drain(0.3) if e["event"] == "layer"]


BAD = [
    ({}, "subscribe"), ({"datastreams": ""}, "datastreams"), ({"datastreams": "1,x"}, "datastreams"),
    ({"datastreams": "0"}, "datastreams"), ({"datastreams": "99999999999"}, "datastreams"),
    ({"datastreams": ",".join(str(i) for i in range(1, 30))}, "at most 20"),
    ({"datastreams": "2147483000"}, "no datastream 2147483000"), ({"layers": "nowhere"}, "layers"),
    ({"layers": "people"}, "layers"), ({"alerts": "yes"}, "alerts"), ({"alerts": "true", "datastream": "1"},
                                                                    "'datastream' is not known"),
]


def test_bad_parameters_are_400_naming_them(events_url):
    for params, words in BAD:
        for method in ("GET", "HEAD"):
            r = httpx.request(method, f"{events_url}/events", params=params, timeout=10)
            assert r.status_code == 400, (params, method, r.status_code)
            if method == "GET":
                assert words in r.json()["description"], (params, r.text)
    r = httpx.get(f"{events_url}/events?alerts=true&alerts=false", timeout=10)
    assert r.status_code == 400 and "twice" in r.json()["description"]


def test_a_restricted_layers_datastreams_and_alerts_need_a_key(open_stream, events_url, engine):
    with engine.connect() as conn:
        ds = conn.execute(sa.text(
            "SELECT d.id FROM cim_sta.datastream d JOIN cim_sta.thing t ON t.id = d.thing_id "
            "WHERE t.layer_id = :l ORDER BY d.id LIMIT 1"), {"l": RESTRICTED_SENSING}).scalar_one()
    officer = {"X-API-Key": create_api_key(engine, "events-officer", "officer")}
    r = httpx.get(f"{events_url}/events", params={"datastreams": str(ds)}, timeout=10)
    assert r.status_code == 400 and f"no datastream {ds}" in r.json()["description"]
    assert httpx.head(f"{events_url}/events", params={"layers": RESTRICTED_SENSING}).status_code == 400
    head = httpx.head(f"{events_url}/events", params={"datastreams": str(ds)}, headers=officer, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")
    # an alert of the restricted layer reaches the officer's stream only
    anonymous = open_stream({"alerts": "true"})
    allowed = open_stream({"alerts": "true", "datastreams": str(ds)}, officer)
    with engine.begin() as conn:
        alert_id = conn.execute(sa.text(
            "INSERT INTO cim_sta.alert (datastream_id, rule, layer_id, property, severity, raised_at, updated_at, "
            "cleared_at, value) VALUES (:ds, 'test', :l, 'battery', 'warning', now(), now(), now(), 3) RETURNING id"),
            {"ds": ds, "l": RESTRICTED_SENSING}).scalar_one()
        conn.execute(sa.text("SELECT pg_notify('cim_alert_changed', json_build_object('id', CAST(:id AS bigint), "
                             "'change', 'cleared', 'severity', 'warning', 'layer', CAST(:l AS text), "
                             "'datastream', CAST(:ds AS int), 'value', 3)::text)"),
                     {"id": alert_id, "l": RESTRICTED_SENSING, "ds": ds})
    event = allowed.next(lambda e: e["event"] == "alert" and e["data"]["id"] == alert_id)
    assert event["data"]["layer"] == RESTRICTED_SENSING and event["data"]["change"] == "cleared"
    assert not [e for e in anonymous.drain(0.5) if e["event"] == "alert" and e["data"]["id"] == alert_id]


def test_more_streams_than_allowed_is_503(open_stream, events_url):
    streams = [open_stream({"layers": "cameras"}) for _ in range(6)]
    assert all(s.status == 200 for s in streams)
    r = httpx.get(f"{events_url}/events", params={"layers": "cameras"}, timeout=10)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "retry later" in r.json()["description"]


def test_a_reconnection_with_last_event_id_starts_with_a_reset(open_stream):
    stream = open_stream({"layers": "cameras"}, {"Last-Event-ID": "41"})
    event = stream.next(lambda e: True, timeout=5)
    assert event["event"] == "reset" and event["data"]["final"] is False
