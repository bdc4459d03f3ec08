"""The three ledger tables every service schema has: inventory, holds, hold_lines.

Each service declares its own DeclarativeBase whose MetaData carries the service's schema, and subclasses
these mixins, adding its natural-key columns (flight_id + seat_class, hotel_id + room_type + night, sku).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, Index, Integer, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

# The invariant a single row can check on its own; the audit checks the rest (held/sold vs. hold lines).
COUNTERS_CHECK = "held >= 0 AND sold >= 0 AND held + sold <= capacity"
# A price is never negative and never without its currency (nor a currency without a price).
PRICE_CHECK = "(unit_price IS NULL) = (currency IS NULL) AND (unit_price IS NULL OR unit_price >= 0)"
HOLD_STATUSES = ("ACTIVE", "CONFIRMED", "RELEASED", "EXPIRED", "REJECTED", "RETURNED")


class InventoryRow:
    """One sellable row with its counters. `resource` is the row's human-readable name, stored (it never
    changes) so that the generic ledger can name rows in errors, hold lines and cache updates."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    resource: Mapped[str] = mapped_column(Text, unique=True)
    capacity: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sold: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The unit price (minor units) and its ISO 4217 currency, both or neither; a hold line copies them when placed.
    unit_price: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Text)


def inventory_constraints(*extra: Any) -> tuple[Any, ...]:
    """__table_args__ for an inventory table: the counters and price CHECKs plus the service's own constraints."""
    return (
        CheckConstraint(COUNTERS_CHECK, name="counters_in_bounds"),
        CheckConstraint(PRICE_CHECK, name="price_with_currency"),
        *extra,
    )


class HoldRow:
    """One hold key and its single outcome. `reason` records why a REJECTED hold was refused, so that a
    duplicate delivery raises the same error again."""

    __tablename__ = "holds"

    hold_key: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        statuses = ", ".join(f"'{s}'" for s in HOLD_STATUSES)
        return (
            CheckConstraint(f"status IN ({statuses})", name="known_status"),
            # The sweeper only ever looks at ACTIVE holds by expiry.
            Index("holds_active_expiry", "expires_at", postgresql_where=text("status = 'ACTIVE'")),
        )


class HoldLineRow:
    """How much of one inventory row a hold takes."""

    __tablename__ = "hold_lines"

    @declared_attr
    def hold_key(cls) -> Mapped[str]:
        schema = cls.metadata.schema  # type: ignore[attr-defined]
        return mapped_column(Text, ForeignKey(f"{schema}.holds.hold_key"), primary_key=True)

    @declared_attr
    def inventory_id(cls) -> Mapped[int]:
        schema = cls.metadata.schema  # type: ignore[attr-defined]
        return mapped_column(BigInteger, ForeignKey(f"{schema}.inventory.id"), primary_key=True, index=True)

    quantity: Mapped[int] = mapped_column(Integer)
    # The row's price when the hold was placed: the checkout keeps it whatever the operator changes later.
    unit_price: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Text)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (CheckConstraint("quantity > 0", name="positive_quantity"),)
