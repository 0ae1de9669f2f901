"""Indicators are declarations: a new one in a YAML file of its own is computed, served and printed, no code.

Also: the indicator code names no layer (ids live in ``indicators.yaml`` and the catalog roles), and a
declaration that names an unknown layer, field or setting is refused with the file and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cim_service.app import create_app
from cim_service.cli import app as cli
from cim_service.core.settings import PROJECT_ROOT, Settings
from cim_service.indicators.catalog import indicators_for, load_indicators
from cim_service.indicators.engine import IndicatorEngine
from tests.test_no_layer_ids import literals

CODE = [*sorted((PROJECT_ROOT / "cim_service" / "indicators").glob("*.py")),
        PROJECT_ROOT / "cim_service" / "commands" / "indicators.py",
        PROJECT_ROOT / "cim_service" / "routes" / "indicators.py"]

EXTRA = """
indicators:
  - id: ptz_cameras
    name_zh: 球机数量
    name_en: PTZ cameras
    unit: 个
    target: 10
    binding: expected
    kind: count
    params: {layer: cameras, where: {camera_type: ptz}}
    town_target: by_area
    noun: PTZ cameras
    noun_zh: 球机
    source: "a count with a where, declared outside the built-in catalog"
  - id: iot_density
    name_zh: 感知节点密度
    name_en: IoT node density
    unit: 个/平方公里
    target: 300
    binding: expected
    kind: density
    params: {layer: iot_nodes}
    noun: IoT nodes
    noun_zh: 感知节点
    source: "the density of another point layer"
"""


def test_the_indicator_code_names_no_layer(catalog):
    names = {spec.id for spec in catalog} | {spec.table for spec in catalog}
    found = []
    for path in CODE:
        for line, text in literals(path):
            for name in names:
                qualified = re.search(rf'\bcim"?\."?{name}\b', text)
                word = "_" in name and re.search(rf"\b{name}\b", text)
                if text == name or qualified or word:
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {name!r}")
    assert len(CODE) > 15 and found == []


@pytest.fixture
def extra(tmp_path) -> Path:
    folder = tmp_path / "indicators.d"
    folder.mkdir()
    (folder / "city.yaml").write_text(EXTRA, encoding="utf-8")
    return folder


@pytest.fixture
def drawn(put, sq):
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 1000), name="乙镇")
    for i, (x, y, kind) in enumerate([(100, 100, "ptz"), (200, 200, "ptz"), (300, 300, "ptz"), (400, 400, "dome"),
                                      (1500, 500, "ptz")]):
        put("cameras", f"POINT({x} {y})", device_id=f"{i:020d}", camera_type=kind)
    for i in range(2):
        put("iot_nodes", f"POINT({1200 + 100 * i} 500)", node_id=f"n{i}", sensor_kind="water")


def test_a_new_indicator_in_a_file_of_its_own_is_served(hand, hand_url, extra, drawn, tmp_path):
    settings = Settings(database_url=hand_url, environment="test", home=tmp_path, indicators_dir=extra,
                        gap_refresh=False)
    with TestClient(create_app(settings)) as client:
        ptz = client.get("/indicators/ptz_cameras").json()
        density = client.get("/indicators/iot_density", params={"town": "乙镇"}).json()
        listed = [r["id"] for r in client.get("/indicators").json()["indicators"]]
        built_in = client.get("/indicators/camera_density").json()
    assert ptz["value"] == 4 and ptz["inputs"].keys() >= {"cameras", "towns"}
    assert {t["town"]: (t["value"], t["target"]) for t in ptz["towns"]} == {"甲镇": (3, 5), "乙镇": (1, 5)}
    assert density["value"] == pytest.approx(2.0) and density["district_value"] == pytest.approx(1.0)
    assert density["gap"] == "乙镇 needs 298 more IoT nodes to reach 300/km²"
    assert listed[-2:] == ["ptz_cameras", "iot_density"] and len(listed) == len(load_indicators().ids) + 2
    assert built_in["value"] == pytest.approx(2.5)  # the built-in ones are still there
    with TestClient(create_app(Settings(database_url=hand_url, environment="test", home=tmp_path,
                                        gap_refresh=False))) as client:
        assert client.get("/indicators/ptz_cameras").status_code == 404  # not declared there


def test_a_new_indicator_in_a_file_of_its_own_is_printed_by_the_cli(hand, hand_url, extra, drawn, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("CIM_DATABASE_URL", hand_url)
    monkeypatch.setenv("CIM_HOME", str(tmp_path))
    monkeypatch.setenv("CIM_INDICATORS_DIR", str(extra))
    monkeypatch.setenv("COLUMNS", "200")
    out_csv = tmp_path / "rows.csv"
    r = CliRunner().invoke(cli, ["indicators", "--town", "甲镇", "--csv", str(out_csv)])
    assert r.exit_code == 0, r.output
    assert "ptz_cameras" in r.output and "甲镇 needs 2 more PTZ cameras (target 5)" in r.output
    rows = [line for line in out_csv.read_text(encoding="utf-8").splitlines() if line.startswith("iot_density,")]
    assert len(rows) == 1 and ",甲镇," in rows[0] and ",no_data," not in rows[0]


@pytest.mark.parametrize(("change", "message"), [
    ("{layer: cameras}", None),
    ("{layer: bikes}", "indicator ptz_cameras: unknown input layers ['bikes']"),
    ("{layer: cameras, where: {colour: red}}", "indicator ptz_cameras: layer cameras has no field 'colour'"),
    ("{layer: cameras, radius_m: 5}", "invalid params for kind count"),
    ("{coverage: bus}", "invalid params for kind count"),
])
def test_a_wrong_declaration_is_refused_naming_the_problem(hand, catalog, tmp_path, change, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "bad.yaml").write_text(EXTRA.replace("{layer: cameras, where: {camera_type: ptz}}", change),
                                     encoding="utf-8")
    settings = Settings(database_url="postgresql://x@127.0.0.1:1/x", environment="test", home=tmp_path,
                        indicators_dir=folder)
    if message is None:
        assert "ptz_cameras" in IndicatorEngine(hand, catalog, settings).indicators
        return
    with pytest.raises(ValueError) as err:
        IndicatorEngine(hand, catalog, settings)
    assert message in str(err.value)
    if "params" in message:
        assert str(folder / "bad.yaml") in str(err.value)


def test_unknown_settings_and_suggestion_names_are_refused(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "bad.yaml").write_text("coverages:\n  bus:\n    stations: bus_stops\n    radius_m: {setting: nope}\n",
                                     encoding="utf-8")
    with pytest.raises(ValueError, match="unknown setting 'nope'"):
        indicators_for(Settings(environment="test", home=tmp_path, indicators_dir=folder))
    (folder / "bad.yaml").write_text("suggestions:\n  - {id: g5b, aliases: [5G], method: deficit, "
                                     "hexes: gap_camera_hex, describe: x, indicators: [g5_stations]}\n",
                                     encoding="utf-8")
    with pytest.raises(ValueError, match="suggestion kinds share names: \\['5g'\\]"):
        indicators_for(Settings(environment="test", home=tmp_path, indicators_dir=folder))


def test_the_cli_names_a_wrong_declaration_in_one_line(hand, hand_url, tmp_path, monkeypatch):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "bad.yaml").write_text(EXTRA.replace("{layer: cameras, where: {camera_type: ptz}}", "{layer: bikes}"),
                                     encoding="utf-8")
    monkeypatch.setenv("CIM_DATABASE_URL", hand_url)
    monkeypatch.setenv("CIM_HOME", str(tmp_path))
    monkeypatch.setenv("CIM_INDICATORS_DIR", str(folder))
    r = CliRunner().invoke(cli, ["indicators"])
    assert r.exit_code == 1 and r.output.strip() == "error: indicator ptz_cameras: unknown input layers ['bikes']"
