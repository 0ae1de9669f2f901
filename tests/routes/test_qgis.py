"""QGIS (Debian's python3-qgis 3.22, headless) reads collections through its OAPIF provider: the page size
follows the OpenAPI document's ``limit`` maximum, a bbox is filtered on the server; request counts come from
the service's access log."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from tests.routes.conftest import AREA, db_count
from tests.routes.serving import cim_serve

QGIS_PYTHON = "/usr/bin/python3"  # Debian's interpreter: python3-qgis is installed for it
SCRIPT = Path(__file__).resolve().parent.parent / "clients" / "qgis_oapif.py"
#: QGIS 3.22 pages at the document's maximum, but never more than 1,000 features a request
QGIS_PAGE_CAP = 1000


def _qgis(base: str, collection: str, subset: str = "", bbox: tuple | None = None) -> dict:
    args = [QGIS_PYTHON, str(SCRIPT), base, collection, subset]
    if bbox:
        args.append(",".join(str(v) for v in bbox))
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=SCRIPT.parent)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _items(log: Path, mark: int, collection: str) -> list[dict]:
    lines = log.read_text().splitlines()[mark:]
    return [r for r in (json.loads(ln) for ln in lines if ln.startswith("{"))
            if r.get("path") == f"/collections/{collection}/items"]


def _lines(log: Path) -> int:
    return len(log.read_text().splitlines())


@pytest.mark.parametrize("max_limit", [10_000, 400])
def test_qgis_pages_at_the_documented_maximum(settings, features_data, engine, tmp_path, max_limit):
    total = db_count(engine, "SELECT count(*) FROM cim.cameras")
    with cim_serve(settings.database_url, settings.home, tmp_path, env={"CIM_MAX_LIMIT": str(max_limit)}) as url:
        log = tmp_path / "stdout.log"
        mark = _lines(log)
        out = _qgis(url, "cameras")
        assert out["valid"] and out["features"] == total
        assert {"device_id", "camera_type"} <= set(out["fields"])
        page = min(max_limit, QGIS_PAGE_CAP)
        requests = _items(log, mark, "cameras")
        assert len(requests) == 1 + math.ceil(total / page), len(requests)  # 100 a page before: 1 + total/100
        assert all(r["status"] == 200 for r in requests)


def test_qgis_reads_a_bbox_and_a_subset_correctly(settings, features_data, engine, tmp_path):
    """QGIS 3.22 answers a bbox or a subset string from one download of the whole layer, paged at the
    documented maximum (its provider has no server-side filter; newer ones read the per-collection queryable
    parameters the document declares). The counts are what the page size implies and the answers are exact."""
    total = db_count(engine, "SELECT count(*) FROM cim.cameras")
    inside = db_count(engine, "SELECT count(*) FROM cim.cameras WHERE geom && "
                              "ST_MakeEnvelope(:a, :b, :c, :d, 4326)", a=AREA[0], b=AREA[1], c=AREA[2], d=AREA[3])
    dome = db_count(engine, "SELECT count(*) FROM cim.cameras WHERE camera_type = 'dome'")
    assert 0 < inside < total
    page = 500
    with cim_serve(settings.database_url, settings.home, tmp_path, env={"CIM_MAX_LIMIT": str(page)}) as url:
        log = tmp_path / "stdout.log"
        mark = _lines(log)
        out = _qgis(url, "cameras", bbox=AREA)
        assert out["features"] == inside
        assert math.ceil(total / page) <= len(_items(log, mark, "cameras")) <= 1 + math.ceil(total / page)
        mark = _lines(log)
        out = _qgis(url, "cameras", subset="camera_type = 'dome'")
        assert out["subset_accepted"] and out["features"] == dome
        assert math.ceil(total / page) <= len(_items(log, mark, "cameras")) <= 1 + math.ceil(total / page)
