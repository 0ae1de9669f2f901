"""The demo's yearly history 2020 → 2025 (small scale): dated snapshots, paces per town, moves, replacements,
removals, and as-of states equal to the generated year frames."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cim_service.store import history
from pipelines.demo import build_demo, load_demo
from pipelines.demo.history import YEARS, load_date, town_paces, yearly_frames

SEED = 20210101


@pytest.fixture(scope="module")
def loaded(db, catalog):
    frames = build_demo("small", SEED)
    load_demo(db, catalog, "small", SEED, frames=frames, history=True)
    return frames, yearly_frames(frames, SEED)


def _as_of_count(conn, spec, at):
    return conn.execute(sa.text(f"SELECT count(*) FROM {history.as_of_source(spec, ':at')} AS s"),
                        {"at": at}).scalar()


def test_each_year_as_of_equals_its_frame(db, catalog, loaded):
    frames, yearly = loaded
    with db.connect() as conn:
        for layer in ("cameras", "iot_nodes", "base_stations", "charging_stations"):
            spec = catalog.get(layer)
            counts = [_as_of_count(conn, spec, datetime(y, 12, 31, tzinfo=UTC)) for y in YEARS]
            assert counts == [len(yearly[y][layer]) for y in YEARS], layer
            assert counts[-1] == len(frames[layer]) and counts[0] < counts[-1], layer
            assert history.begins(conn, spec) == load_date(2020)
        # the current table is the 2025 state
        assert conn.execute(sa.text("SELECT count(*) FROM cim.cameras")).scalar() == len(frames["cameras"])


def test_moves_replacements_and_removals_are_in_the_history(db, loaded):
    with db.connect() as conn:
        ops = dict(conn.execute(sa.text(
            "SELECT op, count(*) FROM cim_hist.cameras WHERE valid_from > '2020-07-01' GROUP BY op")).all())
        assert ops.get("update", 0) > 0 and ops.get("delete", 0) > 0 and ops.get("insert", 0) > 0
        moved = conn.execute(sa.text(
            "SELECT count(*) FROM cim_hist.cameras a JOIN cim_hist.cameras b ON a.id = b.id "
            "AND b.valid_from = a.valid_to WHERE b.op = 'update' AND NOT ST_Equals(a.geom, b.geom) "
            "AND ST_Distance(a.geom::geography, b.geom::geography) BETWEEN 25 AND 160")).scalar()
        assert moved > 0
        removed = conn.execute(sa.text(
            "SELECT count(*) FROM cim_hist.iot_nodes WHERE op = 'delete' AND node_id LIKE 'MHIOTR%'")).scalar()
        assert removed > 0
        # a static layer is loaded once, in 2020
        assert conn.execute(sa.text("SELECT min(valid_from), max(valid_from) FROM cim_hist.towns")).one() == (
            load_date(2020), load_date(2020))


def test_dates_agree_with_the_history_and_towns_differ_in_pace(db, loaded):
    frames, _ = loaded
    with db.connect() as conn:
        late = conn.execute(sa.text(
            "SELECT count(*) FROM cim_hist.cameras WHERE op = 'insert' AND installed_at > valid_from")).scalar()
        assert late == 0
        rows = conn.execute(sa.text(
            "SELECT t.name, count(*) FILTER (WHERE c.installed_at <= '2020-07-01')::float / count(*) "
            "FROM cim.cameras c JOIN cim.towns t ON ST_Within(c.geom, t.geom) GROUP BY t.name")).all()
    paces = town_paces(frames["towns"], SEED)
    by_pace: dict[str, list[float]] = {}
    for name, share in rows:
        by_pace.setdefault(paces[name], []).append(share)
    mean = {p: sum(v) / len(v) for p, v in by_pace.items()}
    assert mean["ahead"] > mean["steady"] > mean["stalled"]


def test_demo_history_refuses_a_database_with_later_history(db, catalog, loaded):
    frames, _ = loaded
    with pytest.raises(ValueError, match="fresh database"):
        load_demo(db, catalog, "small", SEED, frames=frames, history=True)
