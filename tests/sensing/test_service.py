"""The data plane in the service (lifespan: bridge + maintenance, /metrics), compaction and the simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.sensing import simulate as sim
from cim_service.sensing.service import maintain
from cim_service.store import observations, sta_entities
from cim_service.store.observations import Observation

from .conftest import mosquitto_pub, wait_for


def test_service_runs_the_bridge_and_counts_rejections(demo_database_url, sensing_settings, mqtt_url, engine,
                                                       depth_streams, tmp_path):
    settings = sensing_settings.model_copy(update={"sensor_bridge": True, "mqtt_url": mqtt_url, "home": tmp_path,
                                                   "gap_refresh": False})
    ds = depth_streams[3]
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=7)
    with TestClient(create_app(settings)) as client:
        assert client.app.state.sensing is not None
        mosquitto_pub(mqtt_url, f"v1.1/Datastreams({ds})/Observations", b"not json at all")
        mosquitto_pub(mqtt_url, f"v1.1/Datastreams({ds})/Observations",
                      json.dumps({"result": 12.0, "phenomenonTime": t.isoformat()}))
        wait_for(lambda: any(r["phenomenon_time"] == t for r in _rows(engine, ds)))
        text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith('cim_sensor_rejected_total{reason="not_json"}'))
    assert float(line.split()[-1]) >= 1
    assert any(x.startswith("cim_sensor_observations_total") and float(x.split()[-1]) >= 1 for x in text.splitlines())
    with engine.connect() as conn:  # the partitions of the coming days exist
        days = observations.partition_days(conn)
    assert datetime.now(UTC).date() + timedelta(days=3) in days


def _rows(engine, ds):
    with engine.connect() as conn:
        return observations.fetch(conn, ds)


def test_compaction_keeps_raw_days_and_hourly_aggregates_beyond(demo_database_url, engine, settings, depth_streams):
    ds = depth_streams[4]
    now = datetime.now(UTC)
    old_day = (now - timedelta(days=settings.sensor_raw_days + 2)).replace(hour=5, minute=0, second=0, microsecond=0)
    recent = now.replace(microsecond=0) - timedelta(days=1)
    rows = [Observation(ds, old_day + timedelta(minutes=10 * i), float(i)) for i in range(12)]  # 05:00-06:50
    rows.append(Observation(ds, recent, 99.0))
    with engine.begin() as conn:
        observations.ensure_partitions(conn, {o.phenomenon_time.date() for o in rows})
        observations.write_batch(conn.connection.driver_connection, rows)
    report = maintain(engine, settings, now=now)
    assert old_day.date() in report.days_compacted
    with engine.connect() as conn:
        assert old_day.date() not in observations.partition_days(conn)
        hourly = observations.hourly(conn, ds)
        raw = observations.fetch(conn, ds)
    assert [(h["hour"], h["n"], h["min"], h["max"], h["sum"], h["first"], h["last"]) for h in hourly] == [
        (old_day, 6, 0.0, 5.0, 15.0, 0.0, 5.0), (old_day + timedelta(hours=1), 6, 6.0, 11.0, 51.0, 6.0, 11.0)]
    assert recent in [r["phenomenon_time"] for r in raw]
    assert all(r["phenomenon_time"] >= now - timedelta(days=settings.sensor_raw_days) for r in raw)


def test_simulator_is_deterministic_and_tells_the_rain_story(demo_database_url, engine, catalog):
    rows = []
    with engine.connect() as conn:
        for spec in catalog.sensing_layers:
            rows += sta_entities.catalog_datastreams(conn, spec.id)
    a = sim.build_nodes(rows, seed=7, nodes=None, silent_share=0.1)
    b = sim.build_nodes(rows, seed=7, nodes=None, silent_share=0.1)
    assert [(n.key, n.battery, n.hollow, n.silent_after) for n in a] == [
        (n.key, n.battery, n.hollow, n.silent_after) for n in b]
    assert any(n.silent_after is not None for n in a) and any(n.silent_after is None for n in a)
    clock = iter([1_800_000_000.0]).__next__
    cell = sim.RainCell(period_s=1200)
    out = list(sim.schedule(a, interval_s=60, duration_s=1200, seed=7, rain=cell, clock=clock))
    again = list(sim.schedule(sim.build_nodes(rows, seed=7, nodes=None, silent_share=0.1), interval_s=60,
                              duration_s=1200, seed=7, rain=cell, clock=iter([1_800_000_000.0]).__next__))
    assert out == again
    assert [due for due, _ in out] == sorted(due for due, _ in out)
    depth_ids = {r["id"]: r["feature_key"] for r in rows if r["property"] == "water_depth"}
    series: dict[int, list[float]] = {}
    battery: dict[int, list[float]] = {}
    battery_ids = {r["id"] for r in rows if r["property"] == "battery"}
    for _due, msgs in out:
        for ds, body in msgs:
            v = json.loads(body)["result"]
            if ds in depth_ids:
                series.setdefault(ds, []).append(v)
            if ds in battery_ids:
                battery.setdefault(ds, []).append(v)
    peaks = {ds: max(v) for ds, v in series.items()}
    assert max(peaks.values()) > 15       # the cell floods some sites beyond the warning level
    drained = [s[-1] < max(s) for s in series.values() if max(s) > 5 and s.index(max(s)) < 0.75 * len(s)]
    assert drained and all(drained)       # and the water drains again after the cell passed
    assert all(v == sorted(v, reverse=True) for v in battery.values())
    # the lowest sites (underground spaces, metro entrances, hollow ground) rise most
    nodes = {n.key: n for n in a}
    by_hollow = sorted(series, key=lambda ds: nodes[depth_ids[ds]].hollow)
    third = len(by_hollow) // 3
    low, high = by_hollow[-third:], by_hollow[:third]
    assert sum(peaks[d] for d in low) / len(low) > sum(peaks[d] for d in high) / len(high)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cim_sta.datastream")).scalar_one() >= len(rows)


def test_cim_sensors_simulate_publishes_through_the_broker(bridge_factory, demo_database_url, mqtt_url, engine,
                                                          tmp_path):
    import os
    import subprocess
    import sys

    bridge = bridge_factory()
    before = bridge.stats.committed
    env = {**os.environ, "CIM_DATABASE_URL": demo_database_url, "CIM_MQTT_URL": mqtt_url, "CIM_HOME": str(tmp_path),
           "CIM_ENVIRONMENT": "test"}
    out = subprocess.run([sys.executable, "-m", "cim_service", "sensors", "simulate", "--nodes", "5", "--interval",
                          "1", "--duration", "3", "--seed", "11", "--silent-share", "0"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sent = int(out.stdout.split("published ")[1].split()[0].replace(",", ""))
    assert sent >= 5 * 2 * 2   # 5 nodes, at least 2 rounds of at least 2 streams
    wait_for(lambda: bridge.stats.committed - before >= sent, timeout=30)
