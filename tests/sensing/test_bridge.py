"""The MQTT bridge on a real Mosquitto and PostGIS: published readings become committed rows, bad ones dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cim_service.store import observations

from .conftest import mosquitto_pub, wait_for


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rows(engine, ds: int) -> list[dict]:
    with engine.connect() as conn:
        return observations.fetch(conn, ds)


def test_mosquitto_pub_becomes_a_committed_row_and_latest(bridge_factory, engine, mqtt_url, depth_streams):
    bridge_factory()
    ds = depth_streams[0]
    t = datetime.now(UTC).replace(microsecond=123000) - timedelta(seconds=30)
    mosquitto_pub(mqtt_url, f"v1.1/Datastreams({ds})/Observations",
                  json.dumps({"phenomenonTime": _iso(t), "result": 17.5, "parameters": {"unit": "cm"}}))
    rows = wait_for(lambda: _rows(engine, ds))
    assert [(r["phenomenon_time"], r["result"]) for r in rows] == [(t, 17.5)]
    assert rows[0]["id"] == observations.observation_id(ds, t)
    assert observations.split_observation_id(rows[0]["id"]) == (ds, t)
    with engine.connect() as conn:
        latest = observations.latest(conn, ds)
    assert (latest["phenomenon_time"], latest["result"]) == (t, 17.5)


def test_bad_payloads_go_to_the_dead_letter_table(bridge_factory, engine, mqtt_url, depth_streams):
    bridge = bridge_factory()
    ds = depth_streams[1]
    now = datetime.now(UTC)
    bad = {
        "not_json": b"\xff\xfe not json {",
        "bad_type": json.dumps({"result": "deep"}),
        "unit": json.dumps({"result": 3.0, "unitOfMeasurement": {"symbol": "mm"}}),
        "time_range": json.dumps({"result": 3.0, "phenomenonTime": _iso(now + timedelta(days=3))}),
        "out_of_range": json.dumps({"result": -5.0}),
    }
    for payload in bad.values():
        mosquitto_pub(mqtt_url, f"v1.1/Datastreams({ds})/Observations", payload)
    mosquitto_pub(mqtt_url, "v1.1/Datastreams(2147480000)/Observations", json.dumps({"result": 1.0}))
    mosquitto_pub(mqtt_url, f"v1.1/Datastreams({ds})/Observations",
                  json.dumps({"result": 4.0, "phenomenonTime": _iso(now - timedelta(days=400))}))
    # the bridge goes on: a good reading after the bad ones is committed
    good_t = now.replace(microsecond=0) - timedelta(seconds=5)
    mosquitto_pub(mqtt_url, f"v1.1/Datastreams({ds})/Observations",
                  json.dumps({"result": 2.5, "phenomenonTime": _iso(good_t)}))
    wait_for(lambda: _rows(engine, ds))
    with engine.connect() as conn:
        letters = conn.execute(sa.text(
            "SELECT reason, payload FROM cim_sta.dead_letter WHERE topic LIKE :t ORDER BY id"),
            {"t": f"v1.1/Datastreams({ds})/%"}).all()
        unknown = conn.execute(sa.text(
            "SELECT count(*) FROM cim_sta.dead_letter WHERE reason = 'unknown_datastream' "
            "AND topic = 'v1.1/Datastreams(2147480000)/Observations'")).scalar_one()
    assert [r.reason for r in letters] == ["not_json", "bad_type", "unit", "time_range", "out_of_range",
                                           "time_range"]
    assert bytes(letters[0].payload) == bad["not_json"]
    assert unknown == 1
    assert [r["result"] for r in _rows(engine, ds)] == [2.5]
    assert bridge.stats.rejected["time_range"] == 2 and bridge.stats.rejected["unknown_datastream"] == 1
