"""The indicator SQL on a PostgreSQL with its built-in settings (work_mem 4 MB): same results, plans that scale.

A second project-local cluster is started with nothing of the project's tuning in its postgresql.conf, like
a user's own server behind ``CIM_DATABASE_URL``. The small demo is loaded there and every indicator, gap
layer, suggestion and the raster are computed on it and on the session database (the tuned cluster); the
results must be the same, and no statement may plan in a shape whose cost grows with the product of its
inputs (see ``cim_service.indicators.plans``): on the plan-scale demo such a plan never finished.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa

from cim_service.core.catalog import Role
from cim_service.core.settings import Settings
from cim_service.indicators.catalog import load_indicators
from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.plans import PlanRecorder, degrading_patterns
from cim_service.store.db import make_engine
from pipelines.demo import load_demo

#: differ between two databases by construction (times, layer versions, file paths)
VOLATILE = {"computed_at", "duration_ms", "inputs", "path"}
DEFAULTS = ("work_mem", "maintenance_work_mem", "effective_cache_size", "random_page_cost",
            "hash_mem_multiplier", "jit")


def compute(url: str, home, recorder: PlanRecorder | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every indicator and derived output of the database at ``url``, recomputed."""
    eng = make_engine(url)
    from cim_service.core.catalog import load_catalog

    ind = IndicatorEngine(eng, load_catalog(), Settings(database_url=url, environment="test", home=home))
    try:
        if recorder is None:
            return {r["id"]: r for r in ind.results(refresh=True)}, ind.derived(refresh=True)
        with recorder.record(eng):
            return {r["id"]: r for r in ind.results(refresh=True)}, ind.derived(refresh=True)
    finally:
        eng.dispose()


def same(a: Any, b: Any, where: str = "") -> list[str]:
    """Differences between two results (floats to 1e-9 relative), ignoring the volatile keys."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only on one side" for k in set(a) ^ set(b) if k not in VOLATILE]
        for k in sorted(set(a) & set(b) - VOLATILE):
            out += same(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in same(x, y, f"{where}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        ok = a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        return [] if ok else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


@pytest.fixture(scope="module")
def stock_url(stock_server_url, throwaway_database, catalog):
    with throwaway_database("stock", server_url=stock_server_url) as url:
        eng = make_engine(url)
        load_demo(eng, catalog, scale="small")
        eng.dispose()
        yield url


@pytest.fixture(scope="module")
def tuned_url(demo_database_url, catalog):
    eng = make_engine(demo_database_url)
    load_demo(eng, catalog, scale="small")  # a no-op unless another test changed a layer
    eng.dispose()
    return demo_database_url


def test_the_stock_cluster_has_postgresql_defaults(stock_url):
    eng = make_engine(stock_url)
    with eng.connect() as conn:
        sources = dict(conn.execute(sa.text("SELECT name, source FROM pg_settings WHERE name = ANY(:n)"),
                                    {"n": list(DEFAULTS)}).all())
        work_mem = conn.execute(sa.text("SHOW work_mem")).scalar_one()
        shared_buffers = conn.execute(sa.text("SHOW shared_buffers")).scalar_one()
    eng.dispose()
    assert sources == dict.fromkeys(DEFAULTS, "default") and work_mem == "4MB"
    assert shared_buffers == "128MB"  # what initdb itself writes on a machine with enough memory


def test_results_equal_the_tuned_cluster_and_no_plan_degrades(stock_url, tuned_url, tmp_path_factory, catalog):
    recorder = PlanRecorder()
    stock, stock_derived = compute(stock_url, tmp_path_factory.mktemp("stock"), recorder)
    tuned, tuned_derived = compute(tuned_url, tmp_path_factory.mktemp("tuned"))
    indicators = load_indicators()
    assert len(stock) == len(indicators.ids) and list(stock) == list(tuned)
    assert all(r["status"] != "no_data" for r in stock.values())  # every kind really measured something
    # the alert feed is written by the service (the alerts the session's other tests raised), not by the demo,
    # and the live indicators follow the readings those tests sent: over them the two clusters hold the same data
    # only by chance
    feed = catalog.role(Role.alert_feed)
    fed = {s.id for s in indicators if feed is not None and feed.id in indicators.source_layers(s)}
    live = {s.id for s in indicators if s.kind.live}
    assert fed and live  # the waterlogging events; the nodes online and the flood sites with a live sensor
    fed |= live
    assert same({k: v for k, v in stock.items() if k not in fed},
                {k: v for k, v in tuned.items() if k not in fed}) == []
    assert same(stock_derived, tuned_derived) == []
    assert stock_derived["gap_camera_hex"]["features"] > 400 and stock_derived["suggested_sites"]["charging"]["sites"]
    # every statement was planned on the stock server; none in a shape that degrades with size
    planned = [s for s in recorder.statements if s.plan is not None]
    assert len(planned) > 80 and len(planned) == len(recorder.statements)
    assert any("LEFT JOIN _ind_cov_charging_addresses" in s.sql for s in planned)  # the address coverage ran
    assert [f"{problem}: {s.head()}" for s, problem in recorder.problems] == []


def _plan(conn: sa.Connection, sql: str) -> dict[str, Any]:
    return conn.execute(sa.text(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}")).scalar_one()[0]


@pytest.mark.parametrize("ids", [1_000, 300_000])
def test_in_over_a_temp_table_is_flagged_and_a_join_is_not(stock_url, ids):
    """``id IN (SELECT id FROM temp)``: hashed while it fits in 4 MB, a rescan per row beyond; a join is neither."""
    eng = make_engine(stock_url)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE _ids ON COMMIT DROP AS SELECT g::bigint AS id "
                             "FROM generate_series(1, :n) g"), {"n": ids})
        conn.execute(sa.text("ALTER TABLE _ids ADD PRIMARY KEY (id)"))
        conn.execute(sa.text("ANALYZE _ids"))
        old = degrading_patterns(_plan(conn, "SELECT s.id, (s.id IN (SELECT id FROM _ids)) AS ok "
                                             "FROM cim.addresses s"))
        new = degrading_patterns(_plan(conn, "SELECT count(c.id) FROM cim.addresses s "
                                             "LEFT JOIN _ids c ON c.id = s.id"))
    eng.dispose()
    expected = "hashed SubPlan" if ids < 100_000 else "scans _ids sequentially for every outer row"
    assert len(old) == 1 and expected in old[0]
    assert new == []
