"""The data plane in the service (lifespan: bridge + maintenance, /metrics), compaction and the simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
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


def _sim_rows(engine, catalog):
    rows = {}
    with engine.connect() as conn:
        for spec in catalog.sensing_layers:
            rows[spec.id] = sta_entities.catalog_datastreams(conn, spec.id)
    return rows


def _run(nodes, *, duration_s, seed=7, **kw):
    clock = iter([1_800_000_000.0]).__next__
    return list(sim.schedule(nodes, duration_s=duration_s, seed=seed, clock=clock, **kw))


def _gauge_grid() -> list[dict]:
    """Datastream rows of 16 x 12 gauges over the district (the four site kinds mixed), as the catalog makes them."""
    from cim_service.core.region import DISTRICT_BBOX

    x0, y0, x1, y1 = DISTRICT_BBOX
    kinds = ["地下空间", "地铁出入口", "小区道路", "公交站点"]
    rows, i = [], 0
    for a in range(16):
        for b in range(12):
            for p in ("water_depth", "battery", "signal"):
                i += 1
                rows.append({"id": i, "feature_key": f"G{a:02d}{b:02d}", "property": p,
                             "lon": x0 + (x1 - x0) * (a + 0.5) / 16, "lat": y0 + (y1 - y0) * (b + 0.5) / 12,
                             "fields": {"site_kind": kinds[(7 * a + 3 * b) % 4]}})
    return rows


def test_simulator_is_deterministic_and_tells_the_rain_story():
    gauge_rows = _gauge_grid()
    a = sim.build_nodes(gauge_rows, seed=7, nodes=None, silent_share=0)
    cell = sim.RainCell(period_s=3600, aim_lat=sim.aim_latitude(a))
    out = _run(a, duration_s=3600, rain=cell, backfill=False)
    b = sim.build_nodes(gauge_rows, seed=7, nodes=None, silent_share=0)
    assert out == _run(b, duration_s=3600, rain=sim.RainCell(period_s=3600, aim_lat=sim.aim_latitude(b)),
                       backfill=False)                                    # same seed, same messages
    assert out != _run(sim.build_nodes(gauge_rows, seed=8, nodes=None, silent_share=0), duration_s=3600, seed=8,
                       rain=cell, backfill=False)
    assert [due for due, _ in out] == sorted(due for due, _ in out)
    assert len(out) == 60 * len(a)                                        # every gauge once a minute
    nodes = {n.key: n for n in a}
    prop = {r["id"]: (r["feature_key"], r["property"]) for r in gauge_rows}
    depth: dict[str, list[tuple[float, float]]] = {}
    battery: dict[str, list[float]] = {}
    for due, msgs in out:
        for ds, body in msgs:
            key, p = prop[ds]
            v = json.loads(body)["result"]
            if p == "water_depth":
                depth.setdefault(key, []).append((due, v))
            elif p == "battery":
                battery.setdefault(key, []).append(v)
    assert all(v == sorted(v, reverse=True) and len(set(v)) > 1 for v in battery.values())   # draining, never up
    peak = {k: max(v for _t, v in s) for k, s in depth.items()}
    peak_t = {k: max(s, key=lambda tv: tv[1])[0] for k, s in depth.items()}
    assert max(peak.values()) > 30                                        # the cell floods some sites past alarm
    drained = [s[-1][1] < 0.5 * peak[k] for k, s in depth.items() if peak[k] > 5 and peak_t[k] < out[-1][0] - 900]
    assert drained and all(drained)                                       # and the water drains again
    # the lowest-lying sites (underground spaces, metro entrances, hollow ground) rise most
    by_hollow = sorted(depth, key=lambda k: nodes[k].hollow)
    third = len(by_hollow) // 3
    mean = lambda ks: sum(peak[k] for k in ks) / len(ks)  # noqa: E731
    assert mean(by_hollow[-third:]) > 1.5 * mean(by_hollow[:third])
    # the cell crosses west to east: wet sites peak later the further east they lie
    wet = [k for k in depth if peak[k] > 5]
    lons, times = [nodes[k].lon for k in wet], [peak_t[k] for k in wet]
    assert len(wet) > 20 and float(np.corrcoef(lons, times)[0, 1]) > 0.9
    # aimed at the lowest-lying western sites: the first sites to pass the warning level (15 cm) lie in the west
    # and lower than the gauges on average
    first = sorted((next(t for t, v in depth[k] if v >= 15), k) for k in depth if peak[k] >= 15)[:5]
    mid = float(np.median([n.lon for n in a]))
    assert all(nodes[k].lon < mid for _t, k in first)
    assert sum(nodes[k].hollow for _t, k in first) / 5 > sum(n.hollow for n in a) / len(a)


def test_simulator_cadence_silence_and_bad_messages(demo_database_url, engine, catalog):
    from datetime import UTC, datetime, timedelta

    from cim_service.sensing import payload as pl

    rows = _sim_rows(engine, catalog)
    everything = sim.build_nodes([r for rs in rows.values() for r in rs], seed=3, nodes=None, silent_share=0.03)
    silent = sum(n.silent_after is not None for n in everything) / len(everything)
    assert 0.02 < silent < 0.04                                           # ~3 % of the nodes go silent
    city = sim.build_nodes([r for rs in rows.values() for r in rs], seed=3, nodes=3000, silent_share=0.03)
    out = _run(city, duration_s=2400, seed=3, bad_rate=0.01)
    start = 1_800_000_000.0
    reports: dict[int, list[float]] = {}
    first_ds = {n.streams[0].id: n for n in city}
    for due, msgs in out:
        n = first_ds.get(msgs[0][0]) if msgs else None
        if n is not None:
            reports.setdefault(id(n), []).append(due)
    by_node = {id(n): n for n in city}
    gauges = [n for n in city if n.is_gauge and n.silent_after is None]
    others = [n for n in city if not n.is_gauge and n.silent_after is None]
    assert gauges and others
    assert all(len(reports[id(n)]) == 41 for n in gauges)                 # backfill + 40 minutes, every 60 s
    assert all(len(reports[id(n)]) == 5 for n in others)                  # backfill + every 600 s
    assert min(reports[id(n)][0] for n in city) >= start - 600 and min(reports[id(n)][0] for n in gauges) < start
    quiet = [n for n in city if n.silent_after is not None]
    assert quiet and all(max(reports.get(id(n), [start])) <= start + n.silent_after for n in quiet)
    assert all(max(reports[k]) > start + 1800 for k in reports if by_node[k].silent_after is None)
    # bad messages at the rate asked, each refused by the bridge's parser for the reason it was made for
    with engine.connect() as conn:
        infos = sta_entities.datastream_infos(conn)
    now = datetime.fromtimestamp(start + 2400, UTC)
    reasons: dict[str, int] = {}
    total = 0
    for _due, msgs in out:
        for ds, body in msgs:
            total += 1
            try:
                pl.parse(f"v1.1/Datastreams({ds})/Observations", body, infos[ds], now=now,
                         max_past=timedelta(days=30), max_future=timedelta(seconds=300))
            except pl.Rejected as exc:
                reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
    assert set(reasons) == set(sim.BAD_KINDS)
    assert 0.007 < sum(reasons.values()) / total < 0.013
    clean = _run(city[:200], duration_s=600, seed=3)
    for _due, msgs in clean:                                              # none unless asked: every value in range
        for ds, body in msgs:
            pl.parse(f"v1.1/Datastreams({ds})/Observations", body, infos[ds], now=now,
                     max_past=timedelta(days=30), max_future=timedelta(seconds=3000))


def test_cim_sensors_simulate_publishes_through_the_broker(bridge_factory, demo_database_url, mqtt_url, engine,
                                                          tmp_path):
    import os
    import subprocess
    import sys

    bridge = bridge_factory()
    before = bridge.stats.committed
    env = {**os.environ, "CIM_DATABASE_URL": demo_database_url, "CIM_MQTT_URL": mqtt_url, "CIM_HOME": str(tmp_path),
           "CIM_ENVIRONMENT": "test"}
    out = subprocess.run([sys.executable, "-m", "cim_service", "sensors", "simulate", "--nodes", "5",
                          "--gauge-interval", "1", "--node-interval", "1", "--duration", "3", "--seed", "11",
                          "--silent-share", "0", "--no-backfill"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sent = int(out.stdout.split("published ")[1].split()[0].replace(",", ""))
    assert sent >= 5 * 2 * 2   # 5 nodes, at least 2 rounds of at least 2 streams
    wait_for(lambda: bridge.stats.committed - before >= sent, timeout=30)
    # started by ./scripts/run with the service's pid: it ends when the service does (no --duration; no backfill,
    # so it leaves the session's datastreams alone: the alert tests need gauges without readings)
    service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    try:
        follower = subprocess.run([sys.executable, "-m", "cim_service", "sensors", "simulate", "--nodes", "3",
                                   "--while-pid", str(service.pid), "--seed", "12", "--no-backfill"],
                                  env=env, capture_output=True, text=True, timeout=60)
    finally:
        service.wait(timeout=30)
    assert follower.returncode == 0, follower.stderr
    assert "published" in follower.stdout
