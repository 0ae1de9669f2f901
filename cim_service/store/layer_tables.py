"""Layer tables (schema ``cim``), built from the catalog: their SQLAlchemy definition and their sync on migrate.

Every layer table has the declared fields plus system columns:

- ``id``: stable feature id (identity), kept across re-ingests because loads upsert on ``feature_key``;
- ``feature_key``: the natural key (the layer's ``key`` fields) or a hash of geometry and attributes;
- ``geom``: WGS84 (EPSG:4326), and ``geom_3857``: a stored Web Mercator copy for fast tiles;
- ``outside_district``: the point lies outside the district outline (flagged, not dropped);
- ``batch_id`` and ``updated_at``: which ingest batch last wrote the row, and when.

Every source layer also gets its history table and triggers (``store.history``), created and extended here.

Layer tables follow the catalog, which may change between releases: a new layer creates its table, a new
field adds its column. Nothing is ever dropped or retyped automatically; a declared type that differs
from the database is reported so an operator can migrate the data on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from cim_service.core.catalog import LAYER_SCHEMA, Catalog, LayerSpec
from cim_service.core.fieldtypes import FieldType
from cim_service.store import history, layer_state


@dataclass
class MigrationReport:
    """What a migration changed."""

    created_tables: list[str] = field(default_factory=list)
    created_history: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    type_mismatches: list[str] = field(default_factory=list)


def column_type(ftype: FieldType) -> TypeEngine:
    """SQLAlchemy type of a field type's PostgreSQL column (read from the one field-type table)."""
    name = ftype.sql
    if name == "timestamp with time zone":
        return sa.DateTime(timezone=True)
    return ischema_names[name]()


def layer_table(spec: LayerSpec, md: sa.MetaData | None = None) -> sa.Table:
    """Build the SQLAlchemy table of a layer from its declaration."""
    md = md if md is not None else sa.MetaData(schema=LAYER_SCHEMA)
    if f"{LAYER_SCHEMA}.{spec.table}" in md.tables:
        return md.tables[f"{LAYER_SCHEMA}.{spec.table}"]
    columns = [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("feature_key", sa.Text, nullable=False, unique=True),
    ]
    for f in spec.fields:
        columns.append(sa.Column(f.name, column_type(f.type), nullable=True))
    columns += [
        sa.Column("geom", Geometry(spec.geometry.value, srid=4326, spatial_index=False), nullable=False),
        sa.Column(
            "geom_3857",
            Geometry(spec.geometry.value, srid=3857, spatial_index=False),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
        ),
        sa.Column("outside_district", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("batch_id", sa.BigInteger),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]
    table = sa.Table(spec.table, md, *columns)
    sa.Index(f"ix_{spec.table}_geom", table.c.geom, postgresql_using="gist")
    sa.Index(f"ix_{spec.table}_geom_3857", table.c.geom_3857, postgresql_using="gist")
    if spec.time_field:
        sa.Index(f"ix_{spec.table}_{spec.time_field}", table.c[spec.time_field])
    return table


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
            _sync_history(conn, spec, table, report)
            continue
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
        _sync_history(conn, spec, table, report)
    layer_state.register(conn, [spec.id for spec in catalog])
    return report


def _sync_history(conn: Connection, spec: LayerSpec, table: sa.Table, report: MigrationReport) -> None:
    """The layer's history table and its triggers (``store.history``), after the table's own columns."""
    if history.sync(conn, spec, table):
        report.created_history.append(spec.table)


def _base(type_name: str) -> str:
    aliases = {"double precision": "float", "float": "float", "timestamp with time zone": "timestamptz",
               "datetime": "timestamptz"}
    name = type_name.split("(")[0].strip()
    return aliases.get(name, name)


def feature_count(conn: Connection, spec: LayerSpec) -> int:
    """Rows in the layer's table (an exact count)."""
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {spec.qualified_table}")).scalar_one())


def is_empty(conn: Connection, spec: LayerSpec) -> bool:
    """Tell whether the layer's table has no row."""
    return not conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {spec.qualified_table})")).scalar()


def etag_sql(alias: str = "") -> str:
    """SQL expression of a layer row's entity tag (its id and last write time, quoted), for reads and edits.

    ``updated_at`` changes with every write of the row (ingest, edit), so the tag names one version of the
    feature; history rows carry the same columns, so a version read ``at`` an instant has the tag it had then.
    """
    a = f'{alias}.' if alias else ""
    return (f"'\"' || left(md5({a}\"id\"::text || ':' || extract(epoch FROM {a}\"updated_at\")::text), 20) "
            "|| '\"'")
