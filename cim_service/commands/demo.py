"""``cim demo``: build the deterministic Minhang demo dataset and load it into every source layer."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cim_service.commands import console, fail, open_database


class DemoScale(StrEnum):
    """Size of the demo dataset."""

    small = "small"
    baseline = "baseline"
    plan = "plan"


def demo(
    scale: Annotated[DemoScale, typer.Option(help="small: fast (tests); baseline: the plan's 2020 figures; "
                                                  "plan: 2025 targets (load tests).")] = DemoScale.baseline,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 20210101,
    keep_other: Annotated[bool, typer.Option(help="Keep rows that are not part of this demo "
                                                  "(default: each layer ends up holding exactly the demo).")] = False,
    history: Annotated[bool, typer.Option(help="Load a yearly history 2020 → 2025 (dated snapshots, towns at "
                                               "different paces) ending with the demo; on a fresh database.")]
    = False,
) -> None:
    """Generate the demo dataset and load it (re-running with the same scale and seed changes nothing)."""
    from pipelines.demo import build_demo, load_demo
    from pipelines.demo.build import layer_frames

    settings, engine, catalog = open_database()
    with console.status(f"generating the {scale.value} demo (seed {seed})…"):
        started = time.perf_counter()
        frames = build_demo(scale.value, seed)
    console.print(f"generated {sum(len(f) for f in frames.values()):,} features in "
                  f"{time.perf_counter() - started:.1f} s")
    timings: dict[str, float] = {}
    total = sum(len(f) for f in layer_frames(catalog, frames).values())
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("loading", total=total * (6 if history else 1))
        last = [time.perf_counter()]

        def advance(layer_id: str, result) -> None:
            now = time.perf_counter()
            timings[layer_id] = now - last[0]
            last[0] = now
            bar.update(task, advance=len(frames[layer_id]), description=f"loaded {layer_id}")

        try:
            results = load_demo(engine, catalog, scale.value, seed, progress=advance, replace=not keep_other,
                                frames=frames, history=history)
        except Exception as exc:  # noqa: BLE001 - one line for the operator, no traceback
            fail(f"demo load failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    _summary(results, timings)
    _sync_sensing(engine, catalog)
    from cim_service.commands.indicators import refresh_gaps

    refresh_gaps([layer_id for layer_id, r in results.items() if r.status == "committed"], settings=settings)


def _sync_sensing(engine, catalog) -> None:
    """Things of sensing layers loaded before the SensorThings tables existed (a changed load syncs them itself)."""
    from cim_service.store import sensing_sync, sta_entities

    with engine.begin() as conn:
        for spec in catalog.sensing_layers:
            if sta_entities.thing_count(conn, spec.id) == 0:
                r = sensing_sync.sync(conn, spec)
                console.print(f"{spec.id}: {r.things:,} SensorThings Things created", highlight=False)


def _summary(results: dict, timings: dict[str, float]) -> None:
    table = Table(title="Minhang demo dataset")
    for name, justify in (("layer", "left"), ("features", "right"), ("status", "left"), ("inserted", "right"),
                          ("unchanged", "right"), ("s", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for layer_id, r in results.items():
        table.add_row(layer_id, f"{r.loaded:,}", r.status, f"{r.inserted:,}", f"{r.unchanged:,}",
                      f"{timings.get(layer_id, 0.0):.2f}")
    table.add_row("total", f"{sum(r.loaded for r in results.values()):,}", "", "", "",
                  f"{sum(timings.values()):.2f}", style="bold")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the CLI."""
    app.command("demo")(demo)
