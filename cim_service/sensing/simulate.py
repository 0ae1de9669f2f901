"""The living city's demo: realistic readings of the catalog's sensors, published through the broker.

Deterministic for a seed (the same seed, nodes and start give the same messages): which nodes report, which go
silent, their battery, their radio and the ground under them. The physical story, in the district's own
coordinates:

- **rain**: a Gaussian rain cell (~3.5 km wide, 60 mm/h at its centre) crosses Minhang from west to east once
  every ``cell_period_s``. Its track is *aimed*: it runs along the latitude of the lowest-lying key sites of the
  western half (the gauges with the deepest hollows), so the story opens where water gathers first;
- **water depth** at a gauge rises with the rain over it, in proportion to the site's hollowness, and drains away
  with a time constant that shortens with it: low-lying sites (underground spaces, metro entrances, then
  residential roads, bus stops; each site has its own seeded hollowness) rise and fall fastest and deepest;
- **batteries** drain with time and with every report, faster where the signal is weak (never up);
- **signal** varies: a node's own level, a slow swing, noise, and the rain's attenuation;
- **silence**: a seeded ``silent_share`` of the nodes (3 %) stop reporting after a seeded moment;
- **faults**, only when asked (``bad_rate`` > 0): that share of the messages is malformed (not JSON, a wrong type,
  a unit contradicting the datastream's) or out of range (a value below every declared minimum, a time a day
  ahead), so the bridge's refusals and dead letters can be seen;
- the other quantities of the neuron nodes walk around plausible values.

Cadence: a waterlogging gauge (a node with a ``water_depth`` stream) reports every ``gauge_interval_s`` (60 s),
every other node every ``node_interval_s`` (600 s), each at its own seeded phase, so the readings of an interval
are spread evenly. With ``backfill`` every node's first report falls in the interval before the start (sent at
once), so the map and the online rate are alive from the first minute. The plan's full scale is 100,000 nodes
every minute (``--node-interval 60`` on the plan-scale demo). The publisher paces itself to the schedule (QoS 1
by default, the broker acknowledges each).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson

from cim_service.core.region import DISTRICT_BBOX

#: how much lower than the street a site kind lies (a gain on the water gathering there)
LOW_SITE_GAIN = {"地下空间": 2.2, "地铁出入口": 1.8, "小区道路": 1.0, "公交站点": 0.8}
#: the property of a waterlogging gauge (its presence makes a node a gauge)
DEPTH = "water_depth"
BASE_VALUES = {"air_temperature": (8.0, 2.0), "pm25": (35.0, 12.0), "tilt": (0.0, 0.05), "vehicle_count": (25.0, 10.0),
               "water_level": (2.8, 0.2), "power_load": (300.0, 80.0), "gas_concentration": (0.5, 0.3),
               "smoke": (0.2, 0.1)}
SIGNED = {"tilt", "air_temperature", "water_level"}
#: cm of water per minute per mm/h of rain at hollowness 1
GATHER_CM = 0.04
#: seconds water takes to drain (1/e) at hollowness 1; divided by sqrt(hollowness)
DRAIN_S = 900.0
#: the kinds of bad message (``bad_rate``) and what the bridge calls them
BAD_KINDS = ("not_json", "bad_type", "unit", "out_of_range", "time_range")


@dataclass
class Stream:
    """One datastream of the simulation."""

    id: int
    property: str


@dataclass
class Node:
    """One Thing: its datastreams and its state."""

    key: str
    lon: float
    lat: float
    fields: dict
    streams: list[Stream] = field(default_factory=list)
    phase: float = 0.0
    silent_after: float | None = None
    battery: float = 100.0
    signal_base: float = -80.0
    hollow: float = 1.0
    depth: float = 0.0
    values: dict[str, float] = field(default_factory=dict)

    @property
    def is_gauge(self) -> bool:
        """Tell whether the node measures water depth (a waterlogging gauge)."""
        return any(s.property == DEPTH for s in self.streams)


def _unit_hash(*parts: object) -> float:
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def build_nodes(streams: list[dict], *, seed: int, nodes: int | None, silent_share: float,
                silent_within_s: float = 1800.0) -> list[Node]:
    """Group datastream rows (``sta_entities.catalog_datastreams``) into nodes; keep ``nodes`` of them (seeded).

    A silent node stops after a seeded moment in the first ``silent_within_s`` seconds.
    """
    by_key: dict[str, Node] = {}
    for s in sorted(streams, key=lambda r: r["id"]):
        node = by_key.get(s["feature_key"])
        if node is None:
            node = by_key[s["feature_key"]] = Node(s["feature_key"], s["lon"], s["lat"], s["fields"] or {})
        node.streams.append(Stream(s["id"], s["property"]))
    ordered = sorted(by_key.values(), key=lambda n: _unit_hash(seed, "pick", n.key))
    if nodes:
        ordered = ordered[:nodes]
    for node in ordered:
        node.phase = _unit_hash(seed, node.key)
        node.battery = 30.0 + 70.0 * _unit_hash(seed, "battery", node.key)
        node.signal_base = -65.0 - 30.0 * _unit_hash(seed, "signal", node.key)
        gain = LOW_SITE_GAIN.get(str(node.fields.get("site_kind")), 1.0)
        node.hollow = gain * (0.5 + _unit_hash(seed, "hollow", node.key))
        if _unit_hash(seed, "silent", node.key) < silent_share:
            node.silent_after = 60.0 + (silent_within_s - 60.0) * _unit_hash(seed, "when", node.key)
        for s in node.streams:
            base, spread = BASE_VALUES.get(s.property, (0.0, 1.0))
            node.values[s.property] = base + spread * (2 * _unit_hash(seed, "v0", node.key, s.property) - 1)
    return sorted(ordered, key=lambda n: (n.phase, n.key))


def aim_latitude(nodes: list[Node], share: float = 0.1) -> float:
    """Latitude the rain cell runs along: the median of the lowest-lying gauges (top ``share`` by hollowness) of
    the western half of the gauges; the district's middle without gauges."""
    x0, y0, x1, y1 = DISTRICT_BBOX
    gauges = [n for n in nodes if n.is_gauge]
    if not gauges:
        return (y0 + y1) / 2
    mid = float(np.median([n.lon for n in gauges]))
    west = sorted((n for n in gauges if n.lon <= mid), key=lambda n: -n.hollow)
    lowest = west[:max(3, int(len(west) * share))]
    return float(np.median([n.lat for n in lowest]))


@dataclass
class RainCell:
    """A rain cell crossing the district west to east once every ``period_s`` (mm/h at its centre)."""

    period_s: float = 3600.0
    peak_mm_h: float = 60.0
    sigma_deg: float = 0.035
    aim_lat: float | None = None

    def centre(self, t: float) -> tuple[float, float]:
        """(lon, lat) of the cell's centre ``t`` seconds after the simulation started."""
        x0, y0, x1, y1 = DISTRICT_BBOX
        f = (t % self.period_s) / self.period_s
        cx = x0 - 0.1 + (x1 - x0 + 0.2) * f
        aim = (y0 + y1) / 2 if self.aim_lat is None else self.aim_lat
        return cx, aim + 0.01 * math.sin(2 * math.pi * f)

    def intensity(self, lon: float, lat: float, t: float) -> float:
        """Rain intensity (mm/h) at a point, ``t`` seconds after the simulation started."""
        cx, cy = self.centre(t)
        d2 = (lon - cx) ** 2 + ((lat - cy) * 1.15) ** 2
        return self.peak_mm_h * math.exp(-d2 / (2 * self.sigma_deg**2))


def reading(node: Node, stream: Stream, t: float, dt: float, rain: float, rng: np.random.Generator) -> float:
    """The value of one stream at ``t`` (advancing the node's state by ``dt`` seconds under ``rain`` mm/h)."""
    p = stream.property
    if p == DEPTH:
        gathered = rain * node.hollow * GATHER_CM * dt / 60
        drained = node.depth * (1 - math.exp(-dt * math.sqrt(node.hollow) / DRAIN_S))
        node.depth = max(0.0, node.depth + gathered - drained)
        return round(node.depth, 1)
    if p == "signal":
        swing = 4.0 * math.sin(2 * math.pi * t / (3600.0 * (1 + _unit_hash("swing", node.key))))
        v = node.signal_base + swing + float(rng.normal(0, 2.0)) - rain * 0.08
        return round(min(-40.0, max(-140.0, v)), 1)
    if p == "battery":
        weak = max(0.0, (-node.signal_base - 70.0) / 30.0)  # a weak link retransmits: it costs charge
        node.battery = max(0.0, node.battery - (0.05 * dt / 3600 + 0.002) * (1 + weak))
        return round(node.battery, 2)
    base, spread = BASE_VALUES.get(p, (0.0, 1.0))
    v = node.values.get(p, base)
    v += (base - v) * 0.05 + spread * 0.1 * float(rng.standard_normal())
    if p == "air_temperature":
        v -= rain * 0.002
    node.values[p] = v
    return round(v if p in SIGNED else max(0.0, v), 2)


def _timestamp(due: float) -> str:
    return datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bad_payload(kind: str, due: float, value: float) -> bytes:
    """A message the bridge must refuse, of ``kind`` (:data:`BAD_KINDS`)."""
    ts = _timestamp(due)
    if kind == "not_json":
        return b"{result: " + str(value).encode() + b","
    if kind == "bad_type":
        return orjson.dumps({"phenomenonTime": ts, "result": f"{value} units"})
    if kind == "unit":
        return orjson.dumps({"phenomenonTime": ts, "result": value, "unitOfMeasurement": {"symbol": "furlong"}})
    if kind == "out_of_range":
        return orjson.dumps({"phenomenonTime": ts, "result": -1e9})  # below every declared minimum
    return orjson.dumps({"phenomenonTime": _timestamp(due + 86_400), "result": value})  # a day ahead


def schedule(nodes: list[Node], *, gauge_interval_s: float = 60.0, node_interval_s: float = 600.0,
             duration_s: float | None = None, seed: int = 0, rain: RainCell | None = None,
             clock: Callable[[], float] = time.time, backfill: bool = True, bad_rate: float = 0.0
             ) -> Iterator[tuple[float, list[tuple[int, bytes]]]]:
    """Yield (due time, [(datastream id, payload)]) of every node report in time order, forever or ``duration_s``.

    ``backfill``: each node's first report lies in the interval before the start.
    """
    rain = rain or RainCell()
    rng = np.random.default_rng(seed + 1)
    bad = np.random.default_rng(seed + 2)
    start = clock()
    lead = 1.0 if backfill else 0.0
    heap: list[tuple[float, int, int]] = []
    intervals = [gauge_interval_s if n.is_gauge else node_interval_s for n in nodes]
    for i, node in enumerate(nodes):
        heap.append(((node.phase - lead) * intervals[i], i, 0))
    heapq.heapify(heap)
    last: dict[int, float] = {}
    while heap:
        elapsed, i, k = heapq.heappop(heap)
        if duration_s is not None and elapsed >= duration_s:
            return
        node, interval = nodes[i], intervals[i]
        heapq.heappush(heap, ((k + 1 + node.phase - lead) * interval, i, k + 1))
        if node.silent_after is not None and elapsed > node.silent_after:
            continue
        dt = elapsed - last.get(i, elapsed - interval)
        last[i] = elapsed
        r = rain.intensity(node.lon, node.lat, elapsed - dt / 2)  # the rain of the interval, at its middle
        due = start + elapsed
        ts = _timestamp(due)
        msgs = []
        for s in node.streams:
            v = reading(node, s, elapsed, dt, r, rng)
            if bad_rate and bad.random() < bad_rate:
                msgs.append((s.id, bad_payload(BAD_KINDS[int(bad.integers(len(BAD_KINDS)))], due, v)))
            else:
                msgs.append((s.id, orjson.dumps({"phenomenonTime": ts, "result": v})))
        yield due, msgs


def publish(client, items: Iterator[tuple[float, list[tuple[int, bytes]]]], *, qos: int = 1,
            realtime: bool = True, on_sent: Callable[[int], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> int:
    """Publish the schedule with ``client`` (a :class:`cim_service.sensing.publisher.Publisher` or a paho client),
    paced to the due times when ``realtime``; return the messages sent."""
    sent = 0
    for due, msgs in items:
        if should_stop():
            break
        if realtime:
            while due - time.time() > 0:
                if should_stop():
                    return sent
                time.sleep(min(due - time.time(), 1.0))
        for ds, body in msgs:
            client.publish(f"v1.1/Datastreams({ds})/Observations", body, qos=qos)
            sent += 1
        if on_sent:
            on_sent(sent)
    return sent


def process_alive(pid: int) -> bool:
    """Tell whether process ``pid`` still runs (the simulator started by ``./scripts/run`` follows the service); a
    process that ended but is not yet reaped (a zombie) has ended."""
    import os
    from pathlib import Path

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
