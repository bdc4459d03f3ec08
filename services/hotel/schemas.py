"""The hotel participant's HTTP and saga models: the stay, the operator upsert, the availability query and answer.

Date limits live here once (the rules themselves are services/dated.py's): a stay is 1 to MAX_NIGHTS nights
(check-out after check-in), an upsert offers at most MAX_UPSERT_NIGHTS nights (both ends included).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from services.dated import DatedRules, dates_between
from services.money import prices_rule
from services.types import CapacityMap, Counters, Currency, Day, Frozen, Identifier, Label, PriceMap, Quantity

MAX_NIGHTS = 60
MAX_UPSERT_NIGHTS = 366

# The limits and nouns of the date rules (services/dated.py), for this participant's messages.
RULES = DatedRules(unit="night", span="stay", kind="room type", max_span=MAX_NIGHTS, max_upsert=MAX_UPSERT_NIGHTS)


class HotelRequest(Frozen):
    """Rooms of one type in one hotel for every night from check_in up to, not including, check_out."""

    hotel_id: Identifier
    room_type: Identifier
    check_in: Day
    check_out: Day = Field(description=f"After check_in, at most {MAX_NIGHTS} nights later.")
    rooms: Quantity

    _stay = RULES.span_validator("check_in", "check_out")

    def nights(self) -> list[date]:
        return dates_between(self.check_in, self.check_out)


class StayQuery(Frozen):
    check_in: Day = Field(description="First night, YYYY-MM-DD.")
    check_out: Day = Field(description=f"Departure day, after check_in (at most {MAX_NIGHTS} nights).")

    _stay = RULES.span_validator("check_in", "check_out")


class HotelInventory(Frozen):
    """Create or change a hotel: its city and, for every night from nights_from to nights_to (both included),
    the capacity of each room type named."""

    city: Label
    rooms: CapacityMap = Field(description="Capacity per room type, per night.")
    nights_from: Day
    nights_to: Day = Field(
        description=f"The last night offered (inclusive): not before nights_from, at most {MAX_UPSERT_NIGHTS} "
        "nights in one upsert."
    )

    currency: Currency | None = Field(default=None, description="ISO 4217 code of `rates`.")
    rates: PriceMap | None = Field(
        default=None, description="Price of one room per night per room type named in `rooms`, in minor units of "
        "`currency`, for every night of this upsert; a room type not named keeps its rate."
    )

    _nights = RULES.range_validator("nights_from", "nights_to")
    _rates = prices_rule("rates", "rooms")


class RoomTypeAvailability(BaseModel):
    available: int = Field(description="The least available over the nights asked for.")
    nights: dict[date, Counters]


class HotelAvailability(BaseModel):
    hotel_id: str
    room_types: dict[str, RoomTypeAvailability]
