"""cars: the car-rental participant's schema: depots, inventory per (depot, car class, day), and its hold ledger.

Must create exactly what services/cars/models.py declares (tests/ledger/test_catalogue.py compares). Self-contained
on purpose: a revision is history and must not change when shared helpers do.

Revision ID: 0003_cars
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_cars"
# A branch of its own off the shared revisions (services/migrate.py upgrades to "heads"): a participant's
# migrations never wait for, or reorder, another's.
down_revision = "0002"
branch_labels = ("cars",)
depends_on = None

SCHEMA = "cars"
COUNTERS_CHECK = "held >= 0 AND sold >= 0 AND held + sold <= capacity"
STATUS_CHECK = "status IN ('ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'REJECTED')"


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")

    op.create_table(
        "depots",
        sa.Column("depot_id", sa.Text, primary_key=True),
        sa.Column("city", sa.Text, nullable=False),
        schema=SCHEMA,
    )
    op.create_index(f"ix_{SCHEMA}_depots_city", "depots", ["city"], schema=SCHEMA)

    op.create_table(
        "inventory",
        sa.Column("depot_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.depots.depot_id"), nullable=False),
        sa.Column("car_class", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("resource", sa.Text, nullable=False, unique=True),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("held", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.UniqueConstraint("depot_id", "car_class", "day"),
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
        sa.CheckConstraint(STATUS_CHECK, name="known_status"),
        schema=SCHEMA,
    )
    # The sweeper only ever looks at ACTIVE holds by expiry.
    op.create_index(
        "holds_active_expiry", "holds", ["expires_at"], schema=SCHEMA,
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )

    op.create_table(
        "hold_lines",
        sa.Column("hold_key", sa.Text, sa.ForeignKey(f"{SCHEMA}.holds.hold_key"), primary_key=True),
        sa.Column("inventory_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.inventory.id"), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.CheckConstraint("quantity > 0", name="positive_quantity"),
        schema=SCHEMA,
    )
    op.create_index(f"ix_{SCHEMA}_hold_lines_inventory_id", "hold_lines", ["inventory_id"], schema=SCHEMA)


def downgrade() -> None:
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
