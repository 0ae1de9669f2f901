"""The living city's demo: realistic readings of the catalog's sensors, published through the broker.

Deterministic for a seed: which nodes report, which go silent, their battery and the ground under them. Physical
story, in the district's own coordinates:

- a rain cell (Gaussian, ~4 km wide) crosses Minhang from west to east once every ``cell_period_s``;
- water depth at a site rises with the rain over it and drains away, fastest at low-lying sites: underground
  spaces and metro entrances sit lowest, each site has its own hollowness (seeded);
- batteries drain with every report, a little faster in the cold and with a weak signal;
- a few nodes (``silent_share``) stop reporting after a seeded moment;
- the other quantities of the neuron nodes walk around plausible values.

Each node reports every ``interval_s`` at its own phase, so a minute's readings are spread evenly; the publisher
paces itself to that schedule (QoS 1 by default, the broker acknowledges each).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson

from cim_service.core.region import DISTRICT_BBOX

#: how much lower than the street a site kind lies (a water-depth gain)
LOW_SITE_GAIN = {"地下空间": 2.2, "地铁出入口": 1.8, "小区道路": 1.0, "公交站点": 0.8}
BASE_VALUES = {"air_temperature": (8.0, 2.0), "pm25": (35.0, 12.0), "tilt": (0.0, 0.05), "vehicle_count": (25.0, 10.0),
               "water_level": (2.8, 0.2), "power_load": (300.0, 80.0), "gas_concentration": (0.5, 0.3),
               "smoke": (0.2, 0.1)}


@dataclass
class Stream:
    """One datastream of the simulation."""

    id: int
    property: str
    lon: float
    lat: float
    fields: dict


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
    hollow: float = 1.0
    depth: float = 0.0
    values: dict[str, float] = field(default_factory=dict)


def _unit_hash(*parts: object) -> float:
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def build_nodes(streams: list[dict], *, seed: int, nodes: int | None, silent_share: float) -> list[Node]:
    """Group datastream rows (``sta_entities.catalog_datastreams``) into nodes; keep ``nodes`` of them (seeded)."""
    by_key: dict[str, Node] = {}
    for s in streams:
        node = by_key.get(s["feature_key"])
        if node is None:
            node = by_key[s["feature_key"]] = Node(s["feature_key"], s["lon"], s["lat"], s["fields"] or {})
        node.streams.append(Stream(s["id"], s["property"], s["lon"], s["lat"], s["fields"] or {}))
    ordered = sorted(by_key.values(), key=lambda n: _unit_hash(seed, "pick", n.key))
    if nodes is not None:
        ordered = ordered[:nodes]
    rng = np.random.default_rng(seed)
    for node in ordered:
        u = _unit_hash(seed, node.key)
        node.phase = u
        node.battery = 35.0 + 65.0 * _unit_hash(seed, "battery", node.key)
        gain = LOW_SITE_GAIN.get(str(node.fields.get("site_kind")), 1.0)
        node.hollow = gain * (0.5 + _unit_hash(seed, "hollow", node.key))
        if _unit_hash(seed, "silent", node.key) < silent_share:
            node.silent_after = 60.0 + 600.0 * _unit_hash(seed, "when", node.key)
        for s in node.streams:
            base, spread = BASE_VALUES.get(s.property, (0.0, 1.0))
            node.values[s.property] = base + spread * float(rng.standard_normal())
    return sorted(ordered, key=lambda n: n.phase)


@dataclass
class RainCell:
    """A rain cell crossing the district west to east (mm/h at its centre)."""

    period_s: float = 1800.0
    peak_mm_h: float = 60.0
    sigma_deg: float = 0.04

    def intensity(self, lon: float, lat: float, t: float) -> float:
        """Rain intensity (mm/h) at a point, ``t`` seconds after the simulation started."""
        x0, y0, x1, y1 = DISTRICT_BBOX
        f = (t % self.period_s) / self.period_s
        cx = x0 - 0.05 + (x1 - x0 + 0.1) * f
        cy = y0 + (y1 - y0) * (0.35 + 0.3 * math.sin(2 * math.pi * f))
        d2 = (lon - cx) ** 2 + ((lat - cy) * 1.15) ** 2
        return self.peak_mm_h * math.exp(-d2 / (2 * self.sigma_deg**2))


def reading(node: Node, stream: Stream, t: float, dt: float, rain: float, rng: np.random.Generator) -> float | None:
    """The value of one stream at ``t`` (advancing the node's state by ``dt`` seconds)."""
    p = stream.property
    if p == "water_depth":
        inflow = rain * node.hollow * 0.15 * dt / 60      # cm per minute per mm/h, times the hollowness
        drain = node.depth * (1 - math.exp(-dt / (600 / node.hollow ** 0.5)))
        node.depth = max(0.0, node.depth + inflow - drain)
        return round(node.depth, 1)
    if p == "battery":
        node.battery = max(0.0, node.battery - dt / 3600 * (0.02 + 0.01 * float(rng.random())))
        return round(node.battery, 2)
    if p == "signal":
        return round(-70.0 - 25.0 * _unit_hash("sig", node.key) - rain * 0.05 + float(rng.normal(0, 1.5)), 1)
    base, spread = BASE_VALUES.get(p, (0.0, 1.0))
    v = node.values.get(p, base)
    v += (base - v) * 0.05 + spread * 0.1 * float(rng.standard_normal())
    if p == "air_temperature":
        v -= rain * 0.002
    node.values[p] = v
    lo = 0.0 if p not in ("tilt", "air_temperature", "water_level") else -1e9
    return round(max(lo, v), 2)


def schedule(nodes: list[Node], *, interval_s: float, duration_s: float | None, seed: int,
             rain: RainCell | None = None, clock: Callable[[], float] = time.time
             ) -> Iterator[tuple[float, list[tuple[int, bytes]]]]:
    """Yield (due time, [(datastream id, payload)]) for each node report in time order, forever or ``duration_s``."""
    rain = rain or RainCell()
    rng = np.random.default_rng(seed + 1)
    start = clock()
    k = 0
    last: dict[str, float] = {}
    while True:
        for node in nodes:
            due = start + (k + node.phase) * interval_s
            elapsed = due - start
            if duration_s is not None and elapsed >= duration_s:
                return
            if node.silent_after is not None and elapsed > node.silent_after:
                continue
            dt = elapsed - last.get(node.key, elapsed - interval_s)
            last[node.key] = elapsed
            r = rain.intensity(node.lon, node.lat, elapsed)
            ts = datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            msgs = []
            for s in node.streams:
                v = reading(node, s, elapsed, dt, r, rng)
                if v is not None:
                    msgs.append((s.id, orjson.dumps({"phenomenonTime": ts, "result": v})))
            yield due, msgs
        k += 1


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
            wait = due - time.time()
            if wait > 0:
                time.sleep(min(wait, 1.0))
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
