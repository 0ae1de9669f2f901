"""Fixtures of the history tests: a database of the module's own (history is written by every change)."""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import pytest
import shapely

from pipelines.load import load_geodataframe

#: the three ingests of the story: a feature inserted, updated (attribute), moved, then deleted
T1 = datetime(2021, 6, 1, tzinfo=UTC)
T2 = datetime(2022, 6, 1, tzinfo=UTC)
T3 = datetime(2023, 6, 1, tzinfo=UTC)


def nodes(rows: list[tuple[str, str, float, float]]) -> gpd.GeoDataFrame:
    """iot_nodes rows (node_id, sensor_kind, lon, lat)."""
    return gpd.GeoDataFrame(
        {"node_id": [r[0] for r in rows], "sensor_kind": [r[1] for r in rows]},
        geometry=[shapely.Point(r[2], r[3]) for r in rows], crs="EPSG:4326",
    )


def load_nodes(engine, spec, rows, sha: str, at: datetime, **kw):
    """One snapshot ingest of iot_nodes dated ``at`` in the history."""
    return load_geodataframe(engine, spec, nodes(rows), source_name=f"nodes-{at.year}.csv", source_sha256=sha,
                             source_crs="EPSG:4326", replace=True, valid_at=at, outline=None, **kw)


#: the story in three snapshots: N1 inserted at T1, re-typed at T2, moved at T3; N2 inserted at T1, deleted at T3
STORY = [
    (T1, [("N1", "environment", 121.40, 31.065), ("N2", "water", 121.41, 31.06)]),
    (T2, [("N1", "road", 121.40, 31.065), ("N2", "water", 121.41, 31.06), ("N3", "fire", 121.42, 31.07)]),
    (T3, [("N1", "road", 121.45, 31.08), ("N3", "fire", 121.42, 31.07)]),
]


@pytest.fixture(scope="module")
def story(db, catalog):
    """iot_nodes loaded by the three dated snapshot ingests of :data:`STORY`; the feature ids by node id."""
    import sqlalchemy as sa

    spec = catalog.get("iot_nodes")
    for i, (at, rows) in enumerate(STORY):
        load_nodes(db, spec, rows, f"{i}" * 64, at)
    with db.connect() as conn:
        ids = dict(conn.execute(sa.text(
            "SELECT DISTINCT node_id, id FROM cim_hist.iot_nodes")).all())
    return ids
