"""wallet: the travel-credit wallet's schema: accounts per (customer, currency) on the shared ledger tables, and
its refunds.

Must create exactly what services/wallet/models.py declares (tests/ledger/test_catalogue.py compares).
Self-contained on purpose: a revision is history and must not change when shared helpers do.

Revision ID: 0005_money_wallet
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_money_wallet"
# A branch of its own off the shared revisions, like every participant's (services/migrate.py upgrades "heads").
down_revision = "0002"
branch_labels = ("wallet",)
depends_on = None

SCHEMA = "wallet"
COUNTERS_CHECK = "held >= 0 AND sold >= 0 AND held + sold <= capacity"
STATUS_CHECK = "status IN ('ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'REJECTED')"


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")

    op.create_table(
        "inventory",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("resource", sa.Text, nullable=False, unique=True),
        sa.Column("capacity", sa.BigInteger, nullable=False),
        sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sold", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("unit_price", sa.BigInteger, nullable=True),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.UniqueConstraint("customer_id", "currency"),
        sa.CheckConstraint(COUNTERS_CHECK, name="counters_in_bounds"),
        schema=SCHEMA,
    )

    op.create_table(
        "holds",
        sa.Column("hold_key", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("reason", postgresql.JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint(STATUS_CHECK, name="known_status"),
        schema=SCHEMA,
    )
    op.create_index(
        "holds_active_expiry", "holds", ["expires_at"], schema=SCHEMA,
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )

    op.create_table(
        "hold_lines",
        sa.Column("hold_key", sa.Text, sa.ForeignKey(f"{SCHEMA}.holds.hold_key"), primary_key=True),
        sa.Column("inventory_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.inventory.id"), primary_key=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price", sa.BigInteger, nullable=True),
        sa.Column("currency", sa.Text, nullable=True),
        sa.CheckConstraint("quantity > 0", name="positive_quantity"),
        schema=SCHEMA,
    )
    op.create_index(f"ix_{SCHEMA}_hold_lines_inventory_id", "hold_lines", ["inventory_id"], schema=SCHEMA)

    op.create_table(
        "refunds",
        sa.Column("refund_key", sa.Text, primary_key=True),
        sa.Column("hold_key", sa.Text, sa.ForeignKey(f"{SCHEMA}.holds.hold_key"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount >= 0", name="refund_not_negative"),
        schema=SCHEMA,
    )
    op.create_index(f"ix_{SCHEMA}_refunds_hold_key", "refunds", ["hold_key"], schema=SCHEMA)


def downgrade() -> None:
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
