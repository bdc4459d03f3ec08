"""The car-rental participant's HTTP and saga models: the rental, the operator upsert, the availability query and
answer.

Date rules live here once: a rental runs 1 to MAX_DAYS days (drop-off after pick-up) and holds each day from
pick-up up to, not including, drop-off; an upsert offers at most MAX_UPSERT_DAYS days (both ends included).
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from services.types import CapacityMap, Counters, Day, Frozen, Identifier, Label, Quantity

MAX_DAYS = 60
MAX_UPSERT_DAYS = 366


def days_between(first: date, end: date) -> list[date]:
    """The days from `first` up to, not including, `end` (a drop-off date)."""
    return [first + timedelta(days=i) for i in range((end - first).days)]


def check_rental(pick_up: date, drop_off: date) -> None:
    if drop_off <= pick_up:
        raise ValueError("drop_off must be after pick_up")
    if (drop_off - pick_up).days > MAX_DAYS:
        raise ValueError(f"a rental may not exceed {MAX_DAYS} days")


class CarRequest(Frozen):
    """Cars of one class at one depot for every day from pick_up up to, not including, drop_off."""

    depot_id: Identifier
    car_class: Identifier
    pick_up: Day
    drop_off: Day = Field(description=f"After pick_up, at most {MAX_DAYS} days later.")
    cars: Quantity

    # On the later field, not the model: a 422 then names it (`body.{field}.drop_off`, `query.drop_off`).
    @field_validator("drop_off")
    @classmethod
    def _rental(cls, drop_off: date, info: ValidationInfo) -> date:
        pick_up = info.data.get("pick_up")
        if isinstance(pick_up, date):
            check_rental(pick_up, drop_off)
        return drop_off

    def days(self) -> list[date]:
        return days_between(self.pick_up, self.drop_off)


class CarRentalQuery(Frozen):
    pick_up: Day = Field(description="First day of the rental, YYYY-MM-DD.")
    drop_off: Day = Field(description=f"Drop-off day, after pick_up (at most {MAX_DAYS} days).")

    # On the later field, not the model: a 422 then names it (`body.{field}.drop_off`, `query.drop_off`).
    @field_validator("drop_off")
    @classmethod
    def _rental(cls, drop_off: date, info: ValidationInfo) -> date:
        pick_up = info.data.get("pick_up")
        if isinstance(pick_up, date):
            check_rental(pick_up, drop_off)
        return drop_off


class DepotInventory(Frozen):
    """Create or change a depot: its city and, for every day from days_from to days_to (both included), the
    capacity of each car class named."""

    city: Label
    cars: CapacityMap = Field(description="Capacity per car class, per day.")
    days_from: Day
    days_to: Day = Field(
        description=f"The last day offered (inclusive): not before days_from, at most {MAX_UPSERT_DAYS} days in "
        "one upsert."
    )

    @field_validator("days_to")
    @classmethod
    def _days(cls, days_to: date, info: ValidationInfo) -> date:
        days_from = info.data.get("days_from")
        if isinstance(days_from, date):
            if days_to < days_from:
                raise ValueError("days_to must not be before days_from")
            if (days_to - days_from).days >= MAX_UPSERT_DAYS:
                raise ValueError(f"at most {MAX_UPSERT_DAYS} days per upsert")
        return days_to


class CarClassAvailability(BaseModel):
    available: int = Field(description="The least available over the days asked for.")
    days: dict[date, Counters]


class CarAvailability(BaseModel):
    depot_id: str
    car_classes: dict[str, CarClassAvailability]
