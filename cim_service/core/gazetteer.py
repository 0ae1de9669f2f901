"""The Shanghai township gazetteer: every 街道/镇/乡 (and zone with town-level statistics) with its NBS code.

Data: ``cim_service/data/shanghai_towns.csv`` (``code,name,district,aliases``; source and licence in
``cim_service/data/README.md``). Former and colloquial names are aliases of the official name; former districts
(闸北区, 卢湾区, 南汇区, 南市区, 崇明县) are aliases of the district they were merged into. Read once, lazily.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["DISTRICT_ALIASES", "Gazetteer", "Town", "gazetteer"]

#: former district names -> the district they are part of today
DISTRICT_ALIASES: dict[str, str] = {
    "闸北区": "静安区",  # merged 2015
    "卢湾区": "黄浦区",  # merged 2011
    "南市区": "黄浦区",  # merged 2000
    "南汇区": "浦东新区",  # merged 2009
    "崇明县": "崇明区",  # 2016
    "浦东区": "浦东新区",
}

TOWNS_FILE = Path(__file__).resolve().parents[1] / "data" / "shanghai_towns.csv"
_SUFFIXES = ("街道", "镇", "乡", "新区", "工业区", "园区", "农场")


@dataclass(frozen=True)
class Town:
    """One township: NBS 9-digit code, official name, district."""

    code: str
    name: str
    district: str


@dataclass(frozen=True)
class Gazetteer:
    """Towns by official name, aliases and stems (the name without its 街道/镇/乡 suffix)."""

    towns: dict[str, Town]
    aliases: dict[str, str]
    stems: dict[str, str]

    def lookup(self, name: str) -> Town | None:
        """Return the town called ``name`` (official, alias or stem), else ``None``."""
        official = name if name in self.towns else self.aliases.get(name) or self.stems.get(name)
        return self.towns.get(official) if official else None

    def names(self) -> list[str]:
        """Official names and aliases, longest first (for a regular expression alternation)."""
        return sorted([*self.towns, *self.aliases], key=len, reverse=True)


def _stem(name: str) -> str | None:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return None


@cache
def gazetteer() -> Gazetteer:
    """Read the gazetteer from the package data (once)."""
    towns: dict[str, Town] = {}
    aliases: dict[str, str] = {}
    text = TOWNS_FILE.read_text(encoding="utf-8")
    for row in csv.DictReader(text.splitlines()):
        towns[row["name"]] = Town(row["code"], row["name"], row["district"])
        for alias in filter(None, (row["aliases"] or "").split(";")):
            aliases[alias] = row["name"]
    stems: dict[str, str] = {}
    ambiguous: set[str] = set()
    for name in [*towns, *aliases]:
        stem = _stem(name)
        if stem is None:
            continue
        official = aliases.get(name, name)
        if stems.setdefault(stem, official) != official:
            ambiguous.add(stem)
    for stem in ambiguous:  # e.g. a 镇 and a 街道 of the same name in two districts
        stems.pop(stem)
    return Gazetteer(towns, aliases, stems)
