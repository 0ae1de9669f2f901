"""Fixtures of the indicator tests: a SEPARATE throwaway database for hand-computable cases.

Hand cases are drawn in EPSG:4549 metres (so a 1000 m square is exactly 1 km²) and stored in WGS84 like
every layer. The database is created and migrated once per session; each test empties the layers first.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cim_service.core.catalog import Catalog
from cim_service.store import history
from cim_service.store.db import make_engine
from cim_service.store.layer_state import bump_version
from cim_service.store.localdb import LocalCluster

#: origin of the hand-drawn cases in EPSG:4549 (about 121.40E, 31.09N, in Minhang)
X0, Y0 = 633_000.0, 3_442_000.0


@pytest.fixture(scope="session")
def stock_server_url() -> Iterator[str]:
    """A second project-local cluster with PostgreSQL's built-in settings (work_mem 4 MB, ...), on a free port.

    Like a user's own server: nothing of the project cluster's tuning is written to its postgresql.conf.
    """
    home = Path(tempfile.mkdtemp(prefix="cim-stock-pg-", dir="/tmp"))  # the postgres user must reach it
    os.chmod(home, 0o755)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = LocalCluster(home=home, port=port, tuned=False)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def hand_url(throwaway_database) -> Iterator[str]:
    """URL of a migrated database only the hand-case tests write to."""
    with throwaway_database("ind") as url:
        yield url


@pytest.fixture
def hand(hand_url: str, catalog: Catalog) -> Iterator[Engine]:
    """Engine on the hand-case database with every layer and stored result emptied."""
    eng = make_engine(hand_url)
    with eng.begin() as conn:  # stored results and history go too, so nothing computed before can be served
        tables = ", ".join([*(spec.qualified_table for spec in catalog),
                            *(history.table_name(spec) for spec in catalog if history.has_history(spec))])
        conn.execute(sa.text(f"TRUNCATE {tables}, cim_meta.indicator_result"))
    yield eng
    eng.dispose()


@pytest.fixture
def put(hand: Engine, catalog: Catalog) -> Callable[..., None]:
    """Insert features given in 4549 metres relative to (X0, Y0): ``put(layer, wkt, **fields)``."""

    def _put(layer_id: str, wkt: str, outside: bool = False, **fields: object) -> None:
        spec = catalog.get(layer_id)
        names = list(fields)
        cols = "".join(f', "{n}"' for n in names)
        vals = "".join(f", :{n}" for n in names)
        with hand.begin() as conn:
            conn.execute(sa.text(
                f"INSERT INTO {spec.qualified_table} (feature_key, geom, outside_district{cols}) VALUES "
                f"(:fk, ST_Transform(ST_Translate(ST_GeomFromText(:wkt, 4549), :x0, :y0), 4326), :out{vals})"
            ), {"fk": uuid.uuid4().hex, "wkt": wkt, "x0": X0, "y0": Y0, "out": outside, **fields})
            bump_version(conn, spec.id, spec.qualified_table)

    return _put


def square(x: float, y: float, size: float) -> str:
    """WKT of an axis-aligned square MultiPolygon (metres)."""
    return (f"MULTIPOLYGON((({x} {y}, {x + size} {y}, {x + size} {y + size}, {x} {y + size}, {x} {y})))")


@pytest.fixture
def sq() -> Callable[[float, float, float], str]:
    """The ``square`` helper as a fixture."""
    return square


@pytest.fixture
def origin() -> tuple[float, float]:
    """(X0, Y0): where the hand-drawn cases sit in EPSG:4549."""
    return X0, Y0
