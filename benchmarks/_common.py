"""Shared set-up of the benchmarks: a named, migrated database kept on the local cluster between runs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cim_service.core.catalog import load_catalog
from cim_service.core.settings import Settings
from cim_service.store.db import make_engine
from cim_service.store.localdb import LocalCluster
from cim_service.store.migrate import migrate


def named_database(name: str, server_url: str | None = None) -> str:
    """Return the URL of database ``name`` (created if missing, then migrated) on ``server_url``'s server.

    Default server: the project-local cluster, started if needed. Benchmark databases are kept so that a
    re-run does not load its data again.
    """
    server = make_url(server_url or LocalCluster.from_settings(Settings(database_url=None)).start())
    admin = make_engine(server.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate(engine, load_catalog())
    engine.dispose()
    return url
