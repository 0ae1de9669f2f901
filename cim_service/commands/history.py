"""``cim history``: the feature history's administration (purge old versions; show the purge log)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from cim_service.commands import console, fail, open_database

history_app = typer.Typer(help="Feature history (as-of reads, changes): purge old versions, show the purge log.",
                          no_args_is_help=True)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--before: {text!r} is not an ISO date or date-time (e.g. 2022-01-01)")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@history_app.command("purge")
def purge(
    before: Annotated[str, typer.Option(help="Delete the versions that ended before this date (ISO 8601); "
                                             "states as of it or later stay complete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete history older than --before in every layer; the purge is logged (cim_meta.history_purge)."""
    from cim_service.store import history

    instant = _instant(before)
    if instant > datetime.now(UTC):
        fail("--before lies in the future: that would delete the record of changes still to be read")
    settings, engine, catalog = open_database()
    if not yes and not typer.confirm(f"delete every layer's versions that ended before {instant.isoformat()}?"):
        fail("nothing purged")
    actor = f"cli:{getpass.getuser()}"
    with engine.begin() as conn:
        counts = history.purge(conn, catalog, instant, actor)
    table = Table("layer", "versions deleted")
    for layer_id, n in counts.items():
        if n:
            table.add_row(layer_id, f"{n:,}")
    console.print(table)
    console.print(f"purged {sum(counts.values()):,} versions before {instant.isoformat()} "
                  f"(logged as {actor}); history now begins at {instant.isoformat()}")


@history_app.command("purges")
def purges() -> None:
    """Show the purge log, newest first."""
    from cim_service.store import history

    _, engine, _ = open_database()
    with engine.connect() as conn:
        rows = history.purges(conn)
    table = Table("at", "layer", "before", "deleted", "actor")
    for r in rows:
        table.add_row(str(r["at"]), r["layer_id"], str(r["before"]), f"{r['rows_deleted']:,}", r["actor"])
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``history`` group to the CLI."""
    app.add_typer(history_app, name="history")
