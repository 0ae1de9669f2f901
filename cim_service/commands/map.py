"""``cim map``: export the CIM一张图 web map as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cim_service.commands import command_settings, console, fail
from cim_service.core.settings import Settings

if TYPE_CHECKING:
    from cim_service.webmap.export import ExportReport


def map_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write", dir_okay=False)],
    sample: Annotated[int, typer.Option(help="features exported per public point layer", min=0)] = 300,
    view: Annotated[str, typer.Option(help="the first view: 2d, or 3d (pitched, the basemap layers and the "
                                           "extruded buildings)")] = "2d",
) -> None:
    """Write the map with its data inlined (no server, no network needed to open it)."""
    from cim_service.webmap.page import VIEW_MODES

    if view not in VIEW_MODES:
        fail(f"--view must be one of {', '.join(VIEW_MODES)}, not {view!r}")
    try:
        html, report = export_html(command_settings(), sample=sample, view_mode=view)
    except Exception as exc:  # noqa: BLE001 - one line for the operator, no traceback
        fail(f"map export failed: {type(exc).__name__}: {exc}".splitlines()[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    total = sum(report.features.values())
    console.print(f"wrote {out} ({len(html.encode()) / 1e6:.1f} MB): {total} features in "
                  f"{len(report.features)} layers, {report.indicators} indicators", highlight=False)
    for layer_id, reason in report.skipped.items():
        console.print(f"[yellow]skipped[/] {layer_id}: {reason}", highlight=False)


def export_html(settings: Settings, *, sample: int = 300, view_mode: str = "2d") -> tuple[str, ExportReport]:
    """Build the self-contained map HTML from the database of ``settings``.

    Parameters
    ----------
    settings : Settings
        Service settings (database, catalog).
    sample : int
        Features exported per public point layer.
    view_mode : str
        The first view of the exported map: ``2d`` or ``3d`` (its 3D switch works either way).

    Returns
    -------
    tuple of (str, ExportReport)
        The HTML text and what it contains.
    """
    from fastapi.testclient import TestClient

    from cim_service.app import create_app
    from cim_service.core.catalog import Role
    from cim_service.webmap.export import collect_inline_data, feature_bbox
    from cim_service.webmap.page import build_page_config, render_page

    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        inline, report = collect_inline_data(client, app.state.catalog, sample=sample)
        default_indicator = app.state.map_indicator
    outline = app.state.catalog.role(Role.district_outline)
    config = build_page_config(app.state.catalog, inline=inline, default_indicator=default_indicator,
                               view_mode=view_mode,
                               district_bbox=feature_bbox(inline.get(outline.id, {})) if outline else None)
    return render_page(config, inline_assets=True), report


def register(app: typer.Typer) -> None:
    """Add the ``map`` command to the CLI."""
    app.command("map")(map_cmd)
