"""Indicator engine: results keyed by the versions of their input layers, recomputed when one changed.

Every stored result (``cim_meta.indicator_result``) carries ``inputs`` = ``{layer_id: version}`` of the
layers it was computed from (``cim_meta.layer_state.version``, bumped by every writer) and the
declarations and parameters that shaped it (from ``indicators.yaml``, with the settings they name resolved).
A result is fresh when both still match; otherwise it is recomputed. A key ``indicator:<id>@<YYYY-MM-DD>`` is
the indicator as of the end of that day (its input layers as of that day: :mod:`cim_service.indicators.asof`);
its parameters include the day, so every day has its own stored row. Computations run in one transaction
under an advisory lock, so concurrent requests compute once and never publish a half-written gap layer.
The transaction's statements and lock waits are bounded (``CIM_INDICATOR_STATEMENT_TIMEOUT_MS``,
``CIM_INDICATOR_LOCK_TIMEOUT_MS``): a computation cut off is logged in one line and its previous result stays.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cim_service.core.catalog import Catalog
from cim_service.core.settings import Settings
from cim_service.errors import CimError
from cim_service.indicators.asof import day_end
from cim_service.indicators.catalog import DerivedSpec, IndicatorCatalog, IndicatorSpec, indicators_for
from cim_service.indicators.compute import measure
from cim_service.indicators.context import Context
from cim_service.indicators.gaps import write_hex_deficit, write_sites_without, write_uncovered
from cim_service.indicators.keyareas import key_area_results
from cim_service.indicators.kinds import AreaCoverageParams, DerivedKind, resolve
from cim_service.indicators.raster import write_density_raster
from cim_service.indicators.results import KEY_AREAS_KEY, assemble
from cim_service.indicators.suggest import write_suggestions
from cim_service.indicators.trajectory import DEFAULT_LAST_N, trajectory, trajectory_days
from cim_service.store import indicator_results, layer_state

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
#: how each kind of derived output is written
WRITERS: dict[DerivedKind, Callable[[Context, DerivedSpec], Any]] = {
    DerivedKind.hex_deficit: write_hex_deficit,
    DerivedKind.uncovered_area: write_uncovered,
    DerivedKind.sites_without: write_sites_without,
    DerivedKind.density_raster: write_density_raster,
    DerivedKind.suggestions: write_suggestions,
}
#: version of the stored result's shape; bumping it recomputes results stored by an earlier release
#: (2: Chinese gap sentences, ``gap_zh``; 3: English gap sentences name towns by their English names)
RESULT_FORMAT = 3


def is_fresh(stored: dict[str, Any] | None, versions: dict[str, int], inputs: Iterable[str],
             params: dict[str, Any]) -> bool:
    """Tell whether a stored row was computed from the current input versions and parameters."""
    if stored is None:
        return False
    want = {layer: int(versions.get(layer, 0)) for layer in inputs}
    return stored["inputs"] == want and stored["params"] == json.loads(json.dumps(params))


def indicator_key(indicator_id: str, at: date | None = None) -> str:
    """Result key of an indicator now (``indicator:<id>``) or as of the end of day ``at`` (``…@YYYY-MM-DD``)."""
    return f"indicator:{indicator_id}" if at is None else f"indicator:{indicator_id}@{at.isoformat()}"


def split_key(key: str) -> tuple[str, str, date | None]:
    """(kind, name, as-of day or None) of a result key."""
    kind, rest = key.split(":", 1)
    name, _, day = rest.partition("@")
    return kind, name, date.fromisoformat(day) if day else None


layer_versions = layer_state.versions
stored_rows = indicator_results.stored
store = indicator_results.store


class IndicatorEngine:
    """Compute, store and serve indicator results for one database."""

    def __init__(self, engine: Engine, layers: Catalog, settings: Settings,
                 indicators: IndicatorCatalog | None = None):
        self.engine = engine
        self.layers = layers
        self.settings = settings
        self.indicators = indicators or indicators_for(settings)
        self.indicators.check_layers(layers)

    def item(self, key: str) -> IndicatorSpec | DerivedSpec:
        """The declaration behind a result key ('indicator:<id>' or 'derived:<name>')."""
        kind, name, _ = split_key(key)
        return self.indicators.get(name) if kind == "indicator" else self.indicators.get_derived(name)

    def params(self, item: IndicatorSpec | DerivedSpec) -> dict[str, Any]:
        """What shapes a stored result: its declaration and those it uses, settings resolved.

        A change of any of them (in ``indicators.yaml`` or a setting it names) makes the result stale.
        """
        cat, dump = self.indicators, (lambda m: resolve(m.model_dump(mode="json"), self.settings))
        p = item.p
        out: dict[str, Any] = {"spec": dump(item), "result_format": RESULT_FORMAT}
        suggestions = cat.suggestions if isinstance(item, DerivedSpec) and item.kind is DerivedKind.suggestions \
            else []
        coverages = {c for c in [getattr(p, "coverage", None), *(s.coverage for s in suggestions)] if c}
        indicators = {i for i in [getattr(p, "indicator", None)] if i}
        indicators |= {cat.get_derived(s.hexes).p.indicator for s in suggestions if s.hexes}
        out["coverages"] = {c: dump(cat.coverage(c)) for c in sorted(coverages)}
        out["indicators"] = {i: dump(cat.get(i)) for i in sorted(indicators)}
        if suggestions:
            out["suggestions"] = [dump(s) for s in suggestions]
        if isinstance(item, DerivedSpec) and item.kind is DerivedKind.density_raster:
            out["home"] = str(self.settings.home)
        return out

    def wanted(self, keys: list[str]) -> dict[str, tuple[list[str], dict[str, Any]]]:
        """Inputs and parameters of result keys ('indicator:<id>' or 'derived:<name>')."""
        out = {}
        for key in keys:
            item, at = self.item(key), split_key(key)[2]
            params = self.params(item)
            if at is not None:
                params["at"] = at.isoformat()
            out[key] = (self.indicators.inputs(item, self.layers), params)
        return out

    def _order(self, key: str) -> tuple[int, int]:
        """Indicators first, then derived outputs in declaration order."""
        kind, name, _ = split_key(key)
        return (0, 0) if kind == "indicator" else (1, self.indicators.derived_ids.index(name))

    def stale_keys(self, conn: Connection, keys: list[str]) -> list[str]:
        """Keys whose stored result is missing or out of date."""
        return self.stale_among(keys, layer_versions(conn), stored_rows(conn, keys))

    def stale_among(self, keys: list[str], versions: dict[str, int],
                    stored: dict[str, dict[str, Any]]) -> list[str]:
        """Keys whose ``stored`` row is missing, keyed by other ``versions`` or parameters, or lost its file."""
        wanted = self.wanted(keys)
        stale = [k for k in keys if not is_fresh(stored.get(k), versions, *wanted[k]) or self._aged(k, stored.get(k))]
        for key in keys:  # an output written to a file (a raster) whose file is gone
            path = (stored[key]["result"] or {}).get("path") if key in stored and key not in stale else None
            if path and not Path(path).exists():
                stale.append(key)
        return stale

    @property
    def live_ids(self) -> list[str]:
        """Indicators whose value follows the readings (``Kind.live``): recomputed by age too."""
        return [spec.id for spec in self.indicators if spec.kind.live]

    def _aged(self, key: str, stored: dict[str, Any] | None) -> bool:
        """Tell whether a live indicator's stored result is older than ``CIM_LIVE_INDICATOR_PERIOD_S`` while the
        moment it measures can still move (now, or a day not over when it was computed)."""
        if stored is None:
            return False
        kind, name, at = split_key(key)
        if kind != "indicator" or not self.indicators.get(name).kind.live:
            return False
        computed = stored["computed_at"]
        if not isinstance(computed, datetime):
            computed = datetime.fromisoformat(str(computed))
        if at is not None and day_end(at) < computed:
            return False  # computed after the day ended: its window is history
        return (datetime.now(UTC) - computed).total_seconds() >= self.settings.live_indicator_period_s

    def refresh_live(self) -> dict[str, float]:
        """Recompute the live indicators whose stored result aged (the service's periodic task)."""
        keys = [indicator_key(i) for i in self.live_ids]
        return self.ensure(keys) if keys else {}

    def stale(self, conn: Connection, ids: list[str]) -> list[str]:
        """Indicator ids among ``ids`` whose stored result is missing or out of date."""
        return [k.split(":", 1)[1] for k in self.stale_keys(conn, [f"indicator:{i}" for i in ids])]

    def results(self, ids: list[str] | None = None, *, refresh: bool = False,
                at: date | None = None) -> list[dict[str, Any]]:
        """Results of ``ids`` (default all) in catalog order, recomputing stale ones (all with ``refresh``).

        With ``at``: the indicators as of the end of that day.
        """
        ids = ids or self.indicators.ids
        for i in ids:
            self.indicators.get(i)
        keys = [indicator_key(i, at) for i in ids]
        self.ensure(keys, refresh=refresh)
        with self.engine.connect() as conn:
            stored = stored_rows(conn, keys)
        return [with_meta(stored[k]) for k in keys]

    def trajectory_keys(self, indicator_id: str, until: date) -> dict[date, str]:
        """Result keys (by day) of the values an indicator's trajectory up to ``until`` reads."""
        spec = self.indicators.get(indicator_id)
        return {d: indicator_key(indicator_id, d) for d in trajectory_days(spec, until)}

    def trajectory(self, indicator_id: str, *, until: date, last_n: int = DEFAULT_LAST_N) -> dict[str, Any]:
        """The trajectory of one indicator (district and ranked towns) up to ``until``; values computed if stale."""
        keys = self.trajectory_keys(indicator_id, until)
        self.ensure(list(keys.values()))
        with self.engine.connect() as conn:
            stored = stored_rows(conn, list(keys.values()))
        return trajectory(self.indicators.get(indicator_id), {d: stored[k]["result"] for d, k in keys.items()},
                          last_n=last_n, until=until)

    def derived(self, names: list[str] | None = None, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        """Write stale gap layers / suggestions / the density raster; return each one's stored summary."""
        names = list(names or self.indicators.derived_ids)
        for name in list(names):
            for dep in self.indicators.get_derived(name).after:  # e.g. suggestions read the fresh hex grid
                if dep not in names:
                    names.insert(0, dep)
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
        """Recompute ``keys`` (those still stale once the lock is held, or all with ``force``).

        One transaction per as-of day (the day's temporary as-of tables live in it), current results first; past
        days ``CIM_INDICATOR_DAY_WORKERS`` at a time (each under its own lock, so days never wait for each other).
        """
        timings: dict[str, float] = {}
        failed: list[str] = []
        groups: dict[date | None, list[str]] = {}
        for key in keys:
            groups.setdefault(split_key(key)[2], []).append(key)
        current = groups.pop(None, None)
        if current:
            self._compute_day(current, None, force, timings, failed)
        days = sorted(groups)
        workers = min(self.settings.indicator_day_workers, len(days))
        if workers <= 1:
            for day in days:
                self._compute_day(groups[day], day, force, timings, failed)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="indicator-day") as pool:
                list(pool.map(lambda d: self._compute_day(groups[d], d, force, timings, failed), days))
        if failed:
            raise IndicatorComputationError(failed)
        return timings

    def _compute_day(self, keys: list[str], at: date | None, force: bool, timings: dict[str, float],
                     failed: list[str]) -> None:
        """Recompute ``keys`` (all as of ``at``) in one transaction, adding to ``timings`` / ``failed``."""
        with self.engine.begin() as conn:
            self._lock(conn, at)
            todo = keys if force else self.stale_keys(conn, keys)
            if not todo:
                return
            versions = layer_versions(conn)
            wanted = self.wanted(todo)
            ctx = Context(conn, self.layers, self.settings, self.indicators, at=at)
            for key in sorted(todo, key=self._order):
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
                if at is not None:
                    result["at"] = at.isoformat()
                store(conn, key, split_key(key)[0], inputs, wanted[key][1], result, ms)
                timings[key] = ms

    def _limits(self) -> str:
        return (f"statement_timeout {self.settings.indicator_statement_timeout_ms} ms, "
                f"lock_timeout {self.settings.indicator_lock_timeout_ms} ms")

    def _lock(self, conn: Connection, at: date | None = None) -> None:
        """Bound the transaction's statements and lock waits (JIT off), then take ``ENGINE_LOCK`` (with ``at``: the
        day's own lock, ``(ENGINE_LOCK, day ordinal)``).

        The wait for another computation is bounded by the statement timeout alone (it may rightly run longer
        than a table lock is waited for); a wait cut off raises :class:`IndicatorEngineBusy`.
        """
        conn.execute(sa.text("SELECT set_config('statement_timeout', :s, true), set_config('lock_timeout', '0', true), "
                             "set_config('jit', 'off', true)"),  # as on the API's sessions: compiling costs more
                     {"s": str(self.settings.indicator_statement_timeout_ms)})
        try:
            if at is None:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ENGINE_LOCK})
            else:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(CAST(:k AS int), CAST(:d AS int))"),
                             {"k": ENGINE_LOCK, "d": at.toordinal()})
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
        item = self.item(key)
        if isinstance(item, IndicatorSpec):
            return self._compute_one(ctx, item)
        result = WRITERS[item.kind](ctx, item)
        return result if isinstance(result, dict) else {"features": result}

    def _compute_one(self, ctx: Context, spec: IndicatorSpec) -> dict[str, Any]:
        optional = self.indicators.optional_inputs(spec)
        areas = [layer for layer in self.indicators.inputs(spec, self.layers)
                 if layer not in self.indicators.source_layers(spec)]
        empty = [layer for layer in self.indicators.source_layers(spec)
                 if layer in ctx.empty_layers and layer not in optional]
        if spec.kind.per_area and ctx.district_area_km2 is None:
            empty += [layer for layer in areas if layer not in empty]
        m = {} if empty else measure(ctx, spec)
        result = assemble(spec, m, towns=ctx.towns, district_km2=ctx.district_area_km2, empty=empty)
        keys = spec.p.key_areas if isinstance(spec.p, AreaCoverageParams) else None
        if keys is not None and not empty and keys.layer not in ctx.empty_layers:
            result[KEY_AREAS_KEY] = key_area_results(ctx, spec)
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
