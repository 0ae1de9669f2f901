"""The urban form of each town: how tall and how close its buildings stand (the demo's white models).

Three forms, from what one sees on the ground in Minhang:

- ``highrise`` (虹桥镇, 新虹街道: the Hongqiao business district and its towers): 18-40 storey residential
  towers and office towers up to ~45 storeys;
- ``midrise`` (莘庄, 七宝, 古美, 梅陇 and the other built-up towns): 6-storey walk-ups of the 1990s and 11-18
  storey slabs, newer 24-storey towers;
- ``village`` (浦江镇's and 马桥镇's villages): 2-3 storey village houses close together, a few newer estates.

A town's compounds are laid out as rows of slabs facing south (a compound-wide rotation of up to ±17°), rows
``row_m`` apart and slabs ``along_m`` apart along a row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Form:
    """Storeys and footprints of the buildings of one urban form."""

    name: str
    #: residential storey counts and their weights
    res_floors: tuple[int, ...]
    res_weights: tuple[float, ...]
    #: residential footprint: length and depth ranges (metres)
    res_length_m: tuple[float, float]
    res_depth_m: tuple[float, float]
    #: other buildings: storeys range (commercial/public), industrial storeys range
    other_floors: tuple[int, int]
    #: layout of compounds: distance between rows, between slabs of a row (metres)
    row_m: float
    along_m: float


FORMS: dict[str, Form] = {
    "highrise": Form("highrise", (11, 18, 24, 28, 32, 40), (0.1, 0.2, 0.25, 0.2, 0.15, 0.1),
                     (28.0, 40.0), (18.0, 26.0), (8, 45), row_m=62.0, along_m=55.0),
    "midrise": Form("midrise", (5, 6, 6, 11, 14, 18, 24), (0.12, 0.3, 0.18, 0.14, 0.12, 0.09, 0.05),
                    (45.0, 70.0), (11.0, 14.0), (3, 16), row_m=38.0, along_m=78.0),
    "village": Form("village", (2, 3, 3, 6), (0.45, 0.35, 0.1, 0.1),
                    (11.0, 16.0), (9.0, 12.0), (1, 5), row_m=22.0, along_m=20.0),
}

#: town -> urban form (towns not listed are mid-rise)
TOWN_FORM: dict[str, str] = {
    "虹桥镇": "highrise",
    "新虹街道": "highrise",
    "浦江镇": "village",
    "马桥镇": "village",
}

#: storey heights (metres) by use
STOREY_M = {"residential": 3.0, "mixed": 3.3, "commercial": 4.2, "public": 4.0, "industrial": 6.0}


def town_form(town: str) -> Form:
    """Return the urban form of ``town``."""
    return FORMS[TOWN_FORM.get(town, "midrise")]
