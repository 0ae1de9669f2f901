"""How many features each demo scale generates.

``baseline`` reproduces the 2020 baseline figures of Minhang's 2021-2025 digital-transformation plan
(18,778 cameras, 3,480 5G + 3,237 4G base stations, 305 waterlogging sensors, 463 electronic signs
among ~1,500 bus stops); other counts are documented choices of the same order as the district's
real figures (~20,000 IoT nodes, ~60,000 standard addresses, ~40,000 residents in the sample).
``plan`` is the 2025 target scale for load tests (70,000 cameras, 5,000 5G stations, 100,000 IoT
nodes, 300,000 addresses and people); ``small`` is ~1/20 of baseline with the same structure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Feature counts of one demo scale."""

    name: str
    cameras: int
    base_5g: int
    base_4g: int
    iot_nodes: int
    waterlogging: int
    bus_stops: int
    bus_esign: int
    charging_stations: int
    smart_poles: int
    smart_lockers: int
    underground_spaces: int
    addresses: int
    organisations: int
    people: int
    until: str  # last installation date of devices


SCALES: dict[str, Scale] = {
    "small": Scale("small", cameras=939, base_5g=174, base_4g=162, iot_nodes=1_000, waterlogging=15,
                   bus_stops=75, bus_esign=23, charging_stations=30, smart_poles=120, smart_lockers=75,
                   underground_spaces=30, addresses=3_000, organisations=400, people=2_000, until="2020-12-31"),
    "baseline": Scale("baseline", cameras=18_778, base_5g=3_480, base_4g=3_237, iot_nodes=20_000, waterlogging=305,
                      bus_stops=1_500, bus_esign=463, charging_stations=420, smart_poles=2_400,
                      smart_lockers=1_500, underground_spaces=450, addresses=60_000, organisations=8_000,
                      people=40_000, until="2020-12-31"),
    "plan": Scale("plan", cameras=70_000, base_5g=5_000, base_4g=3_237, iot_nodes=100_000, waterlogging=1_200,
                  bus_stops=1_500, bus_esign=1_200, charging_stations=1_200, smart_poles=6_000,
                  smart_lockers=3_000, underground_spaces=600, addresses=300_000, organisations=30_000,
                  people=300_000, until="2025-06-30"),
}


def get_scale(name: str) -> Scale:
    """Return the scale called ``name`` or raise ValueError listing the known ones."""
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown demo scale {name!r}; known scales: {', '.join(SCALES)}") from None
