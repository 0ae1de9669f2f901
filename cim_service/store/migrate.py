"""Create or upgrade the schema: Alembic migrations for the service's own tables, then the catalog's layer tables.

Layer tables follow the catalog, which may change between releases: a new layer creates its table, a new
field adds its column. Nothing is ever dropped or retyped automatically; a declared type that differs
from the database is reported so an operator can migrate the data on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from cim_service.core.catalog import LAYER_SCHEMA, Catalog
from cim_service.store.schema import META_SCHEMA, layer_table

ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
#: advisory lock id serialising concurrent migrations (several workers or test sessions starting at once)
MIGRATION_LOCK = 7_310_112


class PostGISMissingError(RuntimeError):
    """The database has no PostGIS extension and it cannot be created."""


@dataclass
class MigrationReport:
    """What `migrate` changed."""

    created_tables: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    type_mismatches: list[str] = field(default_factory=list)


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


def sync_catalog(conn: Connection, catalog: Catalog) -> MigrationReport:
    """Create missing layer tables and columns; register every layer in ``layer_state``."""
    report = MigrationReport()
    insp = sa.inspect(conn)
    existing = set(insp.get_table_names(schema=LAYER_SCHEMA))
    md = sa.MetaData(schema=LAYER_SCHEMA)
    for spec in catalog:
        table = layer_table(spec, md)
        if spec.table not in existing:
            table.create(conn)
            report.created_tables.append(spec.table)
        else:
            have = {c["name"]: c for c in insp.get_columns(spec.table, schema=LAYER_SCHEMA)}
            for col in table.columns:
                if col.name not in have:
                    ddl = col.type.compile(dialect=conn.dialect)
                    conn.execute(sa.text(
                        f'ALTER TABLE {spec.qualified_table} ADD COLUMN IF NOT EXISTS "{col.name}" {ddl}'
                    ))
                    report.added_columns.append(f"{spec.table}.{col.name}")
                elif col.name not in ("geom", "geom_3857"):
                    want = col.type.compile(dialect=conn.dialect).lower()
                    got = str(have[col.name]["type"].compile(dialect=conn.dialect)).lower()
                    if _base(want) != _base(got):
                        report.type_mismatches.append(f"{spec.table}.{col.name}: declared {want}, database {got}")
        conn.execute(
            sa.text(
                f"INSERT INTO {META_SCHEMA}.layer_state (layer_id) VALUES (:id) ON CONFLICT (layer_id) DO NOTHING"
            ),
            {"id": spec.id},
        )
    return report


def _base(type_name: str) -> str:
    aliases = {"double precision": "float", "float": "float", "timestamp with time zone": "timestamptz",
               "datetime": "timestamptz"}
    name = type_name.split("(")[0].strip()
    return aliases.get(name, name)


def migrate(engine: Engine, catalog: Catalog) -> MigrationReport:
    """Bring the database to the current schema, in one transaction."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        ensure_postgis(conn)
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}"))
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {LAYER_SCHEMA}"))
        command.upgrade(alembic_config(conn), "head")
        return sync_catalog(conn, catalog)


def bump_layer_state(conn: Connection, layer_id: str, qualified_table: str) -> int:
    """Record that a layer changed: new version, count and extent; listeners are notified. Return the version."""
    row = conn.execute(
        sa.text(
            f"""
            WITH s AS (
              SELECT count(*) AS n, ST_Extent(geom) AS e FROM {qualified_table}
            )
            UPDATE {META_SCHEMA}.layer_state ls
               SET version = ls.version + 1, feature_count = s.n,
                   minx = ST_XMin(s.e), miny = ST_YMin(s.e), maxx = ST_XMax(s.e), maxy = ST_YMax(s.e),
                   updated_at = now()
              FROM s WHERE ls.layer_id = :id
            RETURNING ls.version
            """
        ),
        {"id": layer_id},
    ).first()
    if row is None:
        raise KeyError(f"layer {layer_id!r} is not registered in {META_SCHEMA}.layer_state; run `cim db migrate`")
    return int(row[0])
