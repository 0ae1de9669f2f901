"""Feature history: the purge log (the history tables themselves follow the catalog, see store.history).

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = "cim_meta"


def upgrade() -> None:
    op.create_table(
        "history_purge",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows_deleted", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_index("ix_history_purge_layer", "history_purge", ["layer_id"], schema=S)


def downgrade() -> None:
    op.drop_index("ix_history_purge_layer", "history_purge", schema=S)
    op.drop_table("history_purge", schema=S)
