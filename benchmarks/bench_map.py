"""Web map benchmark: first meaningful paint and tile requests per view in headless Chromium (run on demand).

    python benchmarks/bench_map.py                       # small demo in `cim_bench_map` on the local cluster
    python benchmarks/bench_map.py --database-url postgresql://...  --runs 7 --json benchmarks/results/map.json
    python benchmarks/bench_map.py --query 'view=3d'         # the 3D view (or 'screen=ops')
    python benchmarks/bench_map.py --baseline /tmp/main --runs 5 --sizes 1920x1080   # A/B against another checkout

The service runs under uvicorn (one worker, 127.0.0.1) in its own process and is warmed by one unmeasured page
load. Each measured run opens the map in a fresh browser context (empty HTTP cache: the deck.gl bundle
is fetched again) and reads ``window.__cimMetrics``: ``firstMeaningfulPaintMs`` is the first deck.gl
``onAfterRender`` after the district, the towns, the indicators (choropleth) and every visible tile layer's
viewport have loaded, on the page's Performance clock (0 = navigation start); the map's labels are not part
of it (they are drawn from the frame after it; ``__cimMetrics.fmpLayers`` lists what it drew). ``committed`` is
the start of the next frame, i.e. when that frame's work was committed: in headless Chromium the WebGL canvas is
read back for the software compositor, so this includes SwiftShader executing the FMP frame's draws (first draws
of a layer type compile its pipeline: ~0.3-0.7 s). From the Resource Timing entries it also reports when the
last tile response ended (what the service and network contribute) and how many tiles
one view needs.
A second scenario zooms into a town (zoom 14) and counts the extra tile requests of that view. In the 3D view
(``--query view=3d`` or ``screen=ops``) a scripted pan then moves the camera east for 60 frames and reports the
frame times (requestAnimationFrame to requestAnimationFrame while deck.gl redraws each step): their p95 and
median, maximum, and how often the page changed the drawing-buffer resolution during it (``pan_switches``,
counted at ``deck.setProps``: 1 when the whole pan keeps the reduced resolution of a moving camera, motion.js;
the switch back comes after it).

Targets (issue 13; headless Chromium, software WebGL): first meaningful paint at 1920×1080 < 1.5 s in 2D and
< 2.5 s in 3D, 3D pan frame time p95 < 100 ms, at most 54 tile requests per view. The machine's other load
changes these figures: state it beside them. ``--baseline DIR`` also serves a checkout of another commit (e.g.
``git archive main | tar -x -C DIR``; its ``.cim`` linked to this one's for the glyphs) from the same database and
alternates the two services' page loads run by run, so both see the same load: the table then has a row per
checkout and view, and the ratio of their FMP medians.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

BENCH_DB = "cim_bench_map"
FMP = "window.__cimMetrics && window.__cimMetrics.fmpFrameCommittedMs !== null"
RESOURCES = """() => performance.getEntriesByType('resource').map(e => ({
    name: e.name, start: e.startTime, end: e.responseEnd, bytes: e.transferSize}))"""


def prepare_database(url: str | None) -> str:
    """Return the URL of a database holding the small demo (created once on the local cluster)."""
    if url:
        return url
    from _common import named_database

    from cim_service.core.catalog import load_catalog
    from cim_service.store.db import make_engine
    from pipelines.demo import load_demo

    url = named_database(BENCH_DB)
    catalog = load_catalog()
    engine = make_engine(url)
    load_demo(engine, catalog, scale="small")
    engine.dispose()
    return url


def start_service(database_url: str, project: Path = PROJECT) -> tuple[subprocess.Popen, str]:
    """Run the service of the checkout ``project`` with uvicorn on a free loopback port; return the process and
    its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CIM_DATABASE_URL": database_url, "CIM_LOG_JSON": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "cim_service.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env, cwd=project)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/map", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the service did not start")


def measure(browser, base: str, width: int, height: int, query: str = "") -> dict:
    """Open the map once in a fresh context (``query``: the page's query string); return its paint metrics and
    tile requests."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(f"{base}/map" + (f"?{query}" if query else ""))
        page.wait_for_function(FMP, timeout=60_000)
        metrics = page.evaluate("window.__cimMetrics")
        resources = page.evaluate(RESOURCES)
        tiles = [r for r in resources if "/tiles/" in r["name"]]
        result = {
            "fmp_ms": metrics["firstMeaningfulPaintMs"],
            "fmp_committed_ms": metrics["fmpFrameCommittedMs"],
            "first_render_ms": metrics["firstRenderMs"],
            "tiles_done_ms": max((r["end"] for r in tiles), default=None),
            "bundle_done_ms": max((r["end"] for r in resources if r["name"].endswith("/deck.js")), default=None),
            "tile_requests": len(tiles),
            "tile_kb": sum(r["bytes"] for r in tiles) / 1024,
        }
        pan, switches = pan_times(page) if is_3d(query) else (None, None)
        result["pan_p95_ms"] = percentile(pan, 0.95) if pan else None
        result["pan_median_ms"] = statistics.median(pan) if pan else None
        result["pan_max_ms"] = max(pan) if pan else None
        result["pan_switches"] = switches
        zoomed = zoom_in(page)
        result["zoom14_tile_requests"] = zoomed
        return result
    finally:
        context.close()


#: frames of the scripted 3D pan, and the camera's step east per frame (degrees of longitude)
PAN_FRAMES = 60
PAN_STEP_DEG = 0.0004
PAN = """([frames, step]) => new Promise((resolve) => {
  const deck = window.__cimMap.deck, start = window.__cimMap.viewState(), times = [];
  // the drawing-buffer resolution changes the page asks for during the pan (motion.js), whatever the checkout
  const setProps = deck.setProps;
  let switches = 0, ratio = deck.props.useDevicePixels;
  deck.setProps = function (props) {
    if (props && 'useDevicePixels' in props && props.useDevicePixels !== ratio) {
      switches += 1;
      ratio = props.useDevicePixels;
    }
    return setProps.call(this, props);
  };
  let i = 0;
  const next = (t) => {
    times.push(t);
    if (i >= frames) {
      deck.setProps = setProps;
      resolve({ times: times.slice(1).map((x, k) => x - times[k]), switches });
      return;
    }
    i += 1;
    window.updateDeck({ initialViewState: Object.assign({}, start, { longitude: start.longitude + i * step }) }, deck);
    requestAnimationFrame(next);
  };
  requestAnimationFrame(next);
})"""


def is_3d(query: str) -> bool:
    """Whether the page's query opens the 3D view (the operations screen does too)."""
    return "view=3d" in query or "screen=ops" in query


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def pan_times(page) -> tuple[list[float], int]:
    """Pan the 3D view east for PAN_FRAMES frames; return the frame times (ms) and how often the page changed
    the drawing-buffer resolution during the pan. In software WebGL the map draws a moving camera's frames at a
    lower resolution (``__cimMetrics.pixelRatio``, static/js/motion.js): one change when the whole pan keeps it."""
    page.wait_for_timeout(500)
    pan = page.evaluate(PAN, [PAN_FRAMES, PAN_STEP_DEG])
    return pan["times"], pan["switches"]


def zoom_in(page) -> int:
    """Jump to zoom 14 over the district's centre; return the tile requests that view adds."""
    before = page.evaluate("performance.getEntriesByType('resource').length")
    page.evaluate("""() => { const c = window.CIM_CONFIG.district_bbox;
        window.__cimMetrics.tilesLoaded = {};
        window.updateDeck({initialViewState: {longitude: (c[0] + c[2]) / 2, latitude: (c[1] + c[3]) / 2,
                                              zoom: 14}}, window.__cimMap.deck); }""")
    page.wait_for_function("() => { const m = window.__cimMetrics, s = window.__cimMap.state;"
                           " return Object.keys(m.tilesLoaded).length > 0; }", timeout=60_000)
    page.wait_for_timeout(1500)
    entries = page.evaluate(RESOURCES)[before:]
    return sum(1 for e in entries if "/tiles/" in e["name"])


def summarise(runs: list[dict]) -> dict:
    """Median of every metric over the runs."""
    keys = runs[0].keys()
    return {k: statistics.median([r[k] for r in runs if r[k] is not None] or [0]) for k in keys}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the raw runs and medians here")
    parser.add_argument("--query", default="", help="the map page's query string, e.g. view=3d or screen=ops")
    parser.add_argument("--sizes", default="1920x1080,1600x900,1366x768", help="viewports, comma-separated")
    parser.add_argument("--baseline", type=Path, help="a checkout of another commit, measured alternately (A/B)")
    args = parser.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "cim_service" / "app.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a checkout of this project")
    url = prepare_database(args.database_url)
    checkouts = {"this": PROJECT} if args.baseline is None else {"baseline": args.baseline.resolve(), "this": PROJECT}
    services = {name: start_service(url, path) for name, path in checkouts.items()}
    from playwright.sync_api import sync_playwright

    report: dict[str, object] = {"target_fmp_ms": 2500 if is_3d(args.query) else 1500, "target_pan_p95_ms": 100,
                                 "target_tile_requests": 54, "cpus": os.cpu_count(), "query": args.query,
                                 "checkouts": {k: str(v) for k, v in checkouts.items()},
                                 "load_avg": os.getloadavg(), "views": {}}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for _, base in services.values():
                measure(browser, base, 1600, 900)  # warm the service (tile cache, pool, shader cache)
            for width, height in (tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")):
                runs: dict[str, list[dict]] = {name: [] for name in services}
                for _ in range(args.runs):
                    for name, (_, base) in services.items():  # alternated: both under the same load
                        runs[name].append(measure(browser, base, width, height, args.query))
                for name, measured in runs.items():
                    key = f"{width}x{height}" if args.baseline is None else f"{name} {width}x{height}"
                    report["views"][key] = {"median": summarise(measured), "runs": measured}
            browser.close()
    finally:
        for proc, _ in services.values():
            proc.terminate()
            proc.wait(timeout=10)
    print(f"{'view':>19} {'FMP ms':>8} {'committed':>9} {'1st frame':>9} {'bundle':>7} {'tiles done':>10} "
          f"{'tiles':>6} {'tile KB':>8} {'z14 tiles':>9} {'pan p95':>8} {'pan p50':>8} {'pan max':>8} {'switches':>8}")
    for view, data in report["views"].items():
        m = data["median"]
        print(f"{view:>19} {m['fmp_ms']:8.0f} {m['fmp_committed_ms']:9.0f} {m['first_render_ms']:9.0f} "
              f"{m['bundle_done_ms']:7.0f} {m['tiles_done_ms']:10.0f} {m['tile_requests']:6.0f} {m['tile_kb']:8.1f} "
              f"{m['zoom14_tile_requests']:9.0f} {m['pan_p95_ms']:8.0f} {m['pan_median_ms']:8.0f} "
              f"{m['pan_max_ms']:8.0f} {m['pan_switches']:8.0f}")
    if args.baseline is not None:
        for size in args.sizes.split(","):
            this, base = (report["views"][f"{n} {size}"]["median"] for n in ("this", "baseline"))
            print(f"{size}: FMP this/baseline {this['fmp_ms'] / base['fmp_ms']:.2f}, "
                  f"committed this/baseline {this['fmp_committed_ms'] / base['fmp_committed_ms']:.2f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
