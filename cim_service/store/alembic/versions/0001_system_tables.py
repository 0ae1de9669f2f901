"""System tables: ingest batches and rejects, layer state, API keys, access log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "cim_meta"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE SCHEMA IF NOT EXISTS cim")
    op.create_table(
        "ingest_batch",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("file_sha256", sa.Text, nullable=False),
        sa.Column("source_crs", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
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
        schema=S,
    )
    op.create_index("ix_ingest_batch_layer_hash", "ingest_batch", ["layer_id", "file_sha256"], schema=S)
    op.create_table(
        "ingest_reject",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("batch_id", sa.BigInteger, sa.ForeignKey(f"{S}.ingest_batch.id", ondelete="CASCADE"), nullable=False),
        sa.Column("row_number", sa.Integer),
        sa.Column("field", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", JSONB),
        schema=S,
    )
    op.create_index("ix_ingest_reject_batch", "ingest_reject", ["batch_id"], schema=S)
    op.create_table(
        "layer_state",
        sa.Column("layer_id", sa.Text, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("feature_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("minx", sa.Float),
        sa.Column("miny", sa.Float),
        sa.Column("maxx", sa.Float),
        sa.Column("maxy", sa.Float),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("key_prefix", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        schema=S,
    )
    op.create_table(
        "access_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("fields", sa.ARRAY(sa.Text)),
        sa.Column("detail", JSONB),
        sa.Column("client", sa.Text),
        schema=S,
    )
    op.create_index("ix_access_log_at", "access_log", ["at"], schema=S)
    # a layer change notifies listeners (tile caches, indicator engine) of the new version
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION {S}.notify_layer_state() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('cim_layer_changed', NEW.layer_id || ':' || NEW.version);
          RETURN NEW;
        END $$;
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER layer_state_notify AFTER INSERT OR UPDATE ON {S}.layer_state
        FOR EACH ROW EXECUTE FUNCTION {S}.notify_layer_state();
        """
    )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS layer_state_notify ON {S}.layer_state")
    op.execute(f"DROP FUNCTION IF EXISTS {S}.notify_layer_state()")
    for table in ["access_log", "api_key", "layer_state", "ingest_reject", "ingest_batch"]:
        op.drop_table(table, schema=S)
