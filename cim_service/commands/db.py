"""``cim db``: the project-local PostgreSQL + PostGIS cluster and schema migrations."""

from __future__ import annotations

import typer

from cim_service.commands import console, fail
from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.store.localdb import LocalCluster, LocalDatabaseError

db_app = typer.Typer(help="Database: start/stop the project-local PostGIS cluster, migrate the schema.",
                     no_args_is_help=True)


def _local(settings: Settings) -> LocalCluster:
    if settings.database_url:
        fail("CIM_DATABASE_URL is set: the project-local cluster is not used (unset it to use it)")
    return LocalCluster.from_settings(settings)


@db_app.command("start")
def start() -> None:
    """Start the project-local cluster (created on first use) and print its URL."""
    settings = Settings()
    try:
        url = _local(settings).start()
    except LocalDatabaseError as exc:
        fail(str(exc))
    console.print(url, highlight=False)


@db_app.command("stop")
def stop() -> None:
    """Stop the project-local cluster."""
    try:
        was_running = _local(Settings()).stop()
    except LocalDatabaseError as exc:
        fail(str(exc))
    console.print("stopped" if was_running else "not running")


@db_app.command("status")
def status() -> None:
    """Show which database is used and whether it is up."""
    settings = Settings()
    if settings.database_url:
        import sqlalchemy as sa

        from cim_service.store.db import make_engine

        try:
            with make_engine(settings.database_url).connect() as conn:
                version = conn.execute(sa.text("SELECT postgis_full_version()")).scalar_one()
        except Exception as exc:  # noqa: BLE001 - reported to the operator
            fail(f"configured database unreachable or without PostGIS: {type(exc).__name__}: {exc}".splitlines()[0])
        console.print(f"configured database: up\n{version}", highlight=False)
        return
    for key, value in LocalCluster.from_settings(settings).status().items():
        console.print(f"{key}: {value}", highlight=False)


@db_app.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the schema (service tables and the catalog's layer tables)."""
    from cim_service.commands import command_settings
    from cim_service.store.db import make_engine
    from cim_service.store.migrate import PostGISMissingError, migrate

    try:
        settings = command_settings()
        report = migrate(make_engine(settings.database_url), load_catalog(settings.catalog_dir))
    except (PostGISMissingError, LocalDatabaseError) as exc:
        fail(str(exc))
    console.print(
        f"schema up to date: {len(report.created_tables)} tables created, "
        f"{len(report.added_columns)} columns added"
    )
    for mismatch in report.type_mismatches:
        console.print(f"[yellow]type differs[/]: {mismatch}")


def register(app: typer.Typer) -> None:
    """Add the ``db`` group to the CLI."""
    app.add_typer(db_app, name="db")
