"""Indicator engine results: one row per computed indicator, gap layer or suggestion set.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "cim_meta"


def upgrade() -> None:
    # key: 'indicator:<id>', 'layer:<derived layer id>' or 'suggest:<kind>'; inputs: {layer_id: version}
    op.create_table(
        "indicator_result",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("inputs", JSONB, nullable=False),
        sa.Column("params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("result", JSONB, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("indicator_result", schema=S)
