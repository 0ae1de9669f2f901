"""The planners' progress report of one town (``cim report``): what it holds, read from the indicator engine.

Per indicator: the town's value now, its target, the gap (Chinese sentence first), the trajectory from the
2020 baseline with the projection to the target year, ``on_track`` and the town's rank among all towns; the
town's gap features (the derived layers of ``indicators.yaml`` that write a layer, with a ``town`` field); the
provenance of the input layers (their committed ingest batches). :mod:`cim_service.indicators.report_render`
writes it as PDF, HTML or XLSX.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import geopandas as gpd
import sqlalchemy as sa

from cim_service.core.catalog import Role
from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.results import TOWNS_KEY
from cim_service.indicators.tables import UnknownTownError, select_town
from cim_service.indicators.trajectory import DEFAULT_LAST_N
from cim_service.store import batches

#: the field of the derived layers naming the town a gap feature lies in (``DerivedKind.output_fields``)
TOWN_FIELD = "town"


@dataclass
class GapLayer:
    """The town's features of one gap layer."""

    layer_id: str
    title_zh: str
    title_en: str
    fill: list[int]
    frame: gpd.GeoDataFrame


@dataclass
class TownReport:
    """Everything the report shows for one town."""

    town: str
    until: date
    last_n: int
    indicators: list[dict[str, Any]]
    outline: gpd.GeoDataFrame
    gaps: list[GapLayer] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def on_track(self) -> int:
        """Indicators on track in the town."""
        return sum(1 for i in self.indicators if i["trajectory"]["on_track"])


def build_report(ind: IndicatorEngine, town: str, *, until: date, last_n: int = DEFAULT_LAST_N) -> TownReport:
    """Gather the report of ``town`` (UnknownTownError when no such town is loaded)."""
    current = ind.results()
    items = []
    for result in current:
        now = select_town(result, town)  # raises UnknownTownError
        traj = ind.trajectory(result["id"], until=until, last_n=last_n)
        rows = [t for t in traj[TOWNS_KEY] if t["town"] == town]
        if not rows:
            raise UnknownTownError(town, sorted(t["town"] for t in traj[TOWNS_KEY]))
        items.append({"now": now, "trajectory": rows[0], "towns_ranked": len(traj[TOWNS_KEY]),
                      "on_track_towns": traj["on_track_towns"]})
    return TownReport(town=town, until=until, last_n=last_n, indicators=items, outline=_outline(ind, town),
                      gaps=_gaps(ind, town), provenance=_provenance(ind))


def _outline(ind: IndicatorEngine, town: str) -> gpd.GeoDataFrame:
    spec = ind.layers.require_role(Role.town_boundaries)
    with ind.engine.connect() as conn:
        return gpd.read_postgis(sa.text(f"SELECT name, geom FROM {spec.qualified_table} WHERE name = :t"),
                                conn, geom_col="geom", params={"t": town})


def _gaps(ind: IndicatorEngine, town: str) -> list[GapLayer]:
    """The town's features of every derived layer that has a town field."""
    out = []
    with ind.engine.connect() as conn:
        for item in ind.indicators.derived:
            if not item.kind.writes_layer or item.id not in ind.layers:
                continue
            spec = ind.layers.get(item.id)
            if TOWN_FIELD not in {f.name for f in spec.fields}:
                continue
            frame = gpd.read_postgis(
                sa.text(f'SELECT geom FROM {spec.qualified_table} WHERE "{TOWN_FIELD}" = :t'),
                conn, geom_col="geom", params={"t": town})
            out.append(GapLayer(spec.id, spec.title_zh, spec.title_en, list(spec.style.fill or [200, 0, 0, 120]),
                                frame))
    return out


def _provenance(ind: IndicatorEngine) -> list[dict[str, Any]]:
    """Per input layer of the indicators: its committed batches (count, last file, last load, rows)."""
    inputs = sorted(ind.indicators.input_layers(ind.layers))
    with ind.engine.connect() as conn:
        rows = batches.recent(conn, limit=10_000)
    out = []
    for layer_id in inputs:
        done = [r for r in rows if r.layer_id == layer_id and r.status == "committed"]
        spec = ind.layers.get(layer_id)
        last = done[0] if done else None
        out.append({"layer": layer_id, "title_zh": spec.title_zh, "batches": len(done),
                    "last_file": last.file_name if last else None,
                    "last_loaded": last.finished_at.date().isoformat() if last and last.finished_at else None,
                    "first_loaded": (done[-1].finished_at.date().isoformat()
                                     if done and done[-1].finished_at else None),
                    "rows": sum(int(r.rows_inserted or 0) + int(r.rows_updated or 0) for r in done)})
    return out
