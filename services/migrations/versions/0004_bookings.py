"""checkout.bookings: every checkout's record (services/bookings/records.py); RETURNED, a sold hold given back, in
every participant's hold ledger (services/ledger/ledger.py `give_back`).

Revision ID: 0004_bookings
Revises: 0003 (and after 0003_cars: its holds table gains RETURNED too)
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_bookings"
down_revision = "0003"
branch_labels = None
# Every participant schema with a hold ledger must exist first: its status check is widened here.
depends_on = ("0003_cars",)

# The statuses as written here, not imported: a revision is history and must not change when the code does.
OLD_STATUSES = "status IN ('ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'REJECTED')"
NEW_STATUSES = "status IN ('ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'REJECTED', 'RETURNED')"
# Each schema whose `holds` table carries the known_status check (the participants' ledgers).
LEDGER_SCHEMAS = """SELECT n.nspname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace WHERE c.conname = 'known_status' AND t.relname = 'holds'"""


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("checkout_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("view", postgresql.JSONB, nullable=False),
        sa.Column("request", postgresql.JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema="checkout",
    )
    # Keyset paging, newest first: a customer's records, and everyone's (the operator's list).
    op.create_index("bookings_by_customer", "bookings", ["customer_id", "created_at", "checkout_id"],
                    schema="checkout")
    op.create_index("bookings_by_created", "bookings", ["created_at", "checkout_id"], schema="checkout")
    _statuses(NEW_STATUSES)


def downgrade() -> None:
    _statuses(OLD_STATUSES)
    op.drop_table("bookings", schema="checkout")


def _statuses(check: str) -> None:
    for (schema,) in op.get_bind().execute(sa.text(LEDGER_SCHEMAS)).all():
        op.execute(f'ALTER TABLE "{schema}".holds DROP CONSTRAINT known_status')
        op.execute(f'ALTER TABLE "{schema}".holds ADD CONSTRAINT known_status CHECK ({check})')
