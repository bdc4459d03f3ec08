"""checkout.events, checkout.event_counter, checkout.webhook_endpoints, checkout.webhook_deliveries: the outbox and
its webhook delivery state (services/events/).

Revision ID: 0004_events
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_events"
down_revision = "0004_bookings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key", sa.Text, nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("checkout_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("part", sa.Text),
        sa.Column("data", postgresql.JSONB, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("clock_timestamp()")),
        schema="checkout",
    )
    op.create_index("events_by_checkout", "events", ["checkout_id", "id"], schema="checkout")
    op.create_table(
        "event_counter",
        sa.Column("one", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("last_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("one", name="single_row"),
        schema="checkout",
    )
    op.execute("INSERT INTO checkout.event_counter (one, last_id) VALUES (true, 0)")
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("url", sa.Text, nullable=False, unique=True),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema="checkout",
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("endpoint_id", sa.Integer, sa.ForeignKey("checkout.webhook_endpoints.id"), primary_key=True),
        sa.Column("event_id", sa.BigInteger, sa.ForeignKey("checkout.events.id"), primary_key=True),
        sa.Column("checkout_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="PENDING"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("leased_until", sa.DateTime(timezone=True)),
        sa.Column("lease_owner", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("parked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("state IN ('PENDING', 'PARKED')", name="known_state"),
        schema="checkout",
    )
    op.create_index("deliveries_by_checkout", "webhook_deliveries", ["endpoint_id", "checkout_id", "event_id"],
                    schema="checkout")
    op.create_index("deliveries_due", "webhook_deliveries", ["endpoint_id", "next_attempt_at"], schema="checkout",
                    postgresql_where=sa.text("state = 'PENDING'"))


def downgrade() -> None:
    op.drop_table("webhook_deliveries", schema="checkout")
    op.drop_table("webhook_endpoints", schema="checkout")
    op.drop_table("event_counter", schema="checkout")
    op.drop_table("events", schema="checkout")
