"""Command groups of the ``cim`` CLI; each module exposes ``register(app)``, called by name in ``cli.py``.

A command builds its settings once, with :func:`command_settings`: the environment's, with the database URL
resolved (the configured one, or the project-local cluster's), and passes them on.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from cim_service.core.settings import Settings

console = Console()
err_console = Console(stderr=True)


#: SQLSTATEs of a schema check that lost a race with another writer (deadlock, serialization, lock not available):
#: run again, up to TRANSIENT_ATTEMPTS times
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})
TRANSIENT_ATTEMPTS = 4


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error on stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def command_settings() -> Settings:
    """Settings of a command: from the environment, with the database URL resolved."""
    from cim_service.core.settings import Settings
    from cim_service.store.localdb import LocalDatabaseError, resolve_database_url

    settings = Settings()
    if settings.database_url:
        return settings
    try:
        return settings.model_copy(update={"database_url": resolve_database_url(settings)})
    except LocalDatabaseError as exc:
        fail(str(exc))
        raise


def open_database(*, migrate_schema: bool = True):
    """Return ``(settings, engine, catalog)`` for a command, the schema brought up to date; fail in one line.

    A missing local cluster or PostGIS, and an unreachable server, end the command with what to do.
    """
    import sqlalchemy as sa

    from cim_service.core.catalog import load_catalog
    from cim_service.store.db import make_engine
    from cim_service.store.localdb import LocalDatabaseError
    from cim_service.store.migrate import PostGISMissingError, migrate

    settings = command_settings()
    for attempt in range(TRANSIENT_ATTEMPTS):
        try:
            engine = make_engine(settings.database_url)
            catalog = load_catalog(settings.catalog_dir)
            if migrate_schema:
                migrate(engine, catalog)
            return settings, engine, catalog
        except (LocalDatabaseError, PostGISMissingError) as exc:
            fail(str(exc))
        except sa.exc.OperationalError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state in TRANSIENT_SQLSTATES and attempt + 1 < TRANSIENT_ATTEMPTS:
                # a deadlock or lock wait with a writer that is still finishing (e.g. the backend of a killed
                # process): the schema check is one transaction, so it is simply run again
                engine.dispose()
                time.sleep(0.5 * (attempt + 1))
                continue
            if state is None or state[:2] in ("08", "28", "3D"):  # no connection, no login, no such database
                fail("cannot connect to the database: start the project-local one with `cim db start` "
                     "or set CIM_DATABASE_URL")
            fail(f"the database refused the schema check: {str(exc.orig).splitlines()[0]}")
    raise AssertionError("unreachable")  # every path above returns or fails
