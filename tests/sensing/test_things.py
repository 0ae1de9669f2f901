"""Sensing layers: an ingest makes their features SensorThings Things, in the ingest's transaction."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from cim_service.store import sta_entities


def _layer_rows(conn, spec):
    return conn.execute(sa.text(
        f"SELECT feature_key, ST_X(geom), ST_Y(geom) FROM {spec.qualified_table} ORDER BY feature_key")).all()


def test_catalog_declares_sensing_layers(catalog):
    sensing = {s.id: s for s in catalog.sensing_layers}
    assert {"waterlogging_sensors", "iot_nodes"} <= set(sensing)
    depth = next(p for p in sensing["waterlogging_sensors"].sensing.observed_properties if p.name == "water_depth")
    assert (depth.unit.name, depth.unit.symbol) == ("centimetre", "cm")
    assert any(p.where for p in sensing["iot_nodes"].sensing.observed_properties)


def test_demo_ingest_creates_things_locations_datastreams(demo_database_url, engine, catalog):
    for spec in catalog.sensing_layers:
        with engine.connect() as conn:
            features = _layer_rows(conn, spec)
            things = sta_entities.things_of_layer(conn, spec.id)
            streams = sta_entities.catalog_datastreams(conn, spec.id)
        assert features, spec.id
        assert [t["feature_key"] for t in things] == [f[0] for f in features]
        for thing, (_key, x, y) in zip(things, features, strict=True):
            assert json.loads(thing["location"])["coordinates"] == pytest.approx([x, y], abs=1e-8)
            # one per position the feature has had (other tests of the session move sensors and reload the demo)
            assert thing["historical_locations"] >= 1
        # every current feature has a datastream for each property its kind senses (other tests of the session
        # change kinds in place, without the ingest's sync that would delete the former kind's: only the inclusion
        # is checked here; test_sync_deletes_undeclared_datastreams_and_their_readings checks the deletions)
        expected = set()
        with engine.connect() as conn:
            for prop in spec.sensing.observed_properties:
                where = " AND ".join(f'"{f}"::text = ANY(:v_{f})' for f in prop.where) or "TRUE"
                keys = conn.execute(sa.text(f"SELECT feature_key FROM {spec.qualified_table} WHERE {where}"),
                                    {f"v_{f}": [str(v) for v in vals] for f, vals in prop.where.items()}
                                    ).scalars().all()
                expected |= {(k, prop.name) for k in keys}
        got = {(s["feature_key"], s["property"]) for s in streams}
        assert expected and expected <= got
        with engine.connect() as conn:
            units = dict(conn.execute(sa.text(
                "SELECT d.properties->>'property', d.unit_symbol FROM cim_sta.datastream d "
                "JOIN cim_sta.thing t ON t.id = d.thing_id WHERE t.layer_id = :l"), {"l": spec.id}).all())
        for prop in spec.sensing.observed_properties:
            if prop.name in units:
                assert units[prop.name] == prop.unit.symbol


def test_sync_is_idempotent_and_follows_moves(demo_database_url, engine, catalog):
    spec = next(s for s in catalog.sensing_layers if s.id == "waterlogging_sensors")
    with engine.begin() as conn:
        before = sta_entities.things_of_layer(conn, spec.id)
        again = sta_entities.sync_layer(conn, spec)
        assert (again.things, again.datastreams, again.moved) == (0, 0, 0)
        key = before[0]["feature_key"]
        conn.execute(sa.text(f"UPDATE {spec.qualified_table} SET geom = ST_Translate(geom, 0.001, 0) "
                             "WHERE feature_key = :k"), {"k": key})
        moved = sta_entities.sync_layer(conn, spec)
        after = {t["feature_key"]: t for t in sta_entities.things_of_layer(conn, spec.id)}
        conn.rollback()
    assert moved.moved == 1
    assert after[key]["historical_locations"] == before[0]["historical_locations"] + 1
    assert json.loads(after[key]["location"])["coordinates"][0] > json.loads(before[0]["location"])["coordinates"][0]
    assert [t["id"] for t in before] == [after[t["feature_key"]]["id"] for t in before]


def _streams(conn, layer_id):
    return {(s["feature_key"], s["property"]): s["id"] for s in sta_entities.catalog_datastreams(conn, layer_id)}


def test_sync_deletes_undeclared_datastreams_and_their_readings(demo_database_url, engine, catalog):
    """A property removed from the declaration, a feature whose kind no longer senses one, a feature that left the
    layer: their Datastreams go, with their readings and latest values; the others and their readings stay."""
    from datetime import UTC, datetime, timedelta

    from cim_service.store import observations, sensing_sync
    from cim_service.store.observations import Observation

    gauges = catalog.get("waterlogging_sensors")
    nodes = catalog.get("iot_nodes")
    without_signal = gauges.model_copy(update={"sensing": gauges.sensing.model_copy(update={
        "observed_properties": [p for p in gauges.sensing.observed_properties if p.name != "signal"]})})
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    with engine.begin() as conn:
        sensing_sync.sync(conn, gauges)   # from the declaration as it is (other tests of the session change kinds)
        sensing_sync.sync(conn, nodes)
        g0 = _streams(conn, gauges.id)
        n0 = _streams(conn, nodes.id)
        keys = sorted({k for k, _p in g0})
        gone_key, kept_key = keys[0], keys[1]
        env = sorted(k for k, p in n0 if p == "air_temperature")[0]
        watched = [g0[(gone_key, "water_depth")], g0[(kept_key, "signal")], g0[(kept_key, "water_depth")],
                   n0[(env, "air_temperature")], n0[(env, "battery")]]
        observations.ensure_partitions(conn, {t.date()})
        observations.write_batch(conn.connection.driver_connection,
                                 [Observation(ds, t, 1.0 + i) for i, ds in enumerate(watched)])
        conn.execute(sa.text(f"DELETE FROM {gauges.qualified_table} WHERE feature_key = :k"), {"k": gone_key})
        conn.execute(sa.text(f"UPDATE {nodes.qualified_table} SET sensor_kind = 'road' WHERE feature_key = :k"),
                     {"k": env})
        r1 = sensing_sync.sync(conn, without_signal)
        r2 = sensing_sync.sync(conn, nodes)
        g1, n1 = _streams(conn, gauges.id), _streams(conn, nodes.id)
        readings = {ds: observations.count(conn, ds) for ds in watched}
        latest = {ds: observations.latest(conn, ds) for ds in watched}
        props = set(conn.execute(sa.text("SELECT catalog_key FROM cim_sta.observed_property")).scalars())
        again = sensing_sync.sync(conn, without_signal)
        conn.rollback()
    assert not any(p == "signal" for _k, p in g1)                              # the removed property
    assert not any(k == gone_key for k, _p in g1)                              # the feature that left
    assert {(k, p) for k, p in g0 if p != "signal" and k != gone_key} == set(g1)  # nothing else
    assert r1.deleted_datastreams == sum(1 for k, p in g0 if p == "signal" or k == gone_key)
    assert (env, "air_temperature") not in n1 and (env, "pm25") not in n1 and (env, "vehicle_count") in n1
    assert (env, "battery") in n1 and n1[(env, "battery")] == n0[(env, "battery")]
    assert r2.deleted_datastreams == 2
    gone = [g0[(gone_key, "water_depth")], g0[(kept_key, "signal")], n0[(env, "air_temperature")]]
    kept = [g0[(kept_key, "water_depth")], n0[(env, "battery")]]
    assert [readings[d] for d in gone] == [0, 0, 0] and all(latest[d] is None for d in gone)
    assert all(readings[d] >= 1 for d in kept) and all(latest[d] is not None for d in kept)
    assert f"{gauges.id}/signal" not in props and f"{gauges.id}/water_depth" in props
    assert again.deleted_datastreams == 0
    with engine.connect() as conn:                                              # rolled back: the demo as it was
        assert _streams(conn, gauges.id)[(gone_key, "water_depth")] == g0[(gone_key, "water_depth")]
