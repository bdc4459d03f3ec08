"""The hotel schema: hotels with their city and one inventory row per (hotel, room type, night)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey, MetaData, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.ledger.tables import HoldLineRow, HoldRow, InventoryRow, inventory_constraints

SCHEMA = "hotel"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Hotel(Base):
    __tablename__ = "hotels"

    hotel_id: Mapped[str] = mapped_column(Text, primary_key=True)
    city: Mapped[str] = mapped_column(Text, index=True)


class Inventory(InventoryRow, Base):
    __tablename__ = "inventory"
    __table_args__ = inventory_constraints(UniqueConstraint("hotel_id", "room_type", "night"))

    hotel_id: Mapped[str] = mapped_column(Text, ForeignKey(f"{SCHEMA}.hotels.hotel_id"))
    room_type: Mapped[str] = mapped_column(Text)
    night: Mapped[date] = mapped_column(Date)


class Hold(HoldRow, Base):
    pass


class HoldLine(HoldLineRow, Base):
    pass
