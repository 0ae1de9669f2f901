"""``cim history purge --before``: an admin command that deletes old versions, is logged, and moves the start."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa

from cim_service.store import history
from tests.history.conftest import T3


def _cim(db_url, *args):
    env = {**os.environ, "CIM_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "cim_service", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_purge_deletes_ended_versions_and_logs(db_url, db, story, catalog):
    with db.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM cim_hist.iot_nodes")).scalar()
    bad = _cim(db_url, "history", "purge", "--before", "soon", "--yes")
    assert bad.returncode != 0 and "--before" in bad.stderr
    future = _cim(db_url, "history", "purge", "--before", "2999-01-01", "--yes")
    assert future.returncode != 0 and "future" in future.stderr
    r = _cim(db_url, "history", "purge", "--before", T3.isoformat(), "--yes")
    assert r.returncode == 0, r.stderr
    with db.connect() as conn:
        after = conn.execute(sa.text("SELECT count(*) FROM cim_hist.iot_nodes")).scalar()
        kept = conn.execute(sa.text("SELECT min(valid_to) FROM cim_hist.iot_nodes")).scalar()
        log = conn.execute(sa.text(
            "SELECT before, rows_deleted, actor FROM cim_meta.history_purge WHERE layer_id = 'iot_nodes'")).all()
    # versions that ended at T2 or T3 are gone (N1 v1, v2; N2 v1 and its tombstone); the current ones stay
    assert before - after == log[0][1] == 4
    assert kept is None or kept > T3
    assert log[0][0] == T3 and log[0][2].startswith("cli:")
    # history now begins at the purge
    listing = _cim(db_url, "history", "purges")
    assert listing.returncode == 0 and "iot_nodes" in listing.stdout
    with db.connect() as conn:
        assert history.begins(conn, catalog.get("iot_nodes")) == T3
