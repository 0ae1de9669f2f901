"""Indicator engine: results keyed by the versions of their input layers, recomputed when one changed.

Every stored result (``cim_meta.indicator_result``) carries ``inputs`` = ``{layer_id: version}`` of the
layers it was computed from (``cim_meta.layer_state.version``, bumped by every writer) and the
parameters that shaped it (radii from settings). A result is fresh when both still match; otherwise it is
recomputed. Computations run in one transaction under an advisory lock, so concurrent requests compute
once and never publish a half-written gap layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cim_service.catalog import Catalog
from cim_service.indicators.catalog import IndicatorCatalog, IndicatorSpec, load_indicators
from cim_service.indicators.compute import measure
from cim_service.indicators.context import Context
from cim_service.indicators.results import OPTIONAL_INPUTS, assemble
from cim_service.settings import Settings

#: advisory lock serialising indicator computations
ENGINE_LOCK = 7_310_113
#: layers every per-town result depends on
AREA_LAYERS = ("district", "towns")
RESULT_TABLE = "cim_meta.indicator_result"


def indicator_inputs(spec: IndicatorSpec) -> list[str]:
    """Layers whose versions key an indicator's result."""
    return sorted({*spec.inputs, *AREA_LAYERS})


def indicator_params(spec: IndicatorSpec, settings: Settings) -> dict[str, Any]:
    """Parameters that shape an indicator's result (a change makes stored results stale)."""
    params = dict(spec.params)
    if spec.params.get("radius") == "g5":
        params.update(macro_m=settings.g5_macro_radius_m, small_m=settings.g5_small_radius_m)
    if spec.kind.value == "site_coverage":
        params["sensor_radius_m"] = settings.sensor_site_radius_m
    params["target"] = spec.target
    return params


def is_fresh(stored: dict[str, Any] | None, versions: dict[str, int], inputs: Iterable[str],
             params: dict[str, Any]) -> bool:
    """Tell whether a stored row was computed from the current input versions and parameters."""
    if stored is None:
        return False
    want = {layer: int(versions.get(layer, 0)) for layer in inputs}
    return stored["inputs"] == want and stored["params"] == json.loads(json.dumps(params))


def layer_versions(conn: Connection) -> dict[str, int]:
    """Current version of every layer."""
    return {r[0]: int(r[1]) for r in conn.execute(sa.text("SELECT layer_id, version FROM cim_meta.layer_state"))}


def stored_rows(conn: Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Stored results by key."""
    rows = conn.execute(
        sa.text(f"SELECT key, inputs, params, result, computed_at, duration_ms FROM {RESULT_TABLE} "
                f"WHERE key = ANY(:k)"), {"k": keys})
    return {r.key: {"inputs": r.inputs, "params": r.params, "result": r.result,
                    "computed_at": r.computed_at, "duration_ms": r.duration_ms} for r in rows}


def store(conn: Connection, key: str, kind: str, inputs: dict[str, int], params: dict[str, Any],
          result: Any, duration_ms: float) -> None:
    """Upsert one result row."""
    conn.execute(
        sa.text(f"""
            INSERT INTO {RESULT_TABLE} (key, kind, inputs, params, result, computed_at, duration_ms)
            VALUES (:key, :kind, CAST(:inputs AS jsonb), CAST(:params AS jsonb), CAST(:result AS jsonb), now(), :ms)
            ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, inputs = EXCLUDED.inputs,
                params = EXCLUDED.params, result = EXCLUDED.result, computed_at = now(),
                duration_ms = EXCLUDED.duration_ms
        """),
        {"key": key, "kind": kind, "inputs": json.dumps(inputs), "params": json.dumps(params),
         "result": json.dumps(result, ensure_ascii=False), "ms": duration_ms},
    )


class IndicatorEngine:
    """Compute, store and serve indicator results for one database."""

    def __init__(self, engine: Engine, layers: Catalog, settings: Settings,
                 indicators: IndicatorCatalog | None = None):
        self.engine = engine
        self.layers = layers
        self.settings = settings
        self.indicators = indicators or load_indicators()
        self.indicators.check_layers(layers)

    def stale(self, conn: Connection, ids: list[str]) -> list[str]:
        """Ids among ``ids`` whose stored result is missing or out of date."""
        versions = layer_versions(conn)
        stored = stored_rows(conn, [f"indicator:{i}" for i in ids])
        return [i for i in ids if not is_fresh(
            stored.get(f"indicator:{i}"), versions, indicator_inputs(self.indicators.get(i)),
            indicator_params(self.indicators.get(i), self.settings))]

    def results(self, ids: list[str] | None = None, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Results of ``ids`` (default all) in catalog order, recomputing stale ones (all with ``refresh``)."""
        ids = ids or self.indicators.ids
        for i in ids:
            self.indicators.get(i)
        with self.engine.connect() as conn:
            todo = ids if refresh else self.stale(conn, ids)
        if todo:
            self.compute(todo, force=refresh)
        with self.engine.connect() as conn:
            stored = stored_rows(conn, [f"indicator:{i}" for i in ids])
        return [with_meta(stored[f"indicator:{i}"]) for i in ids]

    def compute(self, ids: list[str], *, force: bool = False) -> dict[str, float]:
        """Recompute ``ids`` (those still stale once the lock is held, or all with ``force``); return ms each."""
        timings: dict[str, float] = {}
        with self.engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ENGINE_LOCK})
            todo = ids if force else self.stale(conn, ids)
            if not todo:
                return timings
            versions = layer_versions(conn)
            ctx = Context(conn, self.layers, self.settings)
            for i in todo:
                spec = self.indicators.get(i)
                start = time.perf_counter()
                result = self._compute_one(ctx, spec)
                ms = (time.perf_counter() - start) * 1000
                inputs = {layer: int(versions.get(layer, 0)) for layer in indicator_inputs(spec)}
                result["inputs"] = inputs
                store(conn, f"indicator:{i}", "indicator", inputs, indicator_params(spec, self.settings), result, ms)
                timings[i] = ms
        return timings

    def _compute_one(self, ctx: Context, spec: IndicatorSpec) -> dict[str, Any]:
        empty = [layer for layer in spec.inputs if layer in ctx.empty_layers and layer not in OPTIONAL_INPUTS]
        needs_area = spec.kind.value in ("density", "area_coverage")
        if needs_area and ctx.district_area_km2 is None:
            empty += [layer for layer in AREA_LAYERS if layer not in empty]
        m = {} if empty else measure(ctx, spec)
        result = assemble(spec, m, towns=ctx.towns, district_km2=ctx.district_area_km2, empty=empty)
        if spec.id == "g5_area_coverage" and not empty and "key_areas" not in ctx.empty_layers:
            from cim_service.indicators.keyareas import key_area_results

            result["key_areas"] = key_area_results(ctx, spec)
        return result


def with_meta(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored result with its computation time and duration."""
    result = dict(stored["result"])
    at = stored["computed_at"]
    result["computed_at"] = at.astimezone(UTC).isoformat() if isinstance(at, datetime) else at
    result["duration_ms"] = round(float(stored["duration_ms"]), 1)
    return result
