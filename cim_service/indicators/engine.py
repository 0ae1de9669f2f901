"""Indicator engine: results keyed by the versions of their input layers, recomputed when one changed.

Every stored result (``cim_meta.indicator_result``) carries ``inputs`` = ``{layer_id: version}`` of the
layers it was computed from (``cim_meta.layer_state.version``, bumped by every writer) and the
parameters that shaped it (radii from settings). A result is fresh when both still match; otherwise it is
recomputed. Computations run in one transaction under an advisory lock, so concurrent requests compute
once and never publish a half-written gap layer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cim_service.catalog import Catalog
from cim_service.errors import CimError
from cim_service.indicators.catalog import IndicatorCatalog, IndicatorSpec, load_indicators
from cim_service.indicators.compute import measure
from cim_service.indicators.context import Context
from cim_service.indicators.gaps import GAP_LAYERS
from cim_service.indicators.raster import write_camera_density
from cim_service.indicators.results import OPTIONAL_INPUTS, assemble
from cim_service.indicators.suggest import MAX_SITES, write_suggestions
from cim_service.settings import Settings

log = logging.getLogger(__name__)


class IndicatorComputationError(CimError):
    """Some results could not be computed (the others were stored); details are in the server log."""

    status = 500
    code = "IndicatorComputationFailed"

    def __init__(self, keys: list[str]):
        super().__init__(f"could not compute {', '.join(keys)}; the other results are up to date "
                         f"(details in the server log)")
        self.keys = keys


class IndicatorEngineBusy(CimError):
    """Another computation held the indicator engine longer than the statement timeout allows to wait."""

    status = 503
    code = "IndicatorEngineBusy"


#: advisory lock serialising indicator computations
ENGINE_LOCK = 7_310_113
#: SQLSTATEs of a statement cut off by statement_timeout (query_canceled) or lock_timeout (lock_not_available)
CUT_OFF = {"57014": "statement_timeout", "55P03": "lock_timeout"}
#: layers every per-town result depends on
AREA_LAYERS = ("district", "towns")
RESULT_TABLE = "cim_meta.indicator_result"
#: derived outputs: name -> (writer, input layers); gap layers come before the suggestions that read them
DERIVED: dict[str, tuple[Callable[[Context], Any], tuple[str, ...]]] = {
    **GAP_LAYERS,
    "suggested_sites": (write_suggestions, ("charging_stations", "planning_zones", "base_stations", "cameras",
                                            "addresses", "district", "towns")),
    "camera_density_raster": (write_camera_density, ("cameras", "district", "towns")),
}


def _order(key: str) -> tuple[int, int]:
    """Indicators first, then derived outputs in declaration order."""
    kind, name = key.split(":", 1)
    return (0, 0) if kind == "indicator" else (1, list(DERIVED).index(name))


def derived_params(name: str, settings: Settings) -> dict[str, Any]:
    """Parameters that shape a derived output."""
    return {"g5_macro_radius_m": settings.g5_macro_radius_m, "g5_small_radius_m": settings.g5_small_radius_m,
            "sensor_site_radius_m": settings.sensor_site_radius_m, "max_sites": MAX_SITES,
            "home": str(settings.home) if name == "camera_density_raster" else None}


def indicator_inputs(spec: IndicatorSpec) -> list[str]:
    """Layers whose versions key an indicator's result."""
    return sorted({*spec.inputs, *AREA_LAYERS})


#: version of the stored result's shape; bumping it recomputes results stored by an earlier release
#: (2: Chinese gap sentences, ``gap_zh``)
RESULT_FORMAT = 2


def indicator_params(spec: IndicatorSpec, settings: Settings) -> dict[str, Any]:
    """Parameters that shape an indicator's result (a change makes stored results stale)."""
    params = dict(spec.params)
    if spec.params.get("radius") == "g5":
        params.update(macro_m=settings.g5_macro_radius_m, small_m=settings.g5_small_radius_m)
    if spec.kind.value == "site_coverage":
        params["sensor_radius_m"] = settings.sensor_site_radius_m
    params["target"] = spec.target
    params["result_format"] = RESULT_FORMAT
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

    def wanted(self, keys: list[str]) -> dict[str, tuple[list[str], dict[str, Any]]]:
        """Inputs and parameters of result keys ('indicator:<id>' or 'derived:<name>')."""
        out = {}
        for key in keys:
            kind, name = key.split(":", 1)
            if kind == "indicator":
                spec = self.indicators.get(name)
                out[key] = (indicator_inputs(spec), indicator_params(spec, self.settings))
            else:
                out[key] = (sorted(DERIVED[name][1]), derived_params(name, self.settings))
        return out

    def stale_keys(self, conn: Connection, keys: list[str]) -> list[str]:
        """Keys whose stored result is missing or out of date."""
        return self.stale_among(keys, layer_versions(conn), stored_rows(conn, keys))

    def stale_among(self, keys: list[str], versions: dict[str, int],
                    stored: dict[str, dict[str, Any]]) -> list[str]:
        """Keys whose ``stored`` row is missing, keyed by other ``versions`` or parameters, or lost its file."""
        wanted = self.wanted(keys)
        stale = [k for k in keys if not is_fresh(stored.get(k), versions, *wanted[k])]
        raster = "derived:camera_density_raster"
        if raster in keys and raster not in stale:
            path = (stored[raster]["result"] or {}).get("path")
            if path and not Path(path).exists():
                stale.append(raster)
        return stale

    def stale(self, conn: Connection, ids: list[str]) -> list[str]:
        """Indicator ids among ``ids`` whose stored result is missing or out of date."""
        return [k.split(":", 1)[1] for k in self.stale_keys(conn, [f"indicator:{i}" for i in ids])]

    def results(self, ids: list[str] | None = None, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Results of ``ids`` (default all) in catalog order, recomputing stale ones (all with ``refresh``)."""
        ids = ids or self.indicators.ids
        for i in ids:
            self.indicators.get(i)
        keys = [f"indicator:{i}" for i in ids]
        self.ensure(keys, refresh=refresh)
        with self.engine.connect() as conn:
            stored = stored_rows(conn, keys)
        return [with_meta(stored[k]) for k in keys]

    def derived(self, names: list[str] | None = None, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        """Write stale gap layers / suggestions / the density raster; return each one's stored summary."""
        names = list(names or DERIVED)
        if "suggested_sites" in names and "gap_camera_hex" not in names:
            names.insert(0, "gap_camera_hex")  # camera suggestions read the fresh hex grid
        for name in names:
            if name not in DERIVED:
                raise KeyError(f"unknown derived output {name!r}; known: {', '.join(DERIVED)}")
        keys = [f"derived:{n}" for n in names]
        self.ensure(keys, refresh=refresh)
        with self.engine.connect() as conn:
            stored = stored_rows(conn, keys)
        return {k.split(":", 1)[1]: with_meta(stored[k]) for k in keys}

    def ensure(self, keys: list[str], *, refresh: bool = False) -> dict[str, float]:
        """Recompute the stale ones among ``keys`` (all with ``refresh``); return milliseconds per key."""
        if not refresh:
            with self.engine.connect() as conn:
                keys = self.stale_keys(conn, keys)
        return self.compute_keys(keys, force=refresh) if keys else {}

    def compute(self, ids: list[str], *, force: bool = False) -> dict[str, float]:
        """Recompute indicators ``ids``; return milliseconds per indicator id."""
        ms = self.compute_keys([f"indicator:{i}" for i in ids], force=force)
        return {k.split(":", 1)[1]: v for k, v in ms.items()}

    def compute_keys(self, keys: list[str], *, force: bool = False) -> dict[str, float]:
        """Recompute ``keys`` (those still stale once the lock is held, or all with ``force``) in one transaction."""
        timings: dict[str, float] = {}
        failed: list[str] = []
        with self.engine.begin() as conn:
            self._lock(conn)
            todo = keys if force else self.stale_keys(conn, keys)
            if not todo:
                return timings
            versions = layer_versions(conn)
            wanted = self.wanted(todo)
            ctx = Context(conn, self.layers, self.settings)
            for key in sorted(todo, key=_order):
                snapshot = set(ctx.prepared)
                start = time.perf_counter()
                try:
                    with conn.begin_nested():  # one broken computation must not take the others down
                        result = self._run(ctx, key)
                except Exception as exc:
                    cut = cut_off(exc)
                    if cut:
                        log.warning("indicator engine: computing %s was cut off by %s (%s); the previous result "
                                    "is kept", key, cut, self._limits())
                    else:
                        log.exception("indicator engine: computing %s failed", key)
                    ctx.prepared = snapshot  # temporary tables made in the savepoint are gone
                    failed.append(key)
                    continue
                ms = (time.perf_counter() - start) * 1000
                inputs = {layer: int(versions.get(layer, 0)) for layer in wanted[key][0]}
                result["inputs"] = inputs
                store(conn, key, key.split(":", 1)[0], inputs, wanted[key][1], result, ms)
                timings[key] = ms
        if failed:
            raise IndicatorComputationError(failed)
        return timings

    def _limits(self) -> str:
        return (f"statement_timeout {self.settings.indicator_statement_timeout_ms} ms, "
                f"lock_timeout {self.settings.indicator_lock_timeout_ms} ms")

    def _lock(self, conn: Connection) -> None:
        """Bound the transaction's statements and lock waits (JIT off), then take ``ENGINE_LOCK``.

        The wait for another computation is bounded by the statement timeout alone (it may rightly run longer
        than a table lock is waited for); a wait cut off raises :class:`IndicatorEngineBusy`.
        """
        conn.execute(sa.text("SELECT set_config('statement_timeout', :s, true), set_config('lock_timeout', '0', true), "
                             "set_config('jit', 'off', true)"),  # as on the API's sessions: compiling costs more
                     {"s": str(self.settings.indicator_statement_timeout_ms)})
        try:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ENGINE_LOCK})
        except sa.exc.DBAPIError as exc:
            if not cut_off(exc):
                raise
            log.warning("indicator engine: another computation held the engine lock longer than %d ms",
                        self.settings.indicator_statement_timeout_ms)
            raise IndicatorEngineBusy(
                f"another indicator computation has been running for more than "
                f"{self.settings.indicator_statement_timeout_ms / 1000:g} s; retry later") from None
        conn.execute(sa.text("SELECT set_config('lock_timeout', :l, true)"),
                     {"l": str(self.settings.indicator_lock_timeout_ms)})

    def _run(self, ctx: Context, key: str) -> dict[str, Any]:
        kind, name = key.split(":", 1)
        if kind == "indicator":
            return self._compute_one(ctx, self.indicators.get(name))
        result = DERIVED[name][0](ctx)
        return result if isinstance(result, dict) else {"features": result}

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


def cut_off(exc: BaseException) -> str | None:
    """Name the timeout (``statement_timeout`` / ``lock_timeout``) that cut a statement off, else None."""
    orig = getattr(exc, "orig", exc)
    return CUT_OFF.get(getattr(orig, "sqlstate", None) or "")


def with_meta(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored result with its computation time and duration."""
    result = dict(stored["result"])
    at = stored["computed_at"]
    result["computed_at"] = at.astimezone(UTC).isoformat() if isinstance(at, datetime) else at
    result["duration_ms"] = round(float(stored["duration_ms"]), 1)
    return result
