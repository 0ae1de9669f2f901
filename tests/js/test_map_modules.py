"""The map's ES modules: their Node unit tests (tests/js/*.test.mjs, Node's built-in test runner), how they
import each other, which of them stay pure, and that the page code names no layer of the catalog."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from cim_service.core.settings import PROJECT_ROOT
from cim_service.webmap.assets import (
    ENTRY_MODULE,
    MODULE_DIR,
    MODULE_SPECIFIER,
    STATIC_DIR,
    TEMPLATES_DIR,
    map_modules,
    module_import_map,
    read_text_asset,
)
from cim_service.webmap.page import build_page_config, render_page

#: Debian's Node.js (installed by scripts/bootstrap)
NODE = Path("/usr/bin/node")
HERE = Path(__file__).resolve().parent
#: modules without DOM or deck.gl access (unit-tested in Node)
PURE = ("basemap.js", "chart.js", "colour.js", "config.js", "fit.js", "format.js", "gcj02.js", "geometry.js", "i18n.js",
        "indicators.js", "inline.js", "label-place.js", "metrics.js", "state.js")
#: the specifier of a static import / re-export / dynamic import
IMPORT = re.compile(r"""(?:\bimport\s*(?:[\w$*{}\s,]+\s*from\s*)?|\bexport\s*[\w$*{}\s,]+\s*from\s*|\bimport\s*\()"""
                    r"""\s*['"`]([^'"`]+)['"`]""")


def _sources() -> dict[str, str]:
    """Every module's text by its name below static/ (the entry and static/js/*)."""
    sources = {ENTRY_MODULE: read_text_asset(ENTRY_MODULE)}
    sources.update({f"js/{name}": read_text_asset(f"js/{name}") for name in map_modules()})
    return sources


def test_node_unit_tests_pass():
    if not NODE.exists():
        pytest.fail(f"Node.js missing at {NODE} (apt-get install nodejs; ./scripts/bootstrap installs it)")
    files = sorted(HERE.glob("*.test.mjs"))
    assert len(files) >= 8, files
    result = subprocess.run([str(NODE), "--test", "--test-reporter=tap", *map(str, files)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    summary = re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", result.stdout, re.M)
    counts = {k: int(v) for k, v in summary}
    assert counts.get("fail") == 0 and counts.get("cancelled") == 0, counts
    assert counts.get("skipped") == 0 and counts.get("todo") == 0, f"no JS test may be skipped: {counts}"
    assert counts.get("pass", 0) >= 50 and counts["pass"] == counts["tests"], counts


def test_modules_import_each_other_through_the_import_map():
    known = {f"{MODULE_SPECIFIER}{name}" for name in map_modules()}
    seen = set()
    for name, text in _sources().items():
        specifiers = IMPORT.findall(text)
        unknown = [s for s in specifiers if s not in known]
        assert not unknown, f"{name} imports {unknown}: modules import each other as {MODULE_SPECIFIER}<name> " \
                            "(a relative import cannot be resolved from the export's data: URLs)"
        seen.update(specifiers)
    assert seen == known, f"modules nothing imports: {sorted(known - seen)}"


def test_node_resolves_the_specifiers_like_the_page():
    package = json.loads((STATIC_DIR / "package.json").read_text(encoding="utf-8"))
    assert package["type"] == "module"
    assert package["imports"] == {f"{MODULE_SPECIFIER}*": f"./{MODULE_DIR.relative_to(STATIC_DIR).as_posix()}/*"}
    served = module_import_map(inline=False)["imports"]
    assert served == {f"{MODULE_SPECIFIER}{n}": f"/map/static/js/{n}" for n in map_modules()}


#: the live map's logic (js/live.js; its page side is js/live-panel.js), pure as well
PURE_LIVE = ("live.js",)


def test_pure_modules_touch_no_dom_and_no_deck():
    assert set(PURE) | set(PURE_LIVE) <= set(map_modules())
    for name in (*PURE, *PURE_LIVE):
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", read_text_asset(f"js/{name}"), flags=re.S)
        found = re.findall(r"\b(document|window|createDeck|updateDeck|HTMLElement|localStorage)\b", code)
        assert not found, f"js/{name} is meant to be pure but uses {sorted(set(found))}"


def test_page_code_names_no_layer(catalog):
    texts = {**_sources(), "templates/map.html": (TEMPLATES_DIR / "map.html").read_text(encoding="utf-8")}
    for spec in catalog:
        literal = re.compile(rf"""['"`]{re.escape(spec.id)}['"`]""")
        named = [name for name, text in texts.items() if literal.search(text)]
        assert not named, f"{named} name the layer {spec.id!r}: take layers from the page config (roles)"


def test_export_maps_the_modules_to_their_text(catalog):
    config = build_page_config(catalog, inline={"layers": {}, "indicators": []})
    html = render_page(config, inline_assets=True)
    match = re.search(r'<script type="importmap">(.*?)</script>', html, re.S)
    assert match, "the export has no import map"
    imports = json.loads(match.group(1))["imports"]
    assert sorted(imports) == sorted(f"{MODULE_SPECIFIER}{n}" for n in map_modules())
    for name in map_modules():
        url = imports[f"{MODULE_SPECIFIER}{name}"]
        assert url.startswith("data:text/javascript,")
        assert not re.search(r"[\s<>\"#?]", url), f"{name}: unsafe characters in its data: URL"
        assert unquote(url.split(",", 1)[1]) == read_text_asset(f"js/{name}")
    assert '<script type="module">' in html and "modulepreload" not in html
    assert read_text_asset(ENTRY_MODULE).replace("</script", "<\\/script") in html


EARLY_REQUESTS = """
import { baseLayerIds } from '{modules}/config.js';
import { itemsUrl } from '{modules}/data.js';
const [config, script] = JSON.parse(process.argv[2]);
const requested = [];
globalThis.window = { CIM_CONFIG: config };
globalThis.fetch = (url) => { requested.push(url); return new Promise(() => {}); };
new Function(script)();
const made = [...baseLayerIds(config).map((id) => itemsUrl(config, id)), config.endpoints.indicators,
  config.endpoints.rasters, config.endpoints.labels];
console.log(JSON.stringify({ requested, prefetched: Object.keys(window.__cimPrefetch), made }));
"""


def test_early_requests_are_the_ones_the_modules_make(catalog, tmp_path):
    """The page's inline script requests, before the bundle, exactly the URLs the modules then ask for."""
    if not NODE.exists():
        pytest.fail(f"Node.js missing at {NODE} (apt-get install nodejs; ./scripts/bootstrap installs it)")
    config = build_page_config(catalog)
    html = render_page(config)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    early = [s for s in scripts if "__cimPrefetch" in s]
    assert len(early) == 1, "the page has one early-request script"
    probe = tmp_path / "early-requests.mjs"
    probe.write_text(EARLY_REQUESTS.replace("{modules}", MODULE_DIR.as_uri()), encoding="utf-8")
    result = subprocess.run([str(NODE), str(probe), json.dumps([config, early[0]])], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["requested"] == seen["prefetched"] == seen["made"]
    base = [f"/collections/{catalog.require_role(role).id}/items?limit=1000"
            for role in ("district_outline", "town_boundaries")]
    assert seen["made"][:2] == base
