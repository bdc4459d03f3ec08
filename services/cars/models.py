"""The cars schema: depots with their city and one inventory row per (depot, car class, day).

services/cars/migrations/0003_cars.py creates exactly these tables (tests/ledger/test_catalogue.py compares).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey, MetaData, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.ledger.tables import HoldLineRow, HoldRow, InventoryRow, inventory_constraints

SCHEMA = "cars"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Depot(Base):
    __tablename__ = "depots"

    depot_id: Mapped[str] = mapped_column(Text, primary_key=True)
    city: Mapped[str] = mapped_column(Text, index=True)


class Inventory(InventoryRow, Base):
    __tablename__ = "inventory"
    __table_args__ = inventory_constraints(UniqueConstraint("depot_id", "car_class", "day"))

    depot_id: Mapped[str] = mapped_column(Text, ForeignKey(f"{SCHEMA}.depots.depot_id"))
    car_class: Mapped[str] = mapped_column(Text)
    day: Mapped[date] = mapped_column(Date)


class Hold(HoldRow, Base):
    pass


class HoldLine(HoldLineRow, Base):
    pass
