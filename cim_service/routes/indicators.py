"""Plan indicators: ``/indicators``, ``/indicators/{id}`` (``?at=`` a past day), ``/indicators/{id}/trajectory``
and ``/indicators/{id}/suggestions``.

Reads go through the app's pool (``app.state.db``): stored results are served when their input layer versions are
still current; stale ones are recomputed first, in a threadpool on the app's synchronous engine (the indicator
engine's advisory lock makes concurrent requests compute once). Indicators are aggregates: public like the layers
they summarise.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cim_service.errors import InvalidParameter, NotFound
from cim_service.excel import excel_safe
from cim_service.indicators import trajectory as traj
from cim_service.indicators.catalog import UnknownIndicatorError
from cim_service.indicators.engine import IndicatorEngine, indicator_key, with_meta
from cim_service.indicators.freshness import output_keys
from cim_service.indicators.live import LiveIndicators
from cim_service.indicators.refresher import GapRefresher
from cim_service.indicators.suggest import read_suggestions
from cim_service.indicators.tables import UnknownTownError, flat_rows, select_town, to_csv
from cim_service.store import indicator_results, layer_state
from cim_service.store.db import Database, Session

router = APIRouter(prefix="/indicators", tags=["Plan indicators"])

Town = Annotated[str | None, Query(description="Town (街镇) name, e.g. `七宝镇`: that town's value, target, gap.")]
IndicatorId = Annotated[str, Path(description="Indicator id, e.g. `camera_density`.")]
At = Annotated[str | None, Query(description="A day `YYYY-MM-DD`: the indicator as of the end of that day "
                                             "(features whose own date is on or before it).")]
Format = Annotated[str | None, Query(description="json (default) or csv")]
#: the earliest day an indicator is computed as of
EARLIEST_DAY = date(2000, 1, 1)


def today() -> date:
    """Today (UTC)."""
    return datetime.now(UTC).date()


def parse_day(value: str | None, name: str = "at") -> date | None:
    """A ``YYYY-MM-DD`` parameter, at the earliest ``EARLIEST_DAY`` and at the latest today; 400 naming it."""
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(f"parameter {name!r}: {value[:40]!r} is not a day YYYY-MM-DD") from None
    if day < EARLIEST_DAY:
        raise InvalidParameter(f"parameter {name!r}: indicators begin on {EARLIEST_DAY.isoformat()}")
    if day > today():
        raise InvalidParameter(f"parameter {name!r}: {day.isoformat()} is in the future (today is "
                               f"{today().isoformat()})")
    return day


def _format(f: str | None) -> str:
    fmt = (f or "json").lower()
    if fmt not in ("json", "csv"):
        raise InvalidParameter(f"parameter 'f': unsupported format {f!r}; use json or csv")
    return fmt


async def startup(app: FastAPI) -> None:
    """Create the indicator engine, start the background gap-layer refresher (unless CIM_GAP_REFRESH=off) and the
    live indicators' periodic recomputation."""
    settings = app.state.settings
    app.state.indicator_engine = IndicatorEngine(app.state.engine, app.state.catalog, settings)
    # the map's first indicator; an unknown CIM_MAP_INDICATOR stops the start here
    app.state.map_indicator = app.state.indicator_engine.indicators.map_indicator(settings.map_indicator)
    app.state.gap_refresher = None
    if settings.gap_refresh:
        refresher = GapRefresher(app.state.indicator_engine, app.state.listener,
                                 debounce_seconds=settings.gap_refresh_debounce_s)
        await refresher.start()
        app.state.gap_refresher = refresher
    app.state.live_indicators = LiveIndicators(app.state.indicator_engine, settings.live_indicator_period_s)
    await app.state.live_indicators.start()  # every CIM_LIVE_INDICATOR_PERIOD_S (cim_service/indicators/live.py)


async def shutdown(app: FastAPI) -> None:
    """Stop the live indicators' task and the refresher (the engine and the listener belong to the app)."""
    live = getattr(app.state, "live_indicators", None)
    if live is not None:
        await live.stop()
    refresher = getattr(app.state, "gap_refresher", None)
    if refresher is not None:
        await refresher.stop()


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def _read(db: Database, keys: list[str]) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    async def fetch(session: Session) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        return await layer_state.fetch_versions(session), await indicator_results.fetch_stored(session, keys)

    return await db.run(fetch)


async def fresh_results(request: Request, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Stored results of ``keys``, recomputing (in a threadpool) those whose inputs changed."""
    ind: IndicatorEngine = request.app.state.indicator_engine
    versions, stored = await _read(request.app.state.db, keys)
    stale = ind.stale_among(keys, versions, stored)
    if stale:
        await run_in_threadpool(ind.ensure, stale)
        versions, stored = await _read(request.app.state.db, keys)
    return {k: with_meta(stored[k]) for k in keys if k in stored}


def _spec_or_404(request: Request, indicator_id: str) -> None:
    try:
        request.app.state.indicator_engine.indicators.get(indicator_id)
    except UnknownIndicatorError as exc:
        raise NotFound(str(exc)) from None


@router.get("", summary="All plan indicators with their values, targets, status and gaps")
async def list_indicators(request: Request, town: Town = None, f: Format = None, at: At = None) -> Response:
    """List every indicator for the district and every town (JSON) or as flat rows (``f=csv``); ``at``: as of a day."""
    fmt = _format(f)
    day = parse_day(at)
    ids = request.app.state.indicator_engine.indicators.ids
    got = await fresh_results(request, [indicator_key(i, day) for i in ids])
    results = [got[indicator_key(i, day)] for i in ids]
    try:
        if fmt == "csv":
            return Response(to_csv(flat_rows(results, town)), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="indicators.csv"'})
        if town is not None:
            results = [select_town(r, town) for r in results]
    except UnknownTownError as exc:
        raise NotFound(str(exc)) from None
    return _json({"indicators": results, "town": town, "at": at})


@router.get("/gaps", summary="Gap layers, site suggestions and the density raster, refreshed if stale")
async def gap_outputs(
    request: Request,
    wait: Annotated[bool, Query(description="false: answer at once with the stored outputs (each with "
                                            "`stale`) instead of rewriting stale ones first")] = True,
) -> Response:
    """Summary of every derived output (features, input versions, computed_at, ``stale``), rewritten first if stale.

    ``stale`` is true when an input layer changed since the output was written (the map then still shows the
    previous rows until the background refresh, ``refreshing``, commits).
    """
    ind: IndicatorEngine = request.app.state.indicator_engine
    keys = output_keys(indicators=ind.indicators)
    if wait:
        await fresh_results(request, keys)
    versions, stored = await _read(request.app.state.db, keys)
    stale = set(ind.stale_among(keys, versions, stored))
    outputs = {k.split(":", 1)[1]: {**(with_meta(stored[k]) if k in stored else {}), "stale": k in stale,
                                    "version": versions.get(k.split(":", 1)[1])} for k in keys}
    refresher = request.app.state.gap_refresher
    return _json({"outputs": outputs, "layers": [n for n in outputs if n in request.app.state.catalog],
                  "refreshing": bool(refresher is not None and refresher.running)})


@router.get("/{indicator_id}", summary="One plan indicator (district and towns, or one town)")
async def get_indicator(request: Request, indicator_id: IndicatorId, town: Town = None, at: At = None) -> Response:
    """One indicator: district value with every town's, or with ``town`` that town's value at the top level.

    ``at``: as of the end of that day (its result is stored, so a second read is one row).
    """
    _spec_or_404(request, indicator_id)
    key = indicator_key(indicator_id, parse_day(at))
    result = (await fresh_results(request, [key]))[key]
    if town is not None:
        try:
            result = select_town(result, town)
        except UnknownTownError as exc:
            raise NotFound(str(exc)) from None
    return _json(result)


@router.get("/{indicator_id}/trajectory", summary="Yearly values from the 2020 baseline, pace, projection, ranking")
async def get_trajectory(
    request: Request, indicator_id: IndicatorId, town: Town = None, f: Format = None,
    at: Annotated[str | None, Query(description="The last day measured, `YYYY-MM-DD` (default today).")] = None,
    last_n: Annotated[int, Query(ge=2, le=10, description="Yearly values the projection's line is fitted on")]
    = traj.DEFAULT_LAST_N,
) -> Response:
    """The indicator's values at each year's end from the baseline (and on ``at``), the target and its year, the
    pace needed and achieved, the projection to the target year (method stated), ``on_track`` and, for counts,
    ``more_per_year``; the district and every town ranked by how far behind pace (or just ``town``)."""
    _spec_or_404(request, indicator_id)
    fmt = _format(f)
    until = parse_day(at, "at") or today()
    ind: IndicatorEngine = request.app.state.indicator_engine
    keys = ind.trajectory_keys(indicator_id, until)
    got = await fresh_results(request, list(keys.values()))
    body = traj.trajectory(ind.indicators.get(indicator_id), {d: got[k] for d, k in keys.items()},
                           last_n=last_n, until=until)
    if town is not None:
        try:
            body = traj.select_town(body, town)
        except UnknownTownError as exc:
            raise NotFound(str(exc)) from None
    if fmt == "csv":
        columns, rows = traj.flat_rows(body)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({k: excel_safe(v) for k, v in row.items()} for row in rows)
        return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{indicator_id}-trajectory.csv"'})
    return _json(body)


@router.get("/{indicator_id}/suggestions", summary="Suggested new sites that close the indicator's gap")
async def suggestions(request: Request, indicator_id: IndicatorId,
                      n: Annotated[int, Query(ge=1, le=5000, description="How many sites to return")] = 50
                      ) -> Response:
    """Greedy maximal-coverage sites (GeoJSON), best first, with the coverage each adds."""
    _spec_or_404(request, indicator_id)
    ind: IndicatorEngine = request.app.state.indicator_engine
    spec, output = ind.indicators.suggestion_for(indicator_id), ind.indicators.suggestions_output
    if spec is None or output is None:
        having = [i for s in ind.indicators.suggestions for i in s.indicators]
        raise NotFound(f"indicator {indicator_id!r} has no site suggestions; "
                       f"suggestions exist for: {', '.join(having)}")
    kind, key = spec.id, f"derived:{output.id}"
    summary = (await fresh_results(request, [*(f"derived:{d}" for d in output.after), key]))[key]
    table = ind.layers.get(output.id).qualified_table

    rows = await run_in_threadpool(read_suggestions, ind.engine, table, kind, n)
    features = [{"type": "Feature", "id": r["rank"],
                 "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                 "properties": {k: r[k] for k in ("rank", "town", "radius_m", "added", "added_unit",
                                                  "cumulative_value", "devices")}} for r in rows]
    info = summary.get(kind) or {"sites": 0, "closes_gap": None, "method": "no input data"}
    return _json({"type": "FeatureCollection", "indicator": indicator_id, "kind": kind,
                  "sites_to_close_gap": info.get("sites") if info.get("closes_gap") else None,
                  "summary": info, "computed_at": summary.get("computed_at"),
                  "numberReturned": len(features), "features": features})
