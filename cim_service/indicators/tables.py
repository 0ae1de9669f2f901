"""Flat views of indicator results for CSV / XLSX / terminal tables, and the per-town selection."""

from __future__ import annotations

import csv
import io
from typing import Any

from cim_service.indicators.context import DISTRICT
from cim_service.indicators.results import KEY_AREAS_KEY, TOWNS_KEY

COLUMNS = ["id", "name_zh", "name_en", "area", "unit", "target", "value", "status", "gap", "gap_value",
           "baseline", "binding", "computed_at"]
AREA_FIELDS = ("value", "target", "status", "gap", "gap_value", "numerator", "denominator")


class UnknownTownError(KeyError):
    """A town name not among the loaded towns."""

    def __init__(self, town: str, known: list[str]):
        super().__init__(town)
        self.town, self.known = town, known

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none loaded"
        return f"unknown town {self.town!r}; known towns: {known}"


def town_names(results: list[dict[str, Any]]) -> list[str]:
    """Town names present in the results."""
    return sorted({t["town"] for r in results for t in r.get(TOWNS_KEY, [])})


def select_town(result: dict[str, Any], town: str) -> dict[str, Any]:
    """The indicator with the town's value, target, status and gap at the top level (``area`` = the town)."""
    for t in result.get(TOWNS_KEY, []):
        if t["town"] == town:
            out = {k: v for k, v in result.items() if k != KEY_AREAS_KEY}
            out.update({k: t.get(k) for k in AREA_FIELDS}, area=town, district_value=result.get("value"))
            out[TOWNS_KEY] = [t]
            return out
    raise UnknownTownError(town, [t["town"] for t in result.get(TOWNS_KEY, [])])


def flat_rows(results: list[dict[str, Any]], town: str | None = None) -> list[dict[str, Any]]:
    """One row per indicator and area (the district, then every town; or just ``town``)."""
    if town is not None and results and town not in town_names(results):
        raise UnknownTownError(town, town_names(results))
    rows = []
    for r in results:
        areas = [] if town is not None else [{"area": DISTRICT, **{k: r.get(k) for k in AREA_FIELDS}}]
        areas += [{"area": t["town"], **{k: t.get(k) for k in AREA_FIELDS}}
                  for t in r.get(TOWNS_KEY, []) if town is None or t["town"] == town]
        for a in areas:
            rows.append({c: a.get(c, r.get(c)) for c in COLUMNS})
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text (UTF-8, header row) of flat rows."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_xlsx(rows: list[dict[str, Any]], path: str) -> None:
    """Write flat rows to an Excel workbook."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "indicators"
    ws.append(COLUMNS)
    for row in rows:
        ws.append([row.get(c) for c in COLUMNS])
    wb.save(path)
