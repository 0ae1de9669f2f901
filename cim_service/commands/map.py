"""``cim map``: export the CIM一张图 web map as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cim_service.commands import command_settings, console, fail


def map_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write", dir_okay=False)],
    sample: Annotated[int, typer.Option(help="features exported per public point layer", min=0)] = 300,
) -> None:
    """Write the map with its data inlined (no server, no network needed to open it)."""
    from cim_service.webmap.export import export_html

    try:
        html, report = export_html(command_settings(), sample=sample)
    except Exception as exc:  # noqa: BLE001 - one line for the operator, no traceback
        fail(f"map export failed: {type(exc).__name__}: {exc}".splitlines()[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    total = sum(report.features.values())
    console.print(f"wrote {out} ({len(html.encode()) / 1e6:.1f} MB): {total} features in "
                  f"{len(report.features)} layers, {report.indicators} indicators", highlight=False)
    for layer_id, reason in report.skipped.items():
        console.print(f"[yellow]skipped[/] {layer_id}: {reason}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``map`` command to the CLI."""
    app.command("map")(map_cmd)
