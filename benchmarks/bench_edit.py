"""Edit → fresh tile: how soon an OGC API Features Part 4 edit shows in the vector tiles (run on demand, not in tests).

    python benchmarks/bench_edit.py --edits 30
    python benchmarks/bench_edit.py --database-url postgresql://.../cim --collection cameras --edits 20

Data: the given database as it is (it is written: features are changed, created and deleted), or a
``cim_bench_edit`` database on the server of ``--server-url`` (default: the project-local cluster) loaded once with
the demo at ``--scale`` (``baseline``: 18,778 cameras). The service runs under uvicorn (one worker, tile cache on);
the benchmark holds an ``editor`` key made for the run and an ``/events?layers=<collection>`` stream, as the web
map does.

Each round, for a random feature of the collection (seeded):

- **PATCH**: read the feature (its ``ETag``), fetch its z16 tile once (so the service's tile cache holds the old
  tile), then ``PATCH`` an enum field (``--field``, default the collection's first enum field) to another value with
  ``If-Match``, and poll the same tile URL every ``--poll-ms`` until the decoded MVT shows the new value;
- **POST**: create a feature ~10 m from it (the collection's required fields filled from their declarations) and
  poll its tile until the new feature is in it;
- **DELETE**: delete that feature again and poll until it is gone from the tile.

Polling re-requests the very URL the map asked for (no cache-busting parameter, no ``If-None-Match``): only the
service's own invalidation (the layer version in the tile cache's key, moved by ``NOTIFY cim_layer_changed``) can
make the new state appear. Rounds alternate between the collection tile (``/collections/{id}/tiles/…``, the
anonymous fast path) and the multi-layer tile (``/tiles/…?collections={id}``). Reported per kind: the edit request
alone, edit → ``layer`` event on the stream (the map refetches the layer's tiles on it) and edit → the tile showing
the edit (from sending the edit request), p50 / p95 / max, and the polls that still saw the old tile.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import mapbox_vector_tile
import morecantile
import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import named_database, serve  # noqa: E402

from cim_service.auth import create_api_key  # noqa: E402
from cim_service.core.catalog import LayerSpec, load_catalog  # noqa: E402
from cim_service.store.db import make_engine  # noqa: E402

ZOOM = 16
TMS = morecantile.tms.get("WebMercatorQuad")


def prepare(database_url: str | None, server_url: str | None, spec: LayerSpec, scale: str) -> str:
    """The database to edit (the benchmark's own loaded with the demo when its layer is empty)."""
    if database_url:
        return database_url
    url = named_database("cim_bench_edit", server_url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.execute(sa.text(f"SELECT count(*) FROM {spec.qualified_table}")).scalar_one()
        if n == 0:
            from pipelines.demo import load_demo

            print(f"loading the {scale} demo into cim_bench_edit (once)...", flush=True)
            load_demo(engine, load_catalog(), scale=scale)
    finally:
        engine.dispose()
    return url


def features(url: str, spec: LayerSpec, enum_field: str) -> list[tuple[int, float, float, str]]:
    """Every feature of the layer: id, lon, lat and the enum field's value."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                f'SELECT "id", ST_X("geom"), ST_Y("geom"), "{enum_field}" FROM {spec.qualified_table} '
                f'WHERE "geom" IS NOT NULL AND NOT "outside_district" ORDER BY "id"'))]
    finally:
        engine.dispose()


def new_properties(spec: LayerSpec, rng: random.Random) -> tuple[dict, str, str]:
    """Properties of a new feature (required fields from their declarations), its key field and key value."""
    props: dict = {}
    for f in spec.fields:
        if not f.required:
            continue
        if f.enum:
            props[f.name] = f.enum[0]
        elif f.pattern and (m := re.fullmatch(r"\^\\d\{(\d+)\}\$", f.pattern)):
            props[f.name] = "".join(rng.choice("0123456789") for _ in range(int(m.group(1))))
        elif f.type == "text":
            props[f.name] = f"bench-{rng.randrange(10**9)}"
        else:
            raise SystemExit(f"cannot make a value for required field {f.name!r} ({f.type}) of {spec.id}")
    key = spec.key[0] if spec.key else next(iter(props))
    return props, key, props[key]


class EventStream(threading.Thread):
    """Reads ``/events?layers=<id>``; puts (arrival time, version) of every ``layer`` event on ``self.events``."""

    def __init__(self, base: str, layer_id: str):
        super().__init__(daemon=True)
        self.url = f"{base}/events"
        self.layer_id = layer_id
        self.events: queue.Queue[tuple[float, int]] = queue.Queue()
        self.ready = threading.Event()
        self.client = httpx.Client(timeout=None)

    def run(self) -> None:
        """Stream until :meth:`close`."""
        with contextlib.suppress(httpx.HTTPError), \
                self.client.stream("GET", self.url, params={"layers": self.layer_id}) as r:
            r.raise_for_status()
            kind = None
            for line in r.iter_lines():
                self.ready.set()
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "layer":
                    data = orjson.loads(line[5:])
                    if data.get("layer") == self.layer_id:
                        self.events.put((time.perf_counter(), int(data["version"])))
                elif not line:
                    kind = None

    def close(self) -> None:
        """End the stream (the service then stops without waiting for it)."""
        self.client.close()

    def drain(self) -> None:
        """Forget events received so far."""
        while not self.events.empty():
            self.events.get_nowait()

    def next_after(self, t0: float, timeout: float) -> float | None:
        """Arrival time of the first event received after ``t0`` (None if none within ``timeout`` s)."""
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            try:
                t, _ = self.events.get(timeout=left)
            except queue.Empty:
                return None
            if t >= t0:
                return t
        return None


@dataclass
class Figures:
    """Timings of one kind of edit, in seconds."""

    request: list[float] = field(default_factory=list)
    event: list[float] = field(default_factory=list)
    visible: list[float] = field(default_factory=list)
    stale_polls: int = 0
    missed_events: int = 0


def tile_url(base: str, layer_id: str, lon: float, lat: float, multi: bool) -> str:
    """The z16 tile URL holding (lon, lat), as the map asks for it."""
    t = TMS.tile(lon, lat, ZOOM)
    if multi:
        return f"{base}/tiles/WebMercatorQuad/{ZOOM}/{t.x}/{t.y}?collections={layer_id}"
    return f"{base}/collections/{layer_id}/tiles/WebMercatorQuad/{ZOOM}/{t.x}/{t.y}"


def decoded(client: httpx.Client, url: str, layer_id: str) -> list[dict]:
    """The features of ``layer_id`` in the tile at ``url``."""
    r = client.get(url)
    if r.status_code == 204:
        return []
    r.raise_for_status()
    return mapbox_vector_tile.decode(r.content).get(layer_id, {}).get("features", [])


def wait_visible(client: httpx.Client, url: str, layer_id: str, shows, poll_s: float, limit_s: float,
                 t0: float, fig: Figures) -> None:
    """Poll ``url`` until ``shows(features)``; record the time since ``t0``."""
    while True:
        feats = decoded(client, url, layer_id)
        now = time.perf_counter()
        if shows(feats):
            fig.visible.append(now - t0)
            return
        fig.stale_polls += 1
        if now - t0 > limit_s:
            raise SystemExit(f"the edit did not show in {url} within {limit_s} s")
        time.sleep(poll_s)


def record_event(stream: EventStream, t0: float, fig: Figures) -> None:
    """Record edit → layer event (the event may already have arrived while the tile was polled)."""
    t = stream.next_after(t0, 5.0)
    if t is None:
        fig.missed_events += 1
    else:
        fig.event.append(t - t0)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url")
    ap.add_argument("--server-url", help="PostgreSQL server for the benchmark's own database")
    ap.add_argument("--scale", default="baseline", choices=["small", "baseline", "plan"])
    ap.add_argument("--collection", default="cameras", help="a point collection with an enum field")
    ap.add_argument("--field", help="the enum field to change (default: the collection's first)")
    ap.add_argument("--edits", type=int, default=30, help="rounds (each a PATCH, a POST and a DELETE)")
    ap.add_argument("--poll-ms", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    catalog = load_catalog()
    spec = catalog.get(args.collection)
    enum_field = args.field or next(f.name for f in spec.fields if f.enum)
    values = next(f.enum for f in spec.fields if f.name == enum_field)
    url = prepare(args.database_url, args.server_url, spec, args.scale)
    pool = features(url, spec, enum_field)
    engine = make_engine(url)
    try:
        key = create_api_key(engine, f"bench-edit-{os.getpid()}-{time.time_ns()}", "editor")
    finally:
        engine.dispose()
    rng = random.Random(args.seed)
    figs = {"PATCH": Figures(), "POST": Figures(), "DELETE": Figures()}
    poll_s, limit_s = args.poll_ms / 1000, 30.0
    lid = spec.id
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = serve(url, Path(tmp), {"CIM_TILE_CACHE": "on"})
        stream = EventStream(base, lid)
        try:
            stream.start()
            stream.ready.wait(10)
            auth = {"X-API-Key": key}
            with httpx.Client(timeout=30) as client:
                for i in range(args.edits):
                    fid, lon, lat, _ = rng.choice(pool)
                    multi = i % 2 == 1
                    # -- PATCH an enum field
                    item = client.get(f"{base}/collections/{lid}/items/{fid}", headers=auth)
                    item.raise_for_status()
                    old = item.json()["properties"][enum_field]
                    new = rng.choice([v for v in values if v != old])
                    turl = tile_url(base, lid, lon, lat, multi)
                    before = [f for f in decoded(client, turl, lid) if f.get("id") == fid]
                    assert before and before[0]["properties"].get(enum_field) == old, (fid, before)
                    stream.drain()
                    t0 = time.perf_counter()
                    r = client.patch(f"{base}/collections/{lid}/items/{fid}", headers={
                        **auth, "If-Match": item.headers["etag"], "Content-Type": "application/geo+json"},
                        content=orjson.dumps({"type": "Feature", "properties": {enum_field: new}}))
                    figs["PATCH"].request.append(time.perf_counter() - t0)
                    assert r.status_code == 204, (r.status_code, r.text)
                    wait_visible(client, turl, lid, lambda fs, fid=fid, new=new: any(
                        f.get("id") == fid and f["properties"].get(enum_field) == new for f in fs),
                        poll_s, limit_s, t0, figs["PATCH"])
                    record_event(stream, t0, figs["PATCH"])
                    # -- POST a feature next to it
                    props, kfield, kvalue = new_properties(spec, rng)
                    plon, plat = lon + rng.uniform(-1e-4, 1e-4), lat + rng.uniform(-1e-4, 1e-4)
                    turl = tile_url(base, lid, plon, plat, multi)
                    decoded(client, turl, lid)  # the old tile in the service's cache
                    stream.drain()
                    t0 = time.perf_counter()
                    r = client.post(f"{base}/collections/{lid}/items", headers={
                        **auth, "Content-Type": "application/geo+json"}, content=orjson.dumps({
                            "type": "Feature", "geometry": {"type": "Point", "coordinates": [plon, plat]},
                            "properties": props}))
                    figs["POST"].request.append(time.perf_counter() - t0)
                    assert r.status_code == 201, (r.status_code, r.text)
                    location = r.headers["location"]
                    wait_visible(client, turl, lid, lambda fs, k=kfield, v=kvalue: any(
                        f["properties"].get(k) == v for f in fs), poll_s, limit_s, t0, figs["POST"])
                    record_event(stream, t0, figs["POST"])
                    # -- DELETE it again
                    stream.drain()
                    t0 = time.perf_counter()
                    r = client.delete(location, headers=auth)
                    figs["DELETE"].request.append(time.perf_counter() - t0)
                    assert r.status_code == 204, (r.status_code, r.text)
                    wait_visible(client, turl, lid, lambda fs, k=kfield, v=kvalue: not any(
                        f["properties"].get(k) == v for f in fs), poll_s, limit_s, t0, figs["DELETE"])
                    record_event(stream, t0, figs["DELETE"])
        finally:
            stream.close()
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"{len(pool):,} features in {lid}; {args.edits} rounds, tiles z{ZOOM} polled every {args.poll_ms:g} ms "
          f"(collection and multi-layer tile alternately), field {enum_field!r}")
    print("| edit | n | request p50 / p95 / max ms | edit → layer event p50 / p95 / max ms "
          "| edit → visible in tile p50 / p95 / max ms | stale polls |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, fig in figs.items():
        def three(v: list[float]) -> str:
            return " / ".join(f"{pct(v, q) * 1000:.0f}" for q in (0.5, 0.95, 1.0)) if v else "—"
        missed = f" ({fig.missed_events} missed)" if fig.missed_events else ""
        print(f"| {kind} | {len(fig.request)} | {three(fig.request)} | {three(fig.event)}{missed} "
              f"| {three(fig.visible)} | {fig.stale_polls} |")
    print(f"load average after the run: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
