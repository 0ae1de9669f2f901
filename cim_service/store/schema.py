"""Database models: the service's own tables (schema ``cim_meta``) and the layer tables built from the catalog.

Layer tables (schema ``cim``) have the declared fields plus system columns:

- ``id``: stable feature id (identity), kept across re-ingests because loads upsert on ``feature_key``;
- ``feature_key``: the natural key (the layer's ``key`` fields) or a hash of geometry and attributes;
- ``geom``: WGS84 (EPSG:4326), and ``geom_3857``: a stored Web Mercator copy for fast tiles;
- ``outside_district``: the point lies outside the Minhang outline (flagged, not dropped);
- ``batch_id`` and ``updated_at``: which ingest batch last wrote the row, and when.
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

from cim_service.core.catalog import LAYER_SCHEMA, Catalog, FieldType, LayerSpec

META_SCHEMA = "cim_meta"
metadata = sa.MetaData(schema=META_SCHEMA)

ingest_batch = sa.Table(
    "ingest_batch",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("file_sha256", sa.Text, nullable=False),
    sa.Column("source_crs", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # running | committed | failed | unchanged
    sa.Column("rows_read", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_duplicate", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_outside", sa.Integer, nullable=False, server_default="0"),
    sa.Column("options", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Index("ix_ingest_batch_layer_hash", "layer_id", "file_sha256"),
)

ingest_reject = sa.Table(
    "ingest_reject",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey(f"{META_SCHEMA}.ingest_batch.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("row_number", sa.Integer),
    sa.Column("field", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", JSONB),
    sa.Index("ix_ingest_reject_batch", "batch_id"),
)

layer_state = sa.Table(
    "layer_state",
    metadata,
    sa.Column("layer_id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("feature_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("minx", sa.Float), sa.Column("miny", sa.Float), sa.Column("maxx", sa.Float), sa.Column("maxy", sa.Float),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("key_prefix", sa.Text, nullable=False),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),  # sha256 hex of the whole key
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

access_log = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("principal", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("fields", sa.ARRAY(sa.Text)),
    sa.Column("detail", JSONB),
    sa.Column("client", sa.Text),
    sa.Index("ix_access_log_at", "at"),
)

_SA_TYPES = {
    FieldType.text: sa.Text,
    FieldType.integer: sa.Integer,
    FieldType.bigint: sa.BigInteger,
    FieldType.float: sa.Float,
    FieldType.boolean: sa.Boolean,
    FieldType.date: sa.Date,
    FieldType.timestamp: lambda: sa.DateTime(timezone=True),
    FieldType.json: JSONB,
}

layer_metadata = sa.MetaData(schema=LAYER_SCHEMA)


def layer_table(spec: LayerSpec, md: sa.MetaData | None = None) -> sa.Table:
    """Build the SQLAlchemy table of a layer from its declaration."""
    md = md if md is not None else sa.MetaData(schema=LAYER_SCHEMA)
    if spec.table in md.tables or f"{LAYER_SCHEMA}.{spec.table}" in md.tables:
        return md.tables[f"{LAYER_SCHEMA}.{spec.table}"]
    columns = [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("feature_key", sa.Text, nullable=False, unique=True),
    ]
    for f in spec.fields:
        columns.append(sa.Column(f.name, _SA_TYPES[f.type](), nullable=True))
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


def catalog_metadata(catalog: Catalog) -> sa.MetaData:
    """Metadata holding every layer table of the catalog."""
    md = sa.MetaData(schema=LAYER_SCHEMA)
    for spec in catalog:
        layer_table(spec, md)
    return md
