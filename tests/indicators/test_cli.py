"""``cim indicators`` on the hand-case database."""

from __future__ import annotations

import csv

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from cim_service.cli import app


@pytest.fixture
def env(hand, hand_url, put, sq, tmp_path, monkeypatch):
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 1000), name="乙镇")
    for i, (x, y) in enumerate([(100, 100), (900, 100), (500, 500), (100, 900)]):
        put("cameras", f"POINT({x} {y})", device_id=f"{i:020d}", camera_type="dome")
    monkeypatch.setenv("CIM_DATABASE_URL", hand_url)
    monkeypatch.setenv("CIM_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def test_table_csv_xlsx(env):
    out_csv, out_xlsx = env / "ind.csv", env / "ind.xlsx"
    r = CliRunner().invoke(app, ["indicators", "--town", "甲镇", "--csv", str(out_csv), "--xlsx", str(out_xlsx)])
    assert r.exit_code == 0, r.output
    assert "camera_density" in r.output and "甲镇 needs 176 more cameras" in r.output
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    density = next(row for row in rows if row["id"] == "camera_density")
    assert density["area"] == "甲镇" and float(density["value"]) == pytest.approx(4.0)
    ws = load_workbook(out_xlsx).active
    assert ws.max_row == len(rows) + 1 and ws.cell(1, 1).value == "id"


def test_unknown_town_fails(env):
    r = CliRunner().invoke(app, ["indicators", "--town", "火星镇"])
    assert r.exit_code == 1 and "unknown town '火星镇'" in r.output


def test_suggest_cameras(env):
    r = CliRunner().invoke(app, ["indicators", "suggest", "camera", "--n", "2"])
    assert r.exit_code == 0, r.output
    assert "closes the gap" in r.output and "suggested camera sites" in r.output
    r = CliRunner().invoke(app, ["indicators", "suggest", "bikes"])
    assert r.exit_code == 1 and "unknown suggestion kind" in r.output
