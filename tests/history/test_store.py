"""History tables on real PostGIS: what the triggers write for ingests, SQL edits, deletes and truncates."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from cim_service.store import history
from tests.history.conftest import T1, T2, T3


def _versions(db, node_id):
    with db.connect() as conn:
        return conn.execute(sa.text(
            "SELECT op, sensor_kind, ST_X(geom), valid_from, valid_to, actor, batch_id IS NOT NULL "
            "FROM cim_hist.iot_nodes WHERE node_id = :n ORDER BY valid_from, hist_id"), {"n": node_id}).all()


INF = None


def test_three_ingests_write_versions_with_their_dates(db, catalog, story):
    n1 = _versions(db, "N1")
    assert [(v[0], v[1], round(v[2], 2)) for v in n1] == [
        ("insert", "environment", 121.40), ("update", "road", 121.40), ("update", "road", 121.45)]
    assert [(v[3], v[4]) for v in n1] == [(T1, T2), (T2, T3), (T3, INF)]
    assert all(v[5] == f"ingest:nodes-{v[3].year}.csv" and v[6] for v in n1)
    n2 = _versions(db, "N2")
    assert [(v[0], v[3], v[4]) for v in n2] == [("insert", T1, T3), ("delete", T3, T3)]
    with db.connect() as conn:
        assert history.begins(conn, catalog.get("iot_nodes")) == T1
        # the state as of each instant equals the snapshot loaded then
        for at, expected in ((T1, {"N1", "N2"}), (T2, {"N1", "N2", "N3"}), (T3, {"N1", "N3"})):
            got = {r[0] for r in conn.execute(sa.text(
                f"SELECT node_id FROM {history.as_of_source(catalog.get('iot_nodes'), ':at')} AS s"), {"at": at})}
            assert got == expected, at
        current = {r[0] for r in conn.execute(sa.text("SELECT node_id FROM cim.iot_nodes"))}
        assert current == {"N1", "N3"}


def test_unchanged_ingest_writes_no_version(db, catalog, story):
    from tests.history.conftest import STORY, load_nodes

    with db.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM cim_hist.iot_nodes")).scalar()
    result = load_nodes(db, catalog.get("iot_nodes"), STORY[2][1], "f" * 64, datetime(2024, 1, 1, tzinfo=UTC))
    assert (result.inserted, result.updated, result.deleted) == (0, 0, 0)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cim_hist.iot_nodes")).scalar() == before


def test_sql_writes_are_recorded_with_the_transaction_actor(db, catalog):
    spec = catalog.get("smart_lockers")
    cols = [f.name for f in spec.fields]
    with db.begin() as conn:
        history.set_context(conn, actor="sensor-feed")
        conn.execute(sa.text("INSERT INTO cim.smart_lockers (feature_key, geom) "
                             "VALUES ('L1', ST_SetSRID(ST_MakePoint(121.4, 31.1), 4326))"))
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE cim.smart_lockers SET geom = ST_SetSRID(ST_MakePoint(121.5, 31.1), 4326)"))
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE cim.smart_lockers"))
    with db.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT op, actor, ST_X(geom), valid_from < valid_to OR op = 'delete' FROM cim_hist.smart_lockers "
            "ORDER BY hist_id")).all()
        assert [r[0] for r in rows] == ["insert", "update", "delete"], cols
        assert rows[0][1] == "sensor-feed" and rows[1][1].startswith("db:")
        assert [round(r[2], 1) for r in rows] == [121.4, 121.5, 121.5]
        assert conn.execute(sa.text(
            "SELECT count(*) FROM cim_hist.smart_lockers WHERE valid_to IS NULL")).scalar() == 0


def test_derived_layers_have_no_history(db, catalog):
    with db.connect() as conn:
        for spec in catalog:
            exists = conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"),
                                  {"t": history.table_name(spec)}).scalar()
            assert exists == (spec.kind == "source"), spec.id


def test_purge_keeps_later_states_and_is_logged(db, catalog, story):
    spec = catalog.get("iot_nodes")
    with db.begin() as conn:
        deleted = history.purge(conn, catalog, T2, actor="admin-test")
    assert deleted["iot_nodes"] == 1  # N1's first version ended at T2
    with db.connect() as conn:
        assert history.begins(conn, spec) == T2
        got = {r[0] for r in conn.execute(sa.text(
            f"SELECT node_id FROM {history.as_of_source(spec, ':at')} AS s"), {"at": T2})}
        assert got == {"N1", "N2", "N3"}
        log = history.purges(conn)
        assert {r["actor"] for r in log if r["layer_id"] == "iot_nodes"} == {"admin-test"}
    assert T3 > T2


def test_bulk_first_load_rebuilds_the_history_indexes(db, catalog):
    import geopandas as gpd
    import numpy as np
    import shapely

    from pipelines.load import BULK_REBUILD_ROWS, load_geodataframe

    spec = catalog.get("smart_poles")
    n = BULK_REBUILD_ROWS
    gdf = gpd.GeoDataFrame({"pole_id": [f"P{i:06d}" for i in range(n)]},
                           geometry=shapely.points(np.linspace(121.3, 121.5, n), np.full(n, 31.1)), crs="EPSG:4326")
    load_geodataframe(db, spec, gdf, source_name="poles.csv", source_sha256="p" * 64, source_crs="EPSG:4326",
                      outline=None)
    with db.connect() as conn:
        gist = conn.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE schemaname = 'cim_hist' "
                                    "AND tablename = 'smart_poles' AND indexdef LIKE '% USING gist %'")).scalar()
        rows = conn.execute(sa.text("SELECT count(*) FROM cim_hist.smart_poles WHERE op = 'insert'")).scalar()
    assert (gist, rows) == (1, n)


def test_closing_a_version_touches_no_index(db, catalog):
    """Closing the open version is a HOT update (no index on valid_to, room on the page): cheap ingests.

    An ingest's changes are spread over the layer (here every 20th feature, 5 %).
    """
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE cim.smart_poles SET road_name = 'x' WHERE right(pole_id, 2) IN "
                             "('00', '20', '40', '60', '80')"))
        upd, hot = conn.execute(sa.text(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
            "WHERE schemaname = 'cim_hist' AND relname = 'smart_poles'")).one()
    assert upd == 500 and hot >= 0.95 * upd


def test_migrate_brings_an_earlier_history_layout_up_to_date(db, catalog):
    from cim_service.store.migrate import migrate

    with db.begin() as conn:  # the first layout: a primary key and the validity inside two GIST indexes
        conn.execute(sa.text('ALTER TABLE cim_hist.bus_stops ADD CONSTRAINT "bus_stops_pkey" PRIMARY KEY (hist_id)'))
        conn.execute(sa.text('DROP INDEX cim_hist."hx_bus_stops_geom"'))
        conn.execute(sa.text("CREATE INDEX \"hx_bus_stops_geom\" ON cim_hist.bus_stops USING gist "
                             "(geom, (tstzrange(valid_from, valid_to, '[)')))"))
        conn.execute(sa.text("CREATE INDEX \"hx_bus_stops_geom_3857\" ON cim_hist.bus_stops USING gist "
                             "(geom_3857, (tstzrange(valid_from, valid_to, '[)')))"))
    migrate(db, catalog)
    with db.connect() as conn:
        defs = dict(conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes "
                                         "WHERE schemaname = 'cim_hist' AND tablename = 'bus_stops'")).all())
    assert set(defs) == {"hx_bus_stops_id", "hx_bus_stops_from", "hx_bus_stops_geom"}
    assert "tstzrange" not in defs["hx_bus_stops_geom"]
