"""The flight schema: a catalogue of flights and one inventory row per (flight, seat class)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, MetaData, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.ledger.tables import HoldLineRow, HoldRow, InventoryRow, inventory_constraints

SCHEMA = "flight"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Flight(Base):
    __tablename__ = "flights"
    __table_args__ = (Index("flights_route_departure", "origin", "destination", "departs_at"),)

    flight_id: Mapped[str] = mapped_column(Text, primary_key=True)
    origin: Mapped[str] = mapped_column(Text)
    destination: Mapped[str] = mapped_column(Text)
    departs_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Inventory(InventoryRow, Base):
    __tablename__ = "inventory"
    __table_args__ = inventory_constraints(UniqueConstraint("flight_id", "seat_class"))

    flight_id: Mapped[str] = mapped_column(Text, ForeignKey(f"{SCHEMA}.flights.flight_id"))
    seat_class: Mapped[str] = mapped_column(Text)


class Hold(HoldRow, Base):
    pass


class HoldLine(HoldLineRow, Base):
    pass
