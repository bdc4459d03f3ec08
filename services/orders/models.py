"""The orders schema: one inventory row per sku (its stock)."""

from __future__ import annotations

from sqlalchemy import MetaData, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.ledger.tables import HoldLineRow, HoldRow, InventoryRow, inventory_constraints

SCHEMA = "orders"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Inventory(InventoryRow, Base):
    __tablename__ = "inventory"
    __table_args__ = inventory_constraints()

    sku: Mapped[str] = mapped_column(Text, unique=True)


class Hold(HoldRow, Base):
    pass


class HoldLine(HoldLineRow, Base):
    pass
