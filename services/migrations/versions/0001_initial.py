"""The three service schemas (flight, hotel, orders) with their catalogues and hold ledgers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COUNTERS_CHECK = "held >= 0 AND sold >= 0 AND held + sold <= capacity"
STATUS_CHECK = "status IN ('ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'REJECTED')"


def ledger_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("resource", sa.Text, nullable=False, unique=True),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("held", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    ]


def create_holds(schema: str) -> None:
    """holds and hold_lines: identical in every schema (see services.ledger.tables)."""
    op.create_table(
        "holds",
        sa.Column("hold_key", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("reason", postgresql.JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(STATUS_CHECK, name="known_status"),
        schema=schema,
    )
    op.create_index(
        "holds_active_expiry", "holds", ["expires_at"], schema=schema,
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.create_table(
        "hold_lines",
        sa.Column("hold_key", sa.Text, sa.ForeignKey(f"{schema}.holds.hold_key"), primary_key=True),
        sa.Column("inventory_id", sa.BigInteger, sa.ForeignKey(f"{schema}.inventory.id"), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.CheckConstraint("quantity > 0", name="positive_quantity"),
        schema=schema,
    )
    op.create_index(f"ix_{schema}_hold_lines_inventory_id", "hold_lines", ["inventory_id"], schema=schema)


def upgrade() -> None:
    for schema in ("flight", "hotel", "orders"):
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    op.create_table(
        "flights",
        sa.Column("flight_id", sa.Text, primary_key=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("departs_at", sa.DateTime(timezone=True), nullable=False),
        schema="flight",
    )
    op.create_index("flights_route_departure", "flights", ["origin", "destination", "departs_at"], schema="flight")
    op.create_table(
        "inventory",
        sa.Column("flight_id", sa.Text, sa.ForeignKey("flight.flights.flight_id"), nullable=False),
        sa.Column("seat_class", sa.Text, nullable=False),
        *ledger_columns(),
        sa.UniqueConstraint("flight_id", "seat_class"),
        sa.CheckConstraint(COUNTERS_CHECK, name="counters_in_bounds"),
        schema="flight",
    )
    create_holds("flight")

    op.create_table(
        "hotels",
        sa.Column("hotel_id", sa.Text, primary_key=True),
        sa.Column("city", sa.Text, nullable=False),
        schema="hotel",
    )
    op.create_index("ix_hotel_hotels_city", "hotels", ["city"], schema="hotel")
    op.create_table(
        "inventory",
        sa.Column("hotel_id", sa.Text, sa.ForeignKey("hotel.hotels.hotel_id"), nullable=False),
        sa.Column("room_type", sa.Text, nullable=False),
        sa.Column("night", sa.Date, nullable=False),
        *ledger_columns(),
        sa.UniqueConstraint("hotel_id", "room_type", "night"),
        sa.CheckConstraint(COUNTERS_CHECK, name="counters_in_bounds"),
        schema="hotel",
    )
    create_holds("hotel")

    op.create_table(
        "inventory",
        sa.Column("sku", sa.Text, nullable=False, unique=True),
        *ledger_columns(),
        sa.CheckConstraint(COUNTERS_CHECK, name="counters_in_bounds"),
        schema="orders",
    )
    create_holds("orders")


def downgrade() -> None:
    for schema in ("orders", "hotel", "flight"):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
