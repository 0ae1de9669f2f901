"""``cim indicators``: plan indicators (value vs target, met / not met, gap), gap layers and site suggestions."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cim_service.commands import console, fail, open_database
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorComputationError, IndicatorEngineBusy

indicators_app = typer.Typer(help="Plan indicators measured on the map: values, targets, gaps, site suggestions.")
STATUS_STYLE = {"met": "[green]met[/]", "not_met": "[red]not met[/]", "no_data": "[yellow]no data[/]"}


def _engine():
    """The indicator engine on the configured (or project-local) database, schema migrated."""
    from cim_service.indicators.engine import IndicatorEngine

    settings, engine, catalog = open_database()
    try:
        return IndicatorEngine(engine, catalog, settings)
    except ValueError as exc:  # a wrong declaration in indicators.yaml / CIM_INDICATORS_DIR
        fail(str(exc).splitlines()[0])


def _choices(names: list[str]) -> str:
    """``a, b or c`` (``none declared`` when empty)."""
    if not names:
        return "none declared"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}{unit}"
    return f"{value:,.0f}{unit}"


@indicators_app.callback(invoke_without_command=True)
def indicators(
    ctx: typer.Context,
    town: Annotated[str | None, typer.Option(help="Show one town (街镇), e.g. 七宝镇.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the rows to this CSV file.")] = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="Also write the rows to this Excel file.")] = None,
    refresh: Annotated[bool, typer.Option(help="Recompute everything, even results still current.")] = False,
) -> None:
    """Print every plan indicator: value vs target, met / not met and the gap (district, or --town)."""
    if ctx.invoked_subcommand is not None:
        return
    from cim_service.indicators.context import DISTRICT
    from cim_service.indicators.tables import UnknownTownError, flat_rows, to_csv, to_xlsx

    ind = _engine()
    try:
        with console.status("computing indicators (only those whose input layers changed)…"):
            results = ind.results(refresh=refresh)
    except (IndicatorComputationError, IndicatorEngineBusy) as exc:
        fail(str(exc))
    try:
        rows = flat_rows(results, town)
    except UnknownTownError as exc:
        fail(str(exc))
    rows_shown = rows if town is not None else [r for r in rows if r["area"] == DISTRICT]
    table = Table(title=f"闵行区数字化转型规划指标 — {town or '闵行区'}")
    for name, justify in (("indicator", "left"), ("unit", "left"), ("value", "right"), ("target", "right"),
                          ("status", "left"), ("gap", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in rows_shown:
        table.add_row(f"{r['name_zh']}\n[dim]{r['id']}[/]", r["unit"], _fmt(r["value"]), _fmt(r["target"]),
                      STATUS_STYLE.get(r["status"], r["status"]), r["gap"])
    console.print(table)
    if csv is not None:
        csv.write_text(to_csv(rows), encoding="utf-8")
        console.print(f"wrote {len(rows)} rows to {csv}")
    if xlsx is not None:
        to_xlsx(rows, str(xlsx))
        console.print(f"wrote {len(rows)} rows to {xlsx}")


@indicators_app.command("suggest")
def suggest(
    kind: Annotated[str, typer.Argument(help="A suggestion kind of indicators.yaml (e.g. charging, g5 / 5g, camera)")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many sites to list.")] = 20,
) -> None:
    """List suggested new sites (greedy maximal coverage) and how many close the gap."""
    from cim_service.indicators.suggest import read_suggestions

    ind = _engine()
    spec = ind.indicators.suggestion_kind(kind)
    output = ind.indicators.suggestions_output
    if spec is None or output is None:
        fail(f"unknown suggestion kind {kind!r}; use {_choices([s.id for s in ind.indicators.suggestions])}")
    key = spec.id
    try:
        with console.status("computing suggestions (only if their input layers changed)…"):
            summary = ind.derived([output.id])[output.id]
    except (IndicatorComputationError, IndicatorEngineBusy) as exc:
        fail(str(exc))
    info = summary.get(key)
    if info is None:
        fail(f"no {key} suggestions: the input layers are empty")
    sites = read_suggestions(ind.engine, ind.layers.get(output.id).qualified_table, key, n)
    closes = "closes the gap" if info["closes_gap"] else "does NOT close the gap (site limit reached)"
    console.print(f"[bold]{key}[/]: {info['sites']:,} sites ({info['devices']:,} devices) {closes}. "
                  f"{info['method']}")
    table = Table(title=f"suggested {key} sites (top {n})")
    for name in ("rank", "town", "lon", "lat", "adds", "cumulative", "devices"):
        table.add_column(name, justify="left" if name == "town" else "right")
    for s in sites:
        table.add_row(str(s["rank"]), s["town"] or "–", f"{s['lon']:.5f}", f"{s['lat']:.5f}",
                      f"{_fmt(s['added'])} {s['added_unit']}", _fmt(s["cumulative_value"]), str(s["devices"]))
    console.print(table)


@indicators_app.command("gaps")
def gaps(refresh: Annotated[bool, typer.Option(help="Rewrite even if current.")] = False) -> None:
    """Write the gap layers, suggestions and the camera-density raster (when their inputs changed)."""
    ind = _engine()
    try:
        with console.status("writing gap layers…"):
            out = ind.derived(refresh=refresh)
    except (IndicatorComputationError, IndicatorEngineBusy) as exc:
        fail(str(exc))
    table = Table(title="derived outputs")
    for name in ("output", "result", "computed at", "ms"):
        table.add_column(name)
    for name, r in out.items():
        detail = r.get("path") or (f"{r['features']:,} features" if "features" in r else
                                   ", ".join(f"{k}: {v['sites']:,} sites" for k, v in r.items()
                                             if isinstance(v, dict) and "sites" in v))
        table.add_row(name, str(detail), str(r["computed_at"])[:19], f"{r['duration_ms']:.0f}")
    console.print(table)


def refresh_gaps(changed: Iterable[str] | None = None, *, settings: Settings | None = None,
                 wait_seconds: float = 300.0) -> None:
    """After ``changed`` layers were written (None: any), rewrite the stale gap layers; print one line.

    Never fails the calling command (its data is committed): a refresh error is reported, and the service,
    a request or ``cim indicators gaps`` refreshes later.
    """
    from cim_service.commands import command_settings
    from cim_service.core.catalog import load_catalog
    from cim_service.indicators.catalog import indicators_for
    from cim_service.indicators.engine import IndicatorEngine
    from cim_service.indicators.freshness import input_layers, refresh_stale
    from cim_service.store.db import make_engine

    settings = settings or command_settings()
    layers = load_catalog(settings.catalog_dir)
    if changed is not None and not set(changed) & input_layers(indicators_for(settings), layers):
        return
    ind = None
    try:
        ind = IndicatorEngine(make_engine(settings.database_url), layers, settings)
        with console.status("refreshing the gap layers (only those whose inputs changed)…"):
            out = refresh_stale(ind, wait_seconds=wait_seconds)
        console.print(out.summary(), highlight=False)
    except Exception as exc:  # noqa: BLE001 - one line; the data written before is committed
        console.print(f"[yellow]gap layers not refreshed ({type(exc).__name__}); "
                      f"run `cim indicators gaps`[/]", highlight=False)
    finally:
        if ind is not None:
            ind.engine.dispose()


def register(app: typer.Typer) -> None:
    """Add the ``indicators`` group to the CLI."""
    app.add_typer(indicators_app, name="indicators")
