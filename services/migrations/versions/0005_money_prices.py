"""Prices on the ledger tables of flight, hotel and orders: inventory.unit_price + currency, copied onto each
hold line when the hold is placed (services/ledger/tables.py declares them once, for every participant).

Self-contained on purpose: a revision is history and must not change when shared helpers do. The cars
participant gets the same columns on its own branch (services/cars/migrations/0005_money_cars.py).

Revision ID: 0005_money_prices
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_money_prices"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMAS = ("flight", "hotel", "orders")
PRICE_CHECK = "(unit_price IS NULL) = (currency IS NULL) AND (unit_price IS NULL OR unit_price >= 0)"


def add_prices(schema: str) -> None:
    op.add_column("inventory", sa.Column("unit_price", sa.BigInteger, nullable=True), schema=schema)
    op.add_column("inventory", sa.Column("currency", sa.Text, nullable=True), schema=schema)
    op.create_check_constraint("price_with_currency", "inventory", PRICE_CHECK, schema=schema)
    op.add_column("hold_lines", sa.Column("unit_price", sa.BigInteger, nullable=True), schema=schema)
    op.add_column("hold_lines", sa.Column("currency", sa.Text, nullable=True), schema=schema)


def drop_prices(schema: str) -> None:
    op.drop_column("hold_lines", "currency", schema=schema)
    op.drop_column("hold_lines", "unit_price", schema=schema)
    op.drop_constraint("price_with_currency", "inventory", schema=schema)
    op.drop_column("inventory", "currency", schema=schema)
    op.drop_column("inventory", "unit_price", schema=schema)


def upgrade() -> None:
    for schema in SCHEMAS:
        add_prices(schema)


def downgrade() -> None:
    for schema in SCHEMAS:
        drop_prices(schema)
