"""``cim map --out``: the self-contained HTML export, checked as text and opened from file:// in Chromium."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from cim_service.cli import app as cli
from cim_service.webmap.assets import deck_bundle_path
from tests.browser.conftest import attach_log
from tests.browser.pixels import dark_share, is_background, rgb

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def exported(tmp_path_factory, demo_database_url, monkeypatch_module) -> tuple[str, object]:
    """Run ``cim map --out`` once on the demo database."""
    out = tmp_path_factory.mktemp("export") / "minhang-map.html"
    monkeypatch_module.setenv("CIM_DATABASE_URL", demo_database_url)
    monkeypatch_module.setenv("CIM_ENVIRONMENT", "test")
    result = CliRunner().invoke(cli, ["map", "--out", str(out), "--sample", "200"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "features in" in result.output
    return out.read_text(encoding="utf-8"), out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_export_has_no_external_url(exported):
    html, _ = exported
    assert not re.search(r'<(?:script|link|img)[^>]+(?:src|href)="(?!data:)', html), "an asset is not inlined"
    bundle = deck_bundle_path().read_text(encoding="utf-8")
    assert bundle in html, "the deck.gl bundle must be inlined verbatim"
    ours = html.replace(bundle, "")
    assert not re.search(r"https?://", ours), re.findall(r".{40}https?://.{40}", ours)[:3]
    assert "CIM_CONFIG" in ours and '"inline":{' in ours


def test_export_inlines_data(exported, engine):
    import json

    import sqlalchemy as sa

    html, _ = exported
    config = json.loads(re.search(r"window\.CIM_CONFIG = (\{.*?\});</script>", html, re.S).group(1))
    inline = config["inline"]
    with engine.connect() as conn:
        towns = conn.execute(sa.text("SELECT count(*) FROM cim.towns")).scalar_one()
        cameras = conn.execute(sa.text("SELECT count(*) FROM cim.cameras")).scalar_one()
    assert len(inline["towns"]["features"]) == towns
    assert len(inline["district"]["features"]) == 1
    assert len(inline["layers"]["cameras"]["features"]) == min(200, cameras)
    assert "people" not in inline["layers"], "restricted layers must not be exported"
    basemap = [layer["id"] for layer in config["layers"] if layer["basemap"] or layer["height_field"]]
    assert basemap and all(inline["layers"][b]["features"] for b in basemap), "the basemap and 3D layers go along"
    assert config["basemap"] is None, "an external basemap is never part of the offline export"
    assert inline["indicators"] and any(i["towns"] for i in inline["indicators"])
    # the labels and their font travel with the export
    labels = {layer["id"]: layer for layer in inline["labels"]["layers"]}
    with engine.connect() as conn:
        town_names = set(conn.execute(sa.text("SELECT name FROM cim.towns")).scalars())
    assert {item["zh"] for item in labels["towns"]["labels"]} == town_names
    assert labels["main_roads"]["labels"] and labels["metro_stations"]["labels"]
    assert inline["labels"]["font"]["url"].startswith("data:font/woff2;base64,")


def test_export_opens_offline_and_draws(browser, exported, artifacts):
    _, path = exported
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    page = context.new_page()
    log = attach_log(page)
    try:
        page.goto(path.as_uri())
        page.wait_for_function("window.__cimMetrics && window.__cimMetrics.firstMeaningfulPaintMs !== null",
                               timeout=40_000)
        page.wait_for_timeout(300)
        pixels = rgb(page.locator("#map").screenshot(path=str(artifacts / "export-1600x900.png")))
        assert {u.split(":", 1)[0] for u in log.requests} <= {"file", "data"}, log.requests
        assert log.errors() == []
        assert dark_share(pixels) > 0.002
        assert (~is_background(pixels)).mean() > 0.2
        assert page.locator("#indicator-towns tbody tr").count() > 10
        page.wait_for_function("(() => { const l = window.__cimMetrics.labels; return l && l.fontLoaded"
                               " && l.byLayer.towns > 0; })()", timeout=20_000)
        # the 3D view offline: the exported buildings extruded over the exported basemap layers
        page.locator("#view-3d").click()
        page.wait_for_function("(() => { const v = window.__cimMetrics.view; return v && v.pitch >= 45; })()",
                               timeout=15_000)
        got = page.evaluate("window.__cimMetrics")
        extruded = page.evaluate("window.CIM_CONFIG.layers.filter((l) => l.height_field).map((l) => l.id)")
        basemap = page.evaluate("window.CIM_CONFIG.layers.filter((l) => l.basemap).map((l) => l.id)")
        assert extruded and set(extruded) <= set(got["extrudedLayers"]), got["extrudedLayers"]
        assert set(basemap) <= set(got["drawnLayers"])
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "export-3d.png"))
        assert {u.split(":", 1)[0] for u in log.requests} <= {"file", "data"}, log.requests
        assert log.errors() == []
    finally:
        context.close()
