"""``cim report``: the planners' progress report of a town on the demo, opened as a reader would.

The PDF is turned into text (``/usr/bin/pdftotext``: the Chinese title must be text, not outlines) and into
PNG pages (``/usr/bin/pdftoppm``) whose chart pixels are checked: the trajectory lines are drawn in their colour.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from PIL import Image
from typer.testing import CliRunner

from cim_service.cli import app
from cim_service.core.catalog import Role
from cim_service.core.settings import Settings
from cim_service.indicators.catalog import load_indicators
from cim_service.indicators.engine import IndicatorEngine
from cim_service.store.db import make_engine

#: the colour of the measured trajectory line (report_render._trajectory_axes)
ACTUAL_RGB = (0x1F, 0x5F, 0xBF)


@pytest.fixture(scope="module")
def demo_town(demo_database_url, catalog, tmp_path_factory):
    from pipelines.demo import load_demo

    eng = make_engine(demo_database_url)
    load_demo(eng, catalog, scale="small")  # no-op unless another test changed a layer
    home = tmp_path_factory.mktemp("home")
    IndicatorEngine(eng, catalog, Settings(database_url=demo_database_url, environment="test", home=home)).derived()
    towns = catalog.require_role(Role.town_boundaries).qualified_table
    with eng.connect() as conn:
        name = conn.execute(sa.text(f"SELECT name FROM {towns} ORDER BY name LIMIT 1")).scalar()
    eng.dispose()
    return name, home


@pytest.fixture
def run(demo_database_url, demo_town, monkeypatch):
    monkeypatch.setenv("CIM_DATABASE_URL", demo_database_url)
    monkeypatch.setenv("CIM_HOME", str(demo_town[1]))

    def _run(*args: str):
        return CliRunner().invoke(app, ["report", *args])

    return _run


def _share_of_colour(png: Image.Image, rgb: tuple[int, int, int], tol: int = 40) -> float:
    px = np.asarray(png.convert("RGB")).astype(int)
    return float((np.abs(px - np.array(rgb)).max(axis=2) < tol).mean())


def test_pdf_report_opens_with_chinese_title_and_charts(run, demo_town, tmp_path):
    town = demo_town[0]
    out = tmp_path / "report.pdf"
    r = run("--town", town, "--out", str(out), "--at", "2025-12-31")
    assert r.exit_code == 0, (r.output, r.exception)
    assert f"in {town}" in r.output and out.stat().st_size > 10_000
    text = subprocess.run(["/usr/bin/pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert f"{town}数字化转型规划指标进展报告" in text
    for words in ("视频监控设备总数", "指标轨迹与预测", "指标缺口分布图", "数据来源", "按进度"):
        assert words in text, words
    subprocess.run(["/usr/bin/pdftoppm", "-png", "-r", "50", str(out), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 6  # summary, 3 pages of trajectories (14 indicators, 6 a page), gap map, provenance
    chart = Image.open(pages[1])
    grey = np.asarray(chart.convert("L"))
    assert (grey < 250).mean() > 0.03  # not blank
    assert _share_of_colour(chart, ACTUAL_RGB) > 0.0005  # the measured lines are drawn
    gap_map = np.asarray(Image.open(pages[4]).convert("L"))
    assert (gap_map < 250).mean() > 0.02


def test_html_and_xlsx(run, demo_town, tmp_path):
    town = demo_town[0]
    r = run("--town", town, "--out", str(tmp_path / "r.html"), "--at", "2023-06-30")
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"{town}数字化转型规划指标进展报告" in page and page.count("data:image/png;base64,") == 4
    assert "http://" not in page and "https://" not in page
    r = run("--town", town, "--out", str(tmp_path / "r.xlsx"))
    assert r.exit_code == 0, r.output
    wb = load_workbook(tmp_path / "r.xlsx")
    assert wb.sheetnames == ["指标概览", "年度轨迹", "数据来源"]
    assert wb["指标概览"].max_row == 1 + len(load_indicators().ids)  # header + one row per indicator
    assert wb["年度轨迹"].cell(1, 4).value == "2020-12-31"


def test_bad_input_is_one_line(run, tmp_path):
    r = run("--town", "火星镇", "--out", str(tmp_path / "r.pdf"))
    assert r.exit_code == 1 and "unknown town '火星镇'" in r.output
    r = run("--town", "x", "--out", str(tmp_path / "r.docx"))
    assert r.exit_code == 1 and "use .pdf, .html or .xlsx" in r.output
    r = run("--town", "x", "--out", str(tmp_path / "r.pdf"), "--at", "2999-01-01")
    assert r.exit_code == 1 and "future" in r.output
