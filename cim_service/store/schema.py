"""The one schema definition of the service's own tables (schema ``cim_meta``), as SQLAlchemy metadata.

The Alembic migrations (``store/alembic/versions``) create these tables step by step; a test runs Alembic's
autogenerate comparison between a migrated database and :data:`metadata` and requires no difference, so a
column added here without a migration (or the reverse) fails the suite. Each table has one owner module in
``cim_service.store`` holding every statement on it:

| table | owner |
|---|---|
| ``ingest_batch`` | ``store.batches`` |
| ``ingest_reject`` | ``store.rejects`` |
| ``layer_state`` | ``store.layer_state`` |
| ``api_key`` | ``store.api_keys`` |
| ``access_log`` | ``store.access_log`` |
| ``indicator_result`` | ``store.indicator_results`` |
| ``history_purge`` | ``store.history`` |

Layer tables (schema ``cim``) follow the catalog: see ``store.layer_tables``; their history tables (schema
``cim_hist``) too: see ``store.history``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

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

indicator_result = sa.Table(
    "indicator_result",
    metadata,
    # key: 'indicator:<id>' or 'derived:<output>'; inputs: {layer_id: version} the result was computed from
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("inputs", JSONB, nullable=False),
    sa.Column("params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("result", JSONB, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"),
)

history_purge = sa.Table(
    "history_purge",
    metadata,
    # one row per layer and purge: versions that ended before ``before`` were deleted; history begins there
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("before", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rows_deleted", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_history_purge_layer", "layer_id"),
)
