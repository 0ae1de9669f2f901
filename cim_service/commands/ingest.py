"""``cim ingest``: load a file into a layer; ``cim ingest-batches`` and ``cim rejects`` show what happened."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cim_service.commands import console, err_console, fail, open_database
from cim_service.store import batches
from cim_service.store import rejects as reject_rows

#: files larger than this get a progress bar
PROGRESS_BYTES = 2 * 1024 * 1024


class OnError(StrEnum):
    """What to do with faulty rows."""

    reject = "reject"
    abort = "abort"


def _engine_and_catalog():
    _, engine, catalog = open_database()
    return engine, catalog

def ingest(
    layer: Annotated[str, typer.Argument(help="Target layer id (see `layers/`).")],
    file: Annotated[Path, typer.Argument(help="CSV, GeoJSON, Shapefile (.shp) or GeoPackage.")],
    crs: Annotated[str | None, typer.Option(
        help="Source CRS: wgs84, cgcs2000, gcj02, bd09 or EPSG:<code>. Default: the file's own (.prj, GeoPackage), "
             "else the layer's default_crs."
    )] = None,
    lon_col: Annotated[str | None, typer.Option(help="Longitude column of a CSV.")] = None,
    lat_col: Annotated[str | None, typer.Option(help="Latitude column of a CSV.")] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding of a CSV (default: detected).")] = None,
    on_error: Annotated[OnError, typer.Option(help="Faulty rows: reject them, or abort.")] = OnError.reject,
    swap_axes: Annotated[bool, typer.Option(help="Exchange (lat, lon) rows to (lon, lat).")] = False,
    gpkg_layer: Annotated[str | None, typer.Option(help="Layer of a GeoPackage.")] = None,
    replace: Annotated[bool, typer.Option(
        help="The file is a full snapshot: delete the layer's features it does not contain (same transaction)."
    )] = False,
) -> None:
    """Ingest FILE into LAYER (one transaction: all or nothing); print a summary."""
    from pipelines.ingest import IngestError, ingest_file, one_line
    from pipelines.readers import count_lines

    settings, engine, catalog = open_database()
    large = file.is_file() and file.stat().st_size > PROGRESS_BYTES
    total = count_lines(file) if large and file.suffix.lower() in (".csv", ".tsv", ".txt") else None
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=True, disable=not large)
    try:
        with progress:
            task = progress.add_task(escape(f"{layer} ← {file.name}"), total=total)
            result = ingest_file(
                engine, catalog, layer, file, crs=crs, lon_col=lon_col, lat_col=lat_col, encoding=encoding,
                on_error=on_error.value, swap_axes=swap_axes, gpkg_layer=gpkg_layer, replace=replace,
                progress=lambda n: progress.update(task, completed=n),
                warn=lambda msg: err_console.print(f"[yellow]warning:[/] {escape(one_line(msg))}", highlight=False),
            )
    except IngestError as exc:
        fail(escape(str(exc)))  # file names and quoted values must not be read as rich markup
    except sa.exc.OperationalError as exc:
        fail(f"database unreachable: {str(exc.orig).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    console.print(_summary(result, file))
    if result.rejected:
        console.print(f"{result.rejected} rejected rows: `cim rejects {result.batch_id}`", highlight=False)
    if result.status == "committed":  # gap layers computed from this layer are rewritten now
        from cim_service.commands.indicators import refresh_gaps

        refresh_gaps([result.layer_id], settings=settings)


def _summary(result, file: Path) -> Table:
    from pipelines.ingest import one_line

    table = Table(title=escape(f"{result.layer_id} ← {one_line(file.name)}"), show_header=False,
                  title_justify="left")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for label, value in (
        ("status", result.status), ("batch", result.batch_id), ("layer version", result.version),
        ("rows read", result.rows_read), ("inserted", result.inserted), ("updated", result.updated),
        ("deleted", result.deleted),
        ("unchanged", result.unchanged), ("rejected", result.rejected), ("in-file duplicates", result.duplicates),
        ("outside the district (flagged)", result.outside),
    ):
        table.add_row(label, str(value))
    return table


def ingest_batches(
    layer: Annotated[str | None, typer.Argument(help="Only this layer.")] = None,
    limit: Annotated[int, typer.Option(help="Most recent batches to show.")] = 50,
) -> None:
    """List ingest batches, most recent first."""
    engine, _ = _engine_and_catalog()
    with engine.connect() as conn:
        rows = batches.recent(conn, layer, limit)
    engine.dispose()
    for r in rows:
        finished = r.finished_at.strftime("%Y-%m-%d %H:%M:%S") if r.finished_at else "-"
        console.print(
            f"[bold]#{r.id}[/] {r.layer_id} ← {escape(r.file_name)} {escape(f'[{r.source_crs}]')} {r.status}: "
            f"read {r.rows_read}, "
            f"new {r.rows_inserted}, updated {r.rows_updated}, same {r.rows_unchanged}, rejected {r.rows_rejected}, "
            f"duplicates {r.rows_duplicate}, outside {r.rows_outside}; {finished} UTC",
            highlight=False, markup=True,
        )
    if not rows:
        console.print("no ingest batches")


def rejects(
    batch_id: Annotated[int, typer.Argument(help="Batch id (see `cim ingest-batches`).")],
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write all rejects to this CSV ('-' = stdout).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show on screen.")] = 100,
) -> None:
    """Show the rows a batch rejected and why, or export them with --csv."""
    engine, _ = _engine_and_catalog()
    with engine.connect() as conn:
        exists = batches.exists(conn, batch_id)
        rows = reject_rows.of_batch(conn, batch_id)
    engine.dispose()
    if not exists:
        fail(f"no ingest batch {batch_id}")
    if csv_path is not None:
        _write_csv(rows, csv_path)
        return
    from pipelines.ingest import one_line

    table = Table("row", "field", "reason", "raw", title=f"batch {batch_id}: {len(rows)} rejected rows")
    for r in rows[:limit]:  # cells are text from the file: neither markup nor terminal control sequences
        table.add_row(str(r.row_number or ""), escape(one_line(r.field or "")), escape(one_line(r.reason)),
                      escape(one_line(json.dumps(r.raw, ensure_ascii=False)[:120])) if r.raw else "")
    console.print(table)


def _write_csv(rows, csv_path: Path) -> None:
    fh = sys.stdout if str(csv_path) == "-" else open(csv_path, "w", encoding="utf-8-sig", newline="")
    try:
        writer = csv.writer(fh)
        writer.writerow(["row_number", "field", "reason", "raw"])
        for r in rows:
            writer.writerow([r.row_number, r.field, r.reason,
                             json.dumps(r.raw, ensure_ascii=False) if r.raw is not None else ""])
    finally:
        if fh is not sys.stdout:
            fh.close()
    if fh is not sys.stdout:
        console.print(f"{len(rows)} rejects written to {csv_path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``ingest``, ``ingest-batches`` and ``rejects`` to the CLI."""
    app.command("ingest")(ingest)
    app.command("ingest-batches")(ingest_batches)
    app.command("rejects")(rejects)
