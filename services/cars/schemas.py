"""The car-rental participant's HTTP and saga models: the rental, the operator upsert, the availability query and
answer.

Date limits live here once (the rules themselves are services/dated.py's): a rental runs 1 to MAX_DAYS days
(drop-off after pick-up) and holds each day from pick-up up to, not including, drop-off; an upsert offers at most
MAX_UPSERT_DAYS days (both ends included).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from services.dated import DatedRules, dates_between
from services.money import prices_rule
from services.types import CapacityMap, Counters, Currency, Day, Frozen, Identifier, Label, PriceMap, Quantity

MAX_DAYS = 60
MAX_UPSERT_DAYS = 366

# The limits and nouns of the date rules (services/dated.py), for this participant's messages.
RULES = DatedRules(unit="day", span="rental", kind="car class", max_span=MAX_DAYS, max_upsert=MAX_UPSERT_DAYS)


class CarRequest(Frozen):
    """Cars of one class at one depot for every day from pick_up up to, not including, drop_off."""

    depot_id: Identifier
    car_class: Identifier
    pick_up: Day
    drop_off: Day = Field(description=f"After pick_up, at most {MAX_DAYS} days later.")
    cars: Quantity

    _rental = RULES.span_validator("pick_up", "drop_off")

    def days(self) -> list[date]:
        return dates_between(self.pick_up, self.drop_off)


class CarRentalQuery(Frozen):
    pick_up: Day = Field(description="First day of the rental, YYYY-MM-DD.")
    drop_off: Day = Field(description=f"Drop-off day, after pick_up (at most {MAX_DAYS} days).")

    _rental = RULES.span_validator("pick_up", "drop_off")


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

    currency: Currency | None = Field(default=None, description="ISO 4217 code of `rates`.")
    rates: PriceMap | None = Field(
        default=None, description="Price of one car per day per car class named in `cars`, in minor units of "
        "`currency`, for every day of this upsert; a car class not named keeps its rate."
    )

    _days = RULES.range_validator("days_from", "days_to")
    _rates = prices_rule("rates", "cars")


class CarClassAvailability(BaseModel):
    available: int = Field(description="The least available over the days asked for.")
    days: dict[date, Counters]


class CarAvailability(BaseModel):
    depot_id: str
    car_classes: dict[str, CarClassAvailability]
