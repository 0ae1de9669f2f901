"""Live state on the sensing layers: items and tiles carry the latest reading and a status that follows it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import mapbox_vector_tile
import morecantile
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app

from .conftest import publish, wait_for

WMQ = morecantile.tms.get("WebMercatorQuad")


def _reading(value: float) -> str:
    return json.dumps({"result": value, "phenomenonTime": datetime.now(UTC).isoformat()})


def _item(client: TestClient, fid: int) -> dict:
    r = client.get(f"/collections/waterlogging_sensors/items/{fid}", params={"f": "json"})
    assert r.status_code == 200, r.text
    return r.json()


def _tile_props(client: TestClient, feature: dict) -> tuple[dict, str]:
    lon, lat = feature["geometry"]["coordinates"]
    t = WMQ.tile(lon, lat, 16)
    r = client.get(f"/collections/waterlogging_sensors/tiles/WebMercatorQuad/16/{t.x}/{t.y}")
    assert r.status_code == 200, r.text
    feats = mapbox_vector_tile.decode(r.content)["waterlogging_sensors"]["features"]
    return next(f["properties"] for f in feats if f["id"] == feature["id"]), r.headers["cache-control"]


def _unread(engine, sensors) -> tuple[int, int]:
    with engine.connect() as conn:
        read = set(conn.execute(sa.text("SELECT datastream_id FROM cim_sta.latest")).scalars())
    return next((ds, fid) for ds, fid, _ in reversed(sensors) if ds not in read)


def test_items_and_tiles_follow_the_readings(live_settings, mqtt_url, engine, depth_sensors):
    ds, fid, _ = depth_sensors[0]
    never_ds, never_fid = _unread(engine, depth_sensors[1:])
    with TestClient(create_app(live_settings)) as client:
        assert client.app.state.sensing is not None
        silent = _item(client, never_fid)["properties"]
        assert silent["status"] == "offline" and silent["latest_value"] is None and silent["latest_time"] is None
        before, _ = _tile_props(client, _item(client, fid))  # the tile is rendered (and would be cached) first
        for value, status in ((20.0, "warning"), (35.5, "alarm"), (15.0, "warning"), (3.0, "ok")):
            publish(mqtt_url, ds, _reading(value))
            props = wait_for(lambda v=value: (p := _item(client, fid)["properties"])["latest_value"] == v and p)
            assert props["status"] == status, (value, props)
            assert datetime.fromisoformat(props["latest_time"]) > datetime.now(UTC).replace(year=2000)
            feature = _item(client, fid)
            tile_props, control = _tile_props(client, feature)
            assert tile_props["status"] == status and tile_props["latest_value"] == value
            assert control == "public, no-cache"
        assert before != tile_props
        # the page of items carries the same members
        r = client.get("/collections/waterlogging_sensors/items", params={"f": "json", "limit": 1000})
        by_id = {f["id"]: f["properties"] for f in r.json()["features"]}
        assert by_id[fid]["status"] == "ok" and by_id[fid]["latest_value"] == 3.0
        assert by_id[never_fid]["status"] == "offline"
        assert {"latest_value", "latest_time", "status"} <= set(by_id[never_fid])


def test_offline_after_the_configured_silence(live_settings, mqtt_url, engine, depth_sensors):
    ds, fid, _ = depth_sensors[2]
    with TestClient(create_app(live_settings.model_copy(update={"sensor_offline_s": 2.0}))) as client:
        publish(mqtt_url, ds, _reading(40.0))
        props = wait_for(lambda: (p := _item(client, fid)["properties"])["latest_value"] == 40.0 and p)
        assert props["status"] == "alarm"
        time.sleep(2.2)
        props = _item(client, fid)["properties"]
        assert props["status"] == "offline" and props["latest_value"] == 40.0  # the last value stays readable


def test_neuron_nodes_alarm_on_a_low_battery(live_settings, mqtt_url, engine, demo_database_url):
    with engine.connect() as conn:
        ds, fid = conn.execute(sa.text(
            "SELECT d.id, n.id FROM cim.iot_nodes n "
            "JOIN cim_sta.datastream d ON d.catalog_key = 'iot_nodes|' || n.feature_key || '|battery' "
            "ORDER BY n.id LIMIT 1")).one()
    with TestClient(create_app(live_settings)) as client:
        def props():
            return client.get(f"/collections/iot_nodes/items/{fid}", params={"f": "json"}).json()["properties"]
        for value, status in ((80.0, "ok"), (12.0, "warning"), (4.0, "alarm")):
            publish(mqtt_url, ds, _reading(value))
            p = wait_for(lambda v=value: (q := props())["latest_value"] == v and q)
            assert p["status"] == status, (value, p)


def test_other_layers_carry_no_live_members(live_settings):
    with TestClient(create_app(live_settings.model_copy(update={"sensor_bridge": False}))) as client:
        r = client.get("/collections/cameras/items", params={"f": "json", "limit": 3})
        assert r.status_code == 200
        assert all("status" not in f["properties"] for f in r.json()["features"])


def test_tilejson_describes_the_live_members(live_settings):
    with TestClient(create_app(live_settings.model_copy(update={"sensor_bridge": False}))) as client:
        doc = client.get("/collections/waterlogging_sensors/tiles/WebMercatorQuad/tilejson.json")
        assert doc.status_code == 200, doc.text
        fields = doc.json()["vector_layers"][0]["fields"]
        assert fields["status"] == "String" and fields["latest_value"] == "Number" and "site_kind" in fields
        cameras = client.get("/collections/cameras/tiles/WebMercatorQuad/tilejson.json").json()
        assert "status" not in cameras["vector_layers"][0]["fields"]


def test_every_items_format_of_a_sensing_layer_answers(live_settings):
    with TestClient(create_app(live_settings.model_copy(update={"sensor_bridge": False}))) as client:
        for f in ("json", "html", "csv"):
            r = client.get("/collections/waterlogging_sensors/items", params={"f": f, "limit": 5})
            assert r.status_code == 200, (f, r.text[:300])
        r = client.get("/collections/waterlogging_sensors/items", params={"f": "json", "limit": 5,
                                                                          "sortby": "-sensor_id"})
        assert r.status_code == 200 and all("status" in x["properties"] for x in r.json()["features"])
        nxt = next(link["href"] for link in r.json()["links"] if link["rel"] == "next")
        page2 = client.get(nxt.replace("http://testserver", ""))
        assert page2.status_code == 200 and len(page2.json()["features"]) == 5
        assert all("status" in x["properties"] for x in page2.json()["features"])
