"""Live indicators (online rate of the neuron nodes, key flood sites with a live sensor) and waterlogging events
across a year boundary, on the hand-case database: the engine's values equal independent SQL counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from cim_service.indicators.engine import IndicatorEngine, indicator_key
from cim_service.store import observations, sensing_sync, sta_entities
from cim_service.store.observations import Observation

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def ind(hand, catalog, settings):
    return IndicatorEngine(hand, catalog, settings)


def town(result, name):
    return next(t for t in result["towns"] if t["town"] == name)


def _things(hand, catalog, *layer_ids):
    """Sync the layers' Things; (feature key, property) -> datastream id of each."""
    out = {}
    with hand.begin() as conn:
        for layer_id in layer_ids:
            sensing_sync.sync(conn, catalog.get(layer_id))
            out[layer_id] = {(s["feature_key"], s["property"]): s["id"]
                             for s in sta_entities.catalog_datastreams(conn, layer_id)}
    return out


def _keys(hand, spec, id_field):
    with hand.connect() as conn:
        return dict(conn.execute(sa.text(f'SELECT "{id_field}", feature_key FROM {spec.qualified_table}')).all())


def _report(hand, rows):
    with hand.begin() as conn:
        observations.ensure_partitions(conn, {o.phenomenon_time.astimezone(UTC).date() for o in rows})
        observations.write_batch(conn.connection.driver_connection, rows)


def _independent_online(hand, layer_id, since, until):
    """Online nodes / all nodes (not outside the district), straight from the readings."""
    with hand.connect() as conn:
        return tuple(conn.execute(sa.text(
            f"""
            SELECT count(*) FILTER (WHERE EXISTS (
                     SELECT 1 FROM cim_sta.observation o JOIN cim_sta.datastream d ON d.id = o.datastream_id
                       JOIN cim_sta.thing th ON th.id = d.thing_id
                      WHERE th.layer_id = :l AND th.feature_key = n.feature_key
                        AND o.phenomenon_time > :since AND o.phenomenon_time <= :until)),
                   count(*)
              FROM cim.{layer_id} n WHERE NOT n.outside_district
            """), {"l": layer_id, "since": since, "until": until}).one())


def test_online_rate_counts_reporting_nodes_per_town_now_and_as_of_a_day(ind, hand, put, sq, catalog, settings):
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 1000), name="乙镇")
    for i, (x, y) in enumerate([(100, 100), (300, 300), (500, 500), (700, 700), (1500, 500), (1700, 500)]):
        put("iot_nodes", f"POINT({x} {y})", node_id=f"n{i}", sensor_kind="environment" if i % 2 else "power")
    spec = catalog.get("iot_nodes")
    streams = _things(hand, catalog, spec.id)[spec.id]
    key = _keys(hand, spec, "node_id")
    now = datetime.now(UTC).replace(microsecond=0)
    window = timedelta(seconds=settings.sensor_online_window_s)
    # a past day two days back: its last half hour is never inside the online window of now, even just after
    # midnight in Shanghai (one day back failed CI at 00:00 +08:00, when 23:30 the day before was 30 minutes ago)
    past_day = (now.astimezone(SHANGHAI) - timedelta(days=2)).date()
    late_past_day = datetime.combine(past_day, datetime.min.time(), SHANGHAI) + timedelta(hours=23, minutes=30)
    _report(hand, [
        Observation(streams[(key["n0"], "battery")], now - timedelta(minutes=5), 80.0),
        Observation(streams[(key["n1"], "signal")], now - timedelta(minutes=50), -80.0),      # any datastream
        Observation(streams[(key["n2"], "battery")], now - window - timedelta(minutes=10), 70.0),  # offline
        # n3 never reported; in 乙镇: n4 online, n5 offline now but online late on that past day
        Observation(streams[(key["n4"], "battery")], now - timedelta(minutes=1), 60.0),
        Observation(streams[(key["n5"], "battery")], late_past_day, 50.0),
    ])
    r = ind.results(["iot_nodes_online"])[0]
    assert (r["numerator"], r["denominator"]) == _independent_online(hand, spec.id, now - window, now + window)
    assert (r["numerator"], r["denominator"]) == (3, 6) and r["value"] == pytest.approx(50.0)
    assert town(r, "甲镇")["value"] == pytest.approx(50.0) and town(r, "乙镇")["value"] == pytest.approx(50.0)
    assert r["status"] == "not_met" and r["target"] == 95
    assert town(r, "甲镇")["gap_value"] == 2       # 95 % of 4 nodes: 4 must report, 2 do

    day_end = datetime.combine(past_day + timedelta(days=1), datetime.min.time(), SHANGHAI)
    past = ind.results(["iot_nodes_online"], at=past_day)[0]
    assert (past["numerator"], past["denominator"]) == _independent_online(hand, spec.id, day_end - window,
                                                                           day_end) == (1, 6)
    assert town(past, "乙镇")["numerator"] == 1
    before = ind.results(["iot_nodes_online"], at=datetime(2020, 12, 31).date())[0]   # before any reading:
    assert before["value"] is None and before["status"] == "no_data"                 # no data, not 0 %

    # live: the stored result holds within the period, a reading does not change it; an aged one is recomputed
    _report(hand, [Observation(streams[(key["n3"], "battery")], now, 90.0)])
    assert indicator_key("iot_nodes_online") not in ind.refresh_live()
    assert ind.results(["iot_nodes_online"])[0]["numerator"] == 3
    with hand.begin() as conn:
        conn.execute(sa.text("UPDATE cim_meta.indicator_result SET computed_at = now() - make_interval(secs => :s) "
                             "WHERE key = ANY(:k)"), {"s": settings.live_indicator_period_s + 1,
                                                      "k": [indicator_key("iot_nodes_online"),
                                                            indicator_key("iot_nodes_online", past_day)]})
    assert indicator_key("iot_nodes_online") in ind.refresh_live()
    assert ind.results(["iot_nodes_online"])[0]["numerator"] == 4
    # a day computed after it ended is history: it does not age
    with hand.connect() as conn:
        assert ind.stale_keys(conn, [indicator_key("iot_nodes_online", past_day)]) == []


def test_key_flood_sites_with_a_live_sensor(ind, hand, put, sq, catalog, settings):
    put("towns", sq(0, 0, 2000), name="丁镇")
    put("metro_entrances", "POINT(100 100)", entrance_id="e0", station_name="站")
    put("metro_entrances", "POINT(400 100)", entrance_id="e1", station_name="站")
    put("bus_stops", "POINT(700 100)", stop_id="b0", name="站")
    put("underground_spaces", "POINT(1000 100)", space_id="u0")
    put("underground_spaces", "POINT(1300 100)", space_id="u1")
    put("waterlogging_sensors", "POINT(100 130)", sensor_id="s0", site_kind="地铁出入口")   # 30 m: live
    put("waterlogging_sensors", "POINT(400 130)", sensor_id="s1", site_kind="地铁出入口")   # 30 m: silent
    put("waterlogging_sensors", "POINT(700 180)", sensor_id="s2", site_kind="公交站点")     # 80 m: too far
    put("waterlogging_sensors", "POINT(1000 120)", sensor_id="s3", site_kind="地下空间")    # 20 m: live
    spec = catalog.get("waterlogging_sensors")
    streams = _things(hand, catalog, spec.id)[spec.id]
    key = _keys(hand, spec, "sensor_id")
    now = datetime.now(UTC).replace(microsecond=0)
    window = timedelta(seconds=settings.sensor_online_window_s)
    _report(hand, [Observation(streams[(key["s0"], "water_depth")], now - timedelta(minutes=2), 0.0),
                   Observation(streams[(key["s1"], "water_depth")], now - window - timedelta(seconds=30), 0.0),
                   Observation(streams[(key["s2"], "battery")], now, 90.0),
                   Observation(streams[(key["s3"], "signal")], now - timedelta(minutes=20), -90.0)])
    r = ind.results(["waterlogging_sites_live"])[0]
    with hand.connect() as conn:  # independent: sites with a reporting sensor within the radius, of all sites
        expected = conn.execute(sa.text(
            """
            WITH sites AS (SELECT geom FROM cim.metro_entrances UNION ALL SELECT geom FROM cim.bus_stops
                           UNION ALL SELECT geom FROM cim.underground_spaces),
                 live AS (SELECT w.geom FROM cim.waterlogging_sensors w
                           WHERE EXISTS (SELECT 1 FROM cim_sta.latest l
                                           JOIN cim_sta.datastream d ON d.id = l.datastream_id
                                           JOIN cim_sta.thing th ON th.id = d.thing_id
                                          WHERE th.layer_id = 'waterlogging_sensors' AND th.feature_key = w.feature_key
                                            AND l.phenomenon_time > now() - make_interval(secs => :w)))
            SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM live WHERE ST_DWithin(live.geom::geography,
                                                                                     sites.geom::geography, :r))),
                   count(*) FROM sites
            """), {"w": settings.sensor_online_window_s, "r": settings.sensor_site_radius_m}).one()
    assert (r["numerator"], r["denominator"]) == tuple(expected) == (2, 5)
    assert r["value"] == pytest.approx(40.0) and town(r, "丁镇")["gap_value"] == 3


def test_waterlogging_event_across_new_year_is_counted_once(ind, hand, put, sq):
    """An alert raised on New Year's Eve and cleared after midnight is one event of the old year; one raised at
    00:10 on New Year's Day (still 31 December in UTC) is one of the new year."""
    put("towns", sq(0, 0, 1000), name="甲镇")

    def alert(x, raised, cleared, severity="warning", rule="water_depth"):
        put("alerts", f"POINT({x} 500)", severity=severity, state="cleared", rule=rule, layer="waterlogging_sensors",
            raised_at=raised, changed_at=cleared, cleared_at=cleared)

    eve = datetime(2025, 12, 31, 23, 40, tzinfo=SHANGHAI)
    alert(100, eve, eve + timedelta(minutes=40))                                   # NYE -> NYD
    alert(200, datetime(2026, 1, 1, 0, 10, tzinfo=SHANGHAI), datetime(2026, 1, 1, 2, 0, tzinfo=SHANGHAI))
    alert(300, datetime(2025, 12, 31, 7, 0, tzinfo=SHANGHAI), None, severity="offline")  # not an event
    alert(400, datetime(2025, 12, 31, 8, 0, tzinfo=SHANGHAI), None, rule="battery")      # not the rule
    alert(500, datetime(2026, 1, 1, 23, 30, tzinfo=SHANGHAI), None)   # late on NYD: 15:30 UTC
    expected = {"2025-12-30": (0, 0), "2025-12-31": (1, 1), "2026-01-01": (2, 2), "2026-01-02": (2, 2)}
    # 2025 holds the NYE event only (not the 00:10 one, dated 31 December in UTC); 2026 the NYD ones only (the NYE
    # event, still active after midnight, is not counted again): each event once across the boundary. The same
    # under a session time zone east of Shanghai's (the as-of day ends at Shanghai's midnight, not the session's)
    db = hand.url.database
    try:
        for tz in ("UTC", "Asia/Tokyo"):
            with hand.begin() as conn:
                conn.execute(sa.text(f'ALTER DATABASE "{db}" SET timezone = \'{tz}\''))
            hand.dispose()
            values = {}
            for day in expected:
                r = ind.results(["waterlogging_events"], at=datetime.fromisoformat(day).date(), refresh=True)[0]
                values[day] = (r["value"], town(r, "甲镇")["value"])
            assert values == expected, tz
    finally:
        with hand.begin() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{db}" RESET timezone'))
        hand.dispose()


def test_the_service_task_recomputes_aged_live_indicators(ind, hand, put, sq):
    import asyncio

    from cim_service.indicators.live import LiveIndicators

    put("towns", sq(0, 0, 1000), name="甲镇")
    put("iot_nodes", "POINT(100 100)", node_id="n0", sensor_kind="power")
    ind.results(["iot_nodes_online", "waterlogging_sites_live"])
    with hand.begin() as conn:
        conn.execute(sa.text("UPDATE cim_meta.indicator_result SET computed_at = now() - interval '1 day' "
                             "WHERE key = :k"), {"k": indicator_key("iot_nodes_online")})

    async def run() -> int:
        task = LiveIndicators(ind, period_s=0.05)
        await task.start()
        for _ in range(400):
            if task.runs:
                break
            await asyncio.sleep(0.05)
        await task.stop()
        return task.runs

    assert asyncio.run(run()) >= 1
    with hand.connect() as conn:
        age = conn.execute(sa.text("SELECT now() - computed_at FROM cim_meta.indicator_result WHERE key = :k"),
                           {"k": indicator_key("iot_nodes_online")}).scalar_one()
    assert age < timedelta(minutes=5)
