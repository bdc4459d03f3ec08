"""The wallet schema: one account per (customer, currency) on the shared ledger tables.

An account is a ledger row whose units are minor units of its currency: `capacity` is the balance, `held` what is
authorized, `sold` what is captured (so balance = available + authorized + captured, the row's CHECK). A hold is an
authorization (one line: the amount), its confirm the capture, its release the void. `holds.refunded` and the
`refunds` table (one row per refund key) record what was given back of a capture.

services/wallet/migrations/0005_money_wallet.py creates exactly these tables (tests/ledger/test_catalogue.py compares).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, MetaData, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.ledger.tables import COUNTERS_CHECK, HoldLineRow, HoldRow, InventoryRow

SCHEMA = "wallet"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Inventory(InventoryRow, Base):
    """One account. Amounts are minor units, so the counters are 64-bit here."""

    __tablename__ = "inventory"
    __table_args__ = (
        CheckConstraint(COUNTERS_CHECK, name="counters_in_bounds"),
        UniqueConstraint("customer_id", "currency"),
    )

    capacity: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    sold: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    customer_id: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)


class Hold(HoldRow, Base):
    # What was refunded of this hold's capture, in all (the sum of its `refunds` rows).
    refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class HoldLine(HoldLineRow, Base):
    quantity: Mapped[int] = mapped_column(BigInteger)


class Refund(Base):
    """One refund of a capture, by its key: a duplicate delivery finds it and changes nothing."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount >= 0", name="refund_not_negative"),)

    refund_key: Mapped[str] = mapped_column(Text, primary_key=True)
    hold_key: Mapped[str] = mapped_column(Text, ForeignKey(f"{SCHEMA}.holds.hold_key"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
