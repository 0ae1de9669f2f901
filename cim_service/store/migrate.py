"""Create or upgrade the schema: Alembic migrations for the service's own tables (``store.schema``), then the
catalog's layer tables (``store.layer_tables``), in one transaction.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from cim_service.core.catalog import LAYER_SCHEMA, Catalog
from cim_service.store.layer_tables import MigrationReport, sync_catalog
from cim_service.store.schema import META_SCHEMA

ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
#: advisory lock id serialising concurrent migrations (several workers or test sessions starting at once)
MIGRATION_LOCK = 7_310_112


class PostGISMissingError(RuntimeError):
    """The database has no PostGIS extension and it cannot be created."""


def alembic_config(connection: Connection) -> Config:
    """Alembic configuration bound to ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def ensure_postgis(conn: Connection) -> None:
    """Create the PostGIS extension, or fail with what to install."""
    available = conn.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
    ).scalar_one()
    if not available:
        major = conn.execute(sa.text("SHOW server_version_num")).scalar_one()[:2]
        raise PostGISMissingError(
            f"PostGIS is not installed on this PostgreSQL server: install it with "
            f"`apt-get install -y postgresql-{major}-postgis-3` (Debian/Ubuntu) and run `cim db migrate` again"
        )
    conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))


def migrate(engine: Engine, catalog: Catalog) -> MigrationReport:
    """Bring the database to the current schema, in one transaction."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        ensure_postgis(conn)
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}"))
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {LAYER_SCHEMA}"))
        command.upgrade(alembic_config(conn), "head")
        return sync_catalog(conn, catalog)
