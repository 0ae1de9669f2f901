"""``notebooks/coverage_gaps.ipynb`` runs top to bottom against the demo database (nbclient)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from cim_service.core.settings import PROJECT_ROOT
from cim_service.indicators.catalog import load_indicators

NOTEBOOK = PROJECT_ROOT / "notebooks" / "coverage_gaps.ipynb"


def test_coverage_gaps_notebook_runs(demo_database_url, catalog, tmp_path, monkeypatch):
    from cim_service.store.db import make_engine
    from pipelines.demo import load_demo

    eng = make_engine(demo_database_url)
    load_demo(eng, catalog, scale="small")  # no-op unless another test changed a layer
    eng.dispose()
    monkeypatch.setenv("CIM_DATABASE_URL", demo_database_url)
    monkeypatch.setenv("CIM_HOME", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert f"{len(load_indicators().ids)} indicators" in text and "cameras missing" in text
    assert "cameras as of 2022-12-31:" in text and "towns on track for 70,000 in 2025" in text  # the API section
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the per-town bars, the gap maps and the trajectories
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "camera_density" in o["data"]["text/html"]]
    assert tables, "the district table is displayed"
    ranked = [o for o in outputs if "text/html" in o.get("data", {}) and "behind_pace" in o["data"]["text/html"]]
    assert ranked, "the towns ranked by how far behind pace are displayed"
