"""checkout.started: the checkout ids the API started a saga for (services/started_checkouts.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS checkout")
    op.create_table(
        "started",
        sa.Column("checkout_id", sa.Text, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema="checkout",
    )


def downgrade() -> None:
    op.drop_table("started", schema="checkout")
    op.execute("DROP SCHEMA IF EXISTS checkout")
