"""The urban form of each town: what kinds of buildings stand there, how tall and how close (the demo's white models).

These are the demo's assumptions, from what one sees on the ground and on aerial photographs of Minhang, not
surveyed figures:

- ``midrise`` (莘庄镇, 七宝镇, 古美街道, 梅陇镇, 江川路街道 and the other built-up towns): residential compounds
  (小区) of 5-6 storey walk-ups (the 1980s-90s 新村), 11-18 storey slabs and 25-33 storey towers, streets of
  2-5 storey shops and 6-20 storey offices. The built-up blocks are covered ~25-35 % by footprints;
- ``highrise`` (虹桥镇, 新虹街道: the Hongqiao business district): mostly 25-33 storey towers and 11-18 storey
  slabs, office towers of 12-45 storeys;
- ``village`` (浦江镇, 马桥镇, 华漕镇): clusters of 2-3 storey village houses (村宅) close together, a few
  newer walk-up estates, workshops and sheds;
- ``industrial`` (莘庄工业区): 1-3 storey industrial sheds in rows, some dormitory walk-ups.

A *kind* (:data:`KINDS`) is one sort of building group: its storeys, its footprint, and the pitch of its layout
(``row_m`` between rows, ``along_m`` between buildings of a row, centre to centre). A form weights the kinds of
its residential compounds and of its street fronts, and says how large the groups are. Residential rows face
south (a compound-wide rotation of up to ±9°); the pitches follow Shanghai's sunlight spacing (a gap between
rows of about the height of the southern row for walk-ups, less than it for towers).

Which town has which form is data (:data:`TOWN_FORM`, rows of town names); towns not listed are mid-rise.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One kind of building group: storeys, footprint and layout pitch."""

    name: str
    #: storeys (inclusive range)
    floors: tuple[int, int]
    #: footprint: length (along the row) and depth ranges (metres)
    length_m: tuple[float, float]
    depth_m: tuple[float, float]
    #: layout pitch: between rows and between buildings of a row (metres, centre to centre)
    row_m: float
    along_m: float
    #: the uses of its buildings and their weights
    uses: tuple[tuple[str, float], ...]


_HOMES = (("residential", 0.93), ("mixed", 0.07))
KINDS: dict[str, Kind] = {
    "walkup": Kind("walkup", (5, 6), (40.0, 56.0), (11.0, 14.0), row_m=28.0, along_m=60.0, uses=_HOMES),
    "slab": Kind("slab", (11, 18), (40.0, 56.0), (13.0, 16.0), row_m=40.0, along_m=60.0, uses=_HOMES),
    "tower": Kind("tower", (25, 33), (30.0, 38.0), (18.0, 22.0), row_m=50.0, along_m=44.0, uses=_HOMES),
    "village": Kind("village", (2, 3), (11.0, 16.0), (9.0, 12.0), row_m=18.0, along_m=18.0, uses=_HOMES),
    "shops": Kind("shops", (2, 5), (22.0, 50.0), (16.0, 28.0), row_m=36.0, along_m=52.0,
                  uses=(("commercial", 0.6), ("public", 0.25), ("mixed", 0.15))),
    "offices": Kind("offices", (6, 20), (30.0, 50.0), (20.0, 32.0), row_m=50.0, along_m=62.0,
                    uses=(("commercial", 0.75), ("public", 0.15), ("mixed", 0.1))),
    "cbd": Kind("cbd", (12, 45), (32.0, 50.0), (24.0, 34.0), row_m=58.0, along_m=64.0,
                uses=(("commercial", 0.8), ("public", 0.1), ("mixed", 0.1))),
    "sheds": Kind("sheds", (1, 3), (45.0, 100.0), (24.0, 50.0), row_m=60.0, along_m=110.0,
                  uses=(("industrial", 1.0),)),
}


@dataclass(frozen=True)
class Form:
    """The building groups of one urban form."""

    name: str
    #: residential compound kinds and their weights
    homes: tuple[tuple[str, float], ...]
    #: street-front (non-residential) group kinds and their weights
    streets: tuple[tuple[str, float], ...]
    #: share of groups that are residential compounds
    compound_share: float
    #: buildings per compound and per street-front group (inclusive ranges)
    compound_size: tuple[int, int]
    street_size: tuple[int, int]
    #: share of groups that join the fabric (stand next to an earlier group of the town) rather than start
    #: a cluster of their own at their drawn point: towns grow as continuous blocks, villages as hamlets
    join_share: float


FORMS: dict[str, Form] = {
    "midrise": Form("midrise", (("walkup", 0.5), ("slab", 0.32), ("tower", 0.18)),
                    (("shops", 0.6), ("offices", 0.25), ("sheds", 0.15)),
                    compound_share=0.4, compound_size=(8, 28), street_size=(2, 8), join_share=0.96),
    "highrise": Form("highrise", (("walkup", 0.1), ("slab", 0.3), ("tower", 0.6)),
                     (("shops", 0.3), ("cbd", 0.6), ("sheds", 0.1)),
                     compound_share=0.4, compound_size=(6, 20), street_size=(2, 8), join_share=0.96),
    "village": Form("village", (("village", 0.85), ("walkup", 0.15)),
                    (("shops", 0.4), ("sheds", 0.6)),
                    compound_share=0.35, compound_size=(12, 40), street_size=(2, 8), join_share=0.6),
    "industrial": Form("industrial", (("walkup", 0.7), ("slab", 0.3)),
                       (("sheds", 0.85), ("offices", 0.15)),
                       compound_share=0.08, compound_size=(6, 16), street_size=(3, 8), join_share=0.85),
}

#: town -> urban form (towns not listed are mid-rise)
TOWN_FORM: dict[str, str] = {
    "虹桥镇": "highrise",
    "新虹街道": "highrise",
    "浦江镇": "village",
    "马桥镇": "village",
    "华漕镇": "village",
    "莘庄工业区": "industrial",
}

#: storey heights (metres) by use
STOREY_M = {"residential": 3.0, "mixed": 3.3, "commercial": 4.2, "public": 4.0, "industrial": 6.0}
#: street-front door numbers come in blocks of this many plates, one group (and one kind) per block
STREET_BLOCK = 8


def town_form(town: str) -> Form:
    """Return the urban form of ``town``."""
    return FORMS[TOWN_FORM.get(town, "midrise")]


def _pick(weights: tuple[tuple[str, float], ...], key: str) -> Kind:
    """The kind of ``weights`` that the hash of ``key`` falls on (the same key, the same kind)."""
    u = (zlib.crc32(key.encode("utf-8")) % 10_000) / 10_000.0 * sum(w for _k, w in weights)
    for name, w in weights:
        if u < w:
            return KINDS[name]
        u -= w
    return KINDS[weights[-1][0]]


def compound_kind(town: str, road: str, lane: int) -> Kind:
    """The kind of the residential compound at ``road`` + ``lane``弄 of ``town``."""
    return _pick(town_form(town).homes, f"compound|{town}|{road}|{lane}")


def street_kind(town: str, road: str, number: int) -> Kind:
    """The kind of the street-front group holding door number ``number`` of ``road`` in ``town``."""
    block = (number - 1) // 2 // STREET_BLOCK
    return _pick(town_form(town).streets, f"street|{town}|{road}|{block}")
