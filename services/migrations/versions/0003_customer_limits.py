"""checkout.customers, checkout.claims, checkout.claim_rows: per-customer hold limits (services/customer_limits.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.Text, primary_key=True),
        schema="checkout",
    )
    op.create_table(
        "claims",
        sa.Column("checkout_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, sa.ForeignKey("checkout.customers.customer_id"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema="checkout",
    )
    op.create_index("claims_by_customer", "claims", ["customer_id"], schema="checkout")
    op.create_index("claims_by_expiry", "claims", ["expires_at"], schema="checkout")
    op.create_table(
        "claim_rows",
        sa.Column("checkout_id", sa.Text, sa.ForeignKey("checkout.claims.checkout_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("resource", sa.Text, primary_key=True),
        sa.Column("units", sa.Integer, nullable=False),
        schema="checkout",
    )


def downgrade() -> None:
    op.drop_table("claim_rows", schema="checkout")
    op.drop_table("claims", schema="checkout")
    op.drop_table("customers", schema="checkout")
