"""pipelines.load on real PostGIS: counts, upsert semantics, versions, rejects, streaming and atomicity.

The module runs on its own throwaway database (on the session's server) so loading and emptying layers
cannot disturb other tests sharing the session database.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from pipelines.load import Reject, feature_keys, load_chunks, load_geodataframe

SQUARE = shapely.box(121.30, 31.00, 121.50, 31.15)  # a stand-in district outline inside Minhang


def _empty(engine, *tables):
    with engine.begin() as conn:
        for t in tables:
            conn.execute(sa.text(f'TRUNCATE "cim"."{t}"'))
        conn.execute(sa.text("DELETE FROM cim_meta.ingest_batch"))


def _nodes(n, *, kind="environment", start=0, x0=121.35):
    xs = np.linspace(x0, x0 + 0.1, n)
    return gpd.GeoDataFrame(
        {"node_id": [f"N{i:06d}" for i in range(start, start + n)], "sensor_kind": [kind] * n},
        geometry=shapely.points(xs, np.full(n, 31.05)), crs="EPSG:4326",
    )


def _load(engine, spec, gdf, sha, **kw):
    return load_geodataframe(engine, spec, gdf, source_name="nodes.csv", source_sha256=sha,
                             source_crs="EPSG:4326", **kw)


def _scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def test_insert_update_unchanged_counts_and_versions(db, catalog):
    spec = catalog.get("iot_nodes")
    _empty(db, "iot_nodes")
    v0 = _scalar(db, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'iot_nodes'")
    first = _load(db, spec, _nodes(100), "a" * 64)
    assert (first.status, first.inserted, first.updated, first.unchanged) == ("committed", 100, 0, 0)
    assert first.version == v0 + 1
    ids = dict(_rows(db, "SELECT feature_key, id FROM cim.iot_nodes"))

    changed = _nodes(100)
    changed.loc[:9, "sensor_kind"] = "water"
    second = _load(db, spec, changed, "b" * 64)
    assert (second.inserted, second.updated, second.unchanged) == (0, 10, 90)
    assert second.version == v0 + 2
    assert dict(_rows(db, "SELECT feature_key, id FROM cim.iot_nodes")) == ids  # ids are stable
    assert _scalar(db, "SELECT count(*) FROM cim.iot_nodes WHERE batch_id = :b", b=second.batch_id) == 10

    same_content = _load(db, spec, changed, "c" * 64)  # another file with the same rows
    assert (same_content.status, same_content.unchanged, same_content.version) == ("committed", 100, v0 + 2)
    state = _rows(db, "SELECT version, feature_count FROM cim_meta.layer_state WHERE layer_id = 'iot_nodes'")
    assert state == [(v0 + 2, 100)]


def test_identical_file_is_not_loaded_again(db, catalog):
    spec = catalog.get("iot_nodes")
    _empty(db, "iot_nodes")
    first = _load(db, spec, _nodes(20), "d" * 64)
    batches = _scalar(db, "SELECT count(*) FROM cim_meta.ingest_batch")
    again = _load(db, spec, _nodes(20, kind="water"), "d" * 64)  # same hash: the file is not read again
    assert again.status == "unchanged" and again.batch_id == first.batch_id and again.version == first.version
    assert _scalar(db, "SELECT count(*) FROM cim_meta.ingest_batch") == batches
    assert _scalar(db, "SELECT count(*) FROM cim.iot_nodes WHERE sensor_kind = 'water'") == 0
    # once the layer is emptied behind the catalog's back, the same file loads again
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE cim.iot_nodes"))
    reloaded = _load(db, spec, _nodes(20), "d" * 64)
    assert reloaded.status == "committed" and reloaded.inserted == 20


def test_duplicates_keep_first_and_are_counted(db, catalog):
    spec = catalog.get("iot_nodes")
    _empty(db, "iot_nodes")
    gdf = _nodes(10)
    dupes = _nodes(3, kind="water")  # same keys N000000..N000002, later in the file
    both = gpd.GeoDataFrame(np.concatenate([gdf.values, dupes.values]), columns=gdf.columns,
                            geometry="geometry", crs="EPSG:4326")
    result = _load(db, spec, both, "e" * 64)
    assert (result.inserted, result.duplicates, result.rows_read) == (10, 3, 13)
    assert _scalar(db, "SELECT count(*) FROM cim.iot_nodes WHERE sensor_kind = 'water'") == 0


def test_outside_district_is_flagged_not_dropped(db, catalog):
    _empty(db, "iot_nodes", "district")
    district = gpd.GeoDataFrame({"adcode": ["310112"], "name": ["闵行区"]}, geometry=[SQUARE], crs="EPSG:4326")
    d = _load(db, catalog.get("district"), district, "f" * 64)
    assert d.inserted == 1
    assert _scalar(db, "SELECT GeometryType(geom) FROM cim.district") == "MULTIPOLYGON"  # promoted
    nodes = _nodes(10, x0=121.45)  # x from 121.45 to 121.55: the last ones lie east of the square
    result = _load(db, catalog.get("iot_nodes"), nodes, "g" * 64)
    expected = int((shapely.get_x(nodes.geometry.values) > 121.50).sum())
    assert result.outside == expected > 0
    assert _scalar(db, "SELECT count(*) FROM cim.iot_nodes WHERE outside_district") == expected
    assert _scalar(db, "SELECT count(*) FROM cim.iot_nodes") == 10
    unflagged = _load(db, catalog.get("iot_nodes"), _nodes(10, x0=121.45, start=100), "h" * 64,
                      check_district=False)
    assert unflagged.outside == 0


def test_rejects_and_batch_row_are_recorded(db, catalog):
    _empty(db, "iot_nodes")
    rejects = [Reject(3, "lon", "'abc' is not a number", {"lon": "abc"}), Reject(7, None, "missing geometry")]
    result = _load(db, catalog.get("iot_nodes"), _nodes(5), "i" * 64, rejects=rejects, options={"crs": "wgs84"})
    assert (result.rejected, result.rows_read) == (2, 7)
    rows = _rows(db, "SELECT row_number, field, reason, raw FROM cim_meta.ingest_reject WHERE batch_id = :b "
                     "ORDER BY row_number", b=result.batch_id)
    assert rows == [(3, "lon", "'abc' is not a number", {"lon": "abc"}), (7, None, "missing geometry", None)]
    batch = _rows(db, "SELECT status, rows_read, rows_inserted, rows_rejected, options->>'crs' "
                      "FROM cim_meta.ingest_batch WHERE id = :b", b=result.batch_id)
    assert batch == [("committed", 7, 5, 2, "wgs84")]


def test_chunks_stream_in_one_transaction(db, catalog):
    _empty(db, "iot_nodes")
    seen = []
    chunks = (_nodes(50, start=i * 50) for i in range(4))
    result = load_chunks(db, catalog.get("iot_nodes"), chunks, source_name="big.csv", source_sha256="j" * 64,
                         source_crs="EPSG:4326", progress=seen.append)
    assert seen == [50, 100, 150, 200] and result.inserted == 200


def test_a_failing_chunk_leaves_nothing(db, catalog):
    _empty(db, "iot_nodes")
    batches = _scalar(db, "SELECT count(*) FROM cim_meta.ingest_batch")
    version = _scalar(db, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'iot_nodes'")

    def chunks():
        yield _nodes(50)
        raise RuntimeError("reader died")

    with pytest.raises(RuntimeError, match="reader died"):
        load_chunks(db, catalog.get("iot_nodes"), chunks(), source_name="x.csv", source_sha256="k" * 64,
                    source_crs="EPSG:4326")
    assert _scalar(db, "SELECT count(*) FROM cim.iot_nodes") == 0
    assert _scalar(db, "SELECT count(*) FROM cim_meta.ingest_batch") == batches
    assert _scalar(db, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'iot_nodes'") == version


def test_wrong_geometry_type_and_derived_layers_are_refused(db, catalog):
    lines = gpd.GeoDataFrame({"node_id": ["L1"], "sensor_kind": ["road"]},
                             geometry=[shapely.LineString([(121.4, 31.0), (121.5, 31.1)])], crs="EPSG:4326")
    with pytest.raises(ValueError, match="must be Point"):
        _load(db, catalog.get("iot_nodes"), lines, "l" * 64)
    derived = next(spec for spec in catalog if spec.kind == "derived")
    with pytest.raises(ValueError, match="derived"):
        _load(db, derived, _nodes(1), "m" * 64)


def test_feature_keys_natural_and_hashed(catalog):
    spec = catalog.get("iot_nodes")
    assert list(feature_keys(spec, _nodes(2))) == ["N000000", "N000001"]
    keyless = spec.model_copy(update={"key": []})
    a = feature_keys(keyless, _nodes(2))
    moved = _nodes(2)
    moved.geometry = shapely.transform(moved.geometry.values, lambda c: c + 1e-9)  # below the key precision
    assert list(feature_keys(keyless, moved)) == list(a)
    renamed = _nodes(2, kind="water")
    assert list(feature_keys(keyless, renamed)) != list(a) and a[0] != a[1]


def _rows(engine, sql, **params):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]


def test_snapshot_load_deletes_absent_features_in_the_same_transaction(db, catalog):
    spec = catalog.get("iot_nodes")
    _empty(db, "iot_nodes")
    first = _load(db, spec, _nodes(5), "snap-a")
    assert first.inserted == 5
    # a plain (non-snapshot) load of 3 of them leaves the other 2
    partial = _nodes(3)
    assert _load(db, spec, partial, "snap-b").deleted == 0
    with db.connect() as conn:
        assert conn.execute(sa.text('SELECT count(*) FROM "cim"."iot_nodes"')).scalar_one() == 5
    # the same 3 as a snapshot: the 2 absent features go, nothing else changes
    snap = _load(db, spec, partial, "snap-b", replace=True)
    assert (snap.status, snap.deleted, snap.inserted, snap.updated) == ("committed", 2, 0, 0)
    with db.connect() as conn:
        keys = conn.execute(sa.text('SELECT node_id FROM "cim"."iot_nodes" ORDER BY node_id')).scalars().all()
    assert keys == ["N000000", "N000001", "N000002"]
    # re-running the identical snapshot is a no-op, without a new version
    again = _load(db, spec, partial, "snap-b", replace=True)
    assert again.status == "unchanged" and again.version == snap.version


def test_failed_snapshot_load_deletes_nothing(db, catalog):
    spec = catalog.get("iot_nodes")
    _empty(db, "iot_nodes")
    _load(db, spec, _nodes(4), "fail-a")

    def chunks():
        yield _nodes(1)
        raise RuntimeError("reader died mid-file")

    with pytest.raises(RuntimeError, match="reader died"):
        load_chunks(db, spec, chunks(), source_name="nodes.csv", source_sha256="fail-b",
                    source_crs="EPSG:4326", replace=True)
    with db.connect() as conn:
        assert conn.execute(sa.text('SELECT count(*) FROM "cim"."iot_nodes"')).scalar_one() == 4
