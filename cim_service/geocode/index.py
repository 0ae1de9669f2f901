"""An in-memory index of the standard addresses, and the matching of a parsed address against it.

The index is built from the rows of the layer with role ``standard_addresses`` (its GA/T 2000.32 level columns
and WGS84 point) and keyed for exact look-ups: (road, lane, number), (road, lane), (road, number), road,
community/estate name, town. Matching (:meth:`AddressIndex.match`) parses nothing itself: it takes a
:class:`~cim_service.core.address.ParsedAddress` and returns candidates, best first, each with a score in
[0, 1] and a match level:

``building`` (door plate and building), ``door_plate`` (road with every lane/number the text gives),
``road`` (the road, nearest door plate on it), ``community`` (village, estate or place name), ``town``,
``district``, ``text`` (the text inside a standard address, the last resort of a single query).

A town or district match points at the mean position of the addresses in it. Pure Python: no database.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cim_service.core.address import ParsedAddress

#: match levels, finest first
MATCH_LEVELS = ("building", "door_plate", "road", "community", "town", "district", "text")
#: columns of the standard addresses the index reads (besides id, lon, lat)
COLUMNS = ("address_code", "full_address", "district", "town", "community", "road", "lane", "number", "building",
           "poi")
_DIGITS = re.compile(r"\d+")
_UNIQUE = {"address_code", "full_address"}  # one value per address: nothing to share


def _first_number(value: str | None) -> int | None:
    m = _DIGITS.search(value or "")
    return int(m.group()) if m else None


@dataclass(frozen=True)
class Candidate:
    """One matched standard address (row position in the index), its score and match level."""

    row: int
    score: float
    level: str


@dataclass
class AddressIndex:
    """Standard addresses held column-wise, with dictionaries for exact look-ups."""

    ids: list[int] = field(default_factory=list)
    lon: list[float] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    values: dict[str, list[str | None]] = field(default_factory=lambda: {c: [] for c in COLUMNS})
    version: int | None = None

    def __post_init__(self) -> None:
        self.by_plate: dict[tuple, list[int]] = defaultdict(list)
        self.by_lane: dict[tuple, list[int]] = defaultdict(list)
        self.by_number: dict[tuple, list[int]] = defaultdict(list)
        self.by_building: dict[tuple, list[int]] = defaultdict(list)
        self.by_road: dict[str, list[int]] = defaultdict(list)
        self.by_place: dict[str, list[int]] = defaultdict(list)
        self.by_town: dict[str, list[int]] = defaultdict(list)
        self.centres: dict[str, tuple[float, float]] = {}
        self.district: str | None = None
        self._shared: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, rows: Iterable[Mapping[str, Any]], version: int | None = None) -> AddressIndex:
        """Index ``rows`` (mappings with ``id``, ``lon``, ``lat`` and the :data:`COLUMNS` present)."""
        index = cls(version=version)
        for row in rows:
            index._add(row)
        index._finish()
        return index

    def _add(self, row: Mapping[str, Any]) -> None:
        i = len(self.ids)
        self.ids.append(int(row["id"]))
        self.lon.append(float(row["lon"]))
        self.lat.append(float(row["lat"]))
        for name in COLUMNS:
            value = row.get(name)
            if value is not None and name not in _UNIQUE:
                value = self._shared.setdefault(value, value)  # one object per distinct town, road, lane ...
            self.values[name].append(value)
        road, lane, number = (self.values[c][i] for c in ("road", "lane", "number"))
        if road:
            self.by_road[road].append(i)
            self.by_plate[(road, lane, number)].append(i)
            if lane:
                self.by_lane[(road, lane)].append(i)
            if number:
                self.by_number[(road, number)].append(i)
            if row.get("building"):
                self.by_building[(road, lane, number, row["building"])].append(i)
        for place in (row.get("community"), row.get("poi")):
            if place:
                self.by_place[place].append(i)
        if row.get("town"):
            self.by_town[row["town"]].append(i)

    def _finish(self) -> None:
        self._shared.clear()
        for town, rows in self.by_town.items():
            self.centres[town] = self._centre(rows)
        districts: dict[str, int] = defaultdict(int)
        for d in self.values["district"]:
            if d:
                districts[d] += 1
        if districts:
            self.district = max(districts, key=districts.__getitem__)
            self.centres[self.district] = self._centre(range(len(self.ids)))
        for rows in self.by_road.values():  # door plates in numeric order: the nearest one is found by bisection
            rows.sort(key=lambda r: (_first_number(self.values["lane"][r] or self.values["number"][r]) or 0))
        v = self.values
        for table in (self.by_plate, self.by_lane, self.by_number, self.by_place):
            for rows in table.values():  # the plate itself first: fewest finer parts (no number, building)
                rows.sort(key=lambda r: (v["number"][r] is not None, v["building"][r] is not None, r))

    def _centre(self, rows: Iterable[int]) -> tuple[float, float]:
        rows = list(rows)
        return (sum(self.lon[r] for r in rows) / len(rows), sum(self.lat[r] for r in rows) / len(rows))

    def value(self, name: str, row: int) -> str | None:
        """Column ``name`` of index row ``row``."""
        return self.values[name][row]

    # -- matching -----------------------------------------------------------------------------------------

    def match(self, p: ParsedAddress, limit: int = 1) -> list[Candidate]:
        """Candidates for ``p``, best first (at most ``limit``); an empty list when nothing matches."""
        if p.road and p.road in self.by_road:
            return self._match_road(p, limit)
        places = [name for name in (p.poi, p.community) if name and name in self.by_place]
        if places:
            rows = [r for name in places for r in self.by_place[name]]
            scored = sorted({r: self._place_score(p, r) for r in rows}.items(), key=lambda kv: -kv[1])
            return [Candidate(r, round(s, 3), "community") for r, s in scored[:limit]]
        return []

    def area(self, p: ParsedAddress) -> Candidate | None:
        """A town- or district-level answer (the mean position of its addresses), when the text names one."""
        if p.town and p.town in self.by_town:
            return Candidate(-1, 0.3, "town")
        if p.district and p.district == self.district:
            return Candidate(-1, 0.1, "district")
        return None

    def _match_road(self, p: ParsedAddress, limit: int) -> list[Candidate]:
        road = p.road or ""
        exact: list[int] = []
        if p.lane or p.number:
            exact = self.by_plate.get((road, p.lane, p.number), [])
            if not exact and p.lane and p.number:
                exact = self.by_lane.get((road, p.lane), [])  # the lane (弄) is the door plate; 号 inside it
            if not exact and not p.lane:
                exact = self.by_number.get((road, p.number), [])
            elif not exact and not p.number:
                exact = self.by_lane.get((road, p.lane), [])
        else:
            exact = self.by_plate.get((road, None, None), [])
        if limit == 1 and exact:  # a batch: the first of the sorted exact rows, or of those in the text's town
            if p.building:
                exact = self.by_building.get((road, p.lane, p.number, p.building)) or exact
            best = exact[0]
            if p.town and self.values["town"][best] not in (None, p.town):
                best = next((r for r in exact if self.values["town"][r] == p.town), best)
            return [self._candidate(p, best)]
        pool = exact if len(exact) >= limit else [*exact, *self._nearest_on_road(p, limit * 4)]
        scored = sorted(dict.fromkeys(pool), key=lambda r: -self._road_score(p, r))
        return [self._candidate(p, r) for r in scored[:limit]]

    def _nearest_on_road(self, p: ParsedAddress, k: int) -> list[int]:
        """Up to ``k`` door plates of the road nearest to the text's lane/number (rows are sorted by it)."""
        rows = self.by_road[p.road or ""]
        target = _first_number(p.lane or p.number)
        if target is None or len(rows) <= k:
            return rows[:k]
        lo, hi = 0, len(rows)
        while lo < hi:  # bisection on the sorted plates
            mid = (lo + hi) // 2
            if self._plate_number(rows[mid]) < target:
                lo = mid + 1
            else:
                hi = mid
        return rows[max(0, lo - k // 2): max(0, lo - k // 2) + k]

    def _plate_number(self, r: int) -> int:
        return _first_number(self.values["lane"][r] or self.values["number"][r]) or 0

    def _road_score(self, p: ParsedAddress, r: int) -> float:
        v = self.values
        s = 0.5
        for name, weight in (("lane", 0.25), ("number", 0.15)):
            want, have = getattr(p, name), v[name][r]
            if want:
                s += weight if have == want else -0.1 if have else -0.05
            elif have is None:
                s += 0.03  # the query names no lane/number: the address without one is the road itself
        if p.building:
            s += 0.05 if v["building"][r] == p.building else -0.02
        elif v["building"][r] is None:
            s += 0.01
        if p.town and v["town"][r]:
            s += 0.05 if v["town"][r] == p.town else -0.2
        target = _first_number(p.lane or p.number)
        have_number = _first_number(v["lane"][r] or v["number"][r])
        if target is not None and have_number is not None and have_number != target:
            s -= min(0.09, abs(have_number - target) / 10_000)
        return s

    def _candidate(self, p: ParsedAddress, r: int) -> Candidate:
        v = self.values
        lane, number = v["lane"][r], v["number"][r]
        if p.lane or p.number:
            plate = (not p.lane or lane == p.lane) and (not p.number or number == p.number or
                                                        (lane == p.lane and number is None))
        else:
            plate = False
        if plate:
            level, score = ("building", 1.0) if p.building and v["building"][r] == p.building else ("door_plate", 0.9)
        else:
            level, score = "road", 0.6
        if p.town and v["town"][r] and v["town"][r] != p.town:
            score -= 0.2
        return Candidate(r, score, level)

    def _place_score(self, p: ParsedAddress, r: int) -> float:
        s = 0.7
        if p.town and self.values["town"][r]:
            s += 0.05 if self.values["town"][r] == p.town else -0.2
        if self.values["road"][r] is None:
            s += 0.02  # the place itself rather than a door plate inside it
        return s

    def text_search(self, text: str, limit: int) -> list[Candidate]:
        """Standard addresses containing ``text`` (shortest first): the last resort of a single query."""
        if not text:
            return []
        found = [i for i, full in enumerate(self.values["full_address"]) if full and text in full]
        found.sort(key=lambda i: len(self.values["full_address"][i] or ""))
        return [Candidate(i, 0.3, "text") for i in found[:limit]]
