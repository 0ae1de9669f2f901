"""``cim report``: a town's progress report on the plan (PDF, HTML or XLSX), Chinese first."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from cim_service.commands import console, fail


def report_cmd(
    town: Annotated[str, typer.Option("--town", help="The town (街镇), e.g. 七宝镇.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="report.pdf, report.html or report.xlsx", dir_okay=False)],
    at: Annotated[str | None, typer.Option(help="The last day measured, YYYY-MM-DD (default today).")] = None,
    last_n: Annotated[int, typer.Option(min=2, max=10, help="Yearly values the projection is fitted on.")] = 3,
) -> None:
    """Write the planners' progress report of one town: per indicator its value, target, gap, trajectory and
    projection to 2025; the town's map of gaps; where the data come from."""
    from cim_service.commands.indicators import _engine
    from cim_service.indicators.engine import IndicatorComputationError, IndicatorEngineBusy
    from cim_service.indicators.report import build_report
    from cim_service.indicators.report_render import FORMATS, ReportFontMissing, write_report
    from cim_service.indicators.tables import UnknownTownError

    if out.suffix.lower().lstrip(".") not in FORMATS:
        fail(f"--out {out.name}: unsupported format {out.suffix or '(none)'!r}; use .pdf, .html or .xlsx")
    today = datetime.now(UTC).date()
    try:
        until = date.fromisoformat(at) if at else today
    except ValueError:
        fail(f"--at {at!r} is not a day YYYY-MM-DD")
    if until > today:
        fail(f"--at {until.isoformat()} is in the future")
    ind = _engine()
    try:
        with console.status(f"gathering {town}'s indicators over time (only stale values are computed)…"):
            report = build_report(ind, town, until=until, last_n=last_n)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_report(report, out)
    except UnknownTownError as exc:
        fail(str(exc))
    except (IndicatorComputationError, IndicatorEngineBusy, ReportFontMissing) as exc:
        fail(str(exc))
    finally:
        ind.engine.dispose()
    console.print(f"wrote {out}: {len(report.indicators)} indicators, {report.on_track} on track in {town} "
                  f"(as of {until.isoformat()})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to the CLI."""
    app.command("report")(report_cmd)
