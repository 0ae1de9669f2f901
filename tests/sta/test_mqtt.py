"""Subscribers of the SensorThings entity-set topics receive what is created over HTTP (real Mosquitto)."""

from __future__ import annotations

import queue
import time
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.sensing.broker import MqttEndpoint
from tests.sta.conftest import STA, thing_body


def _subscriber(mqtt_url: str, topics: list[str]) -> tuple[mqtt.Client, queue.Queue]:
    ep = MqttEndpoint.parse(mqtt_url)
    got: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sta-test-sub", protocol=mqtt.MQTTv5)
    client.username_pw_set(ep.username, ep.password)
    subscribed = queue.Queue()
    client.on_message = lambda c, u, m: got.put((m.topic, orjson.loads(m.payload)))
    client.on_subscribe = lambda c, u, mid, rc, p: subscribed.put(mid)
    client.connect(ep.host, ep.port)
    client.loop_start()
    client.subscribe([(t, 0) for t in topics])
    subscribed.get(timeout=10)
    return client, got


def test_created_entities_reach_entity_set_subscribers(settings, mqtt_url, keys):
    sub, got = _subscriber(mqtt_url, ["v1.1/Things", "v1.1/Observations", "v1.1/Datastreams"])
    try:
        with TestClient(create_app(settings.model_copy(update={"mqtt_url": mqtt_url}))) as api:
            publisher = api.app.state.sta_publisher
            deadline = time.monotonic() + 10
            while not publisher.client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert publisher.client.is_connected()
            h = {"X-API-Key": keys["sensor"]}
            r = api.post(f"{STA}/Things", json=thing_body("Published", 121.41, 31.11), headers=h)
            assert r.status_code == 201
            topic, doc = got.get(timeout=10)
            assert topic == "v1.1/Things" and doc["@iot.id"] == r.json()["@iot.id"] and doc["name"] == "Published"
            ds = api.get(f"{STA}/Things({doc['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
            t = (datetime.now(UTC) - timedelta(seconds=3)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            r = api.post(f"{STA}/Datastreams({ds})/Observations", json={"phenomenonTime": t, "result": 7.25},
                         headers=h)
            assert r.status_code == 201
            topic, obs = got.get(timeout=10)
            assert topic == "v1.1/Observations"
            assert obs["@iot.id"] == r.json()["@iot.id"] and obs["result"] == 7.25 and obs["phenomenonTime"] == t
            assert got.empty()  # the bridge's inbound topics are not published to by the API
    finally:
        sub.loop_stop()
        sub.disconnect()
