"""The hotel participant's HTTP and saga models: the stay, the operator upsert, the availability query and answer.

Date rules live here once: a stay is 1 to MAX_NIGHTS nights (check-out after check-in), an upsert offers at most
MAX_UPSERT_NIGHTS nights (both ends included).
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from services.types import CapacityMap, Counters, Day, Frozen, Identifier, Label, Quantity

MAX_NIGHTS = 60
MAX_UPSERT_NIGHTS = 366


def nights_between(first: date, end: date) -> list[date]:
    """The nights from `first` up to, not including, `end` (a check-out date)."""
    return [first + timedelta(days=i) for i in range((end - first).days)]


def check_stay(check_in: date, check_out: date) -> None:
    if check_out <= check_in:
        raise ValueError("check_out must be after check_in")
    if (check_out - check_in).days > MAX_NIGHTS:
        raise ValueError(f"a stay may not exceed {MAX_NIGHTS} nights")


class HotelRequest(Frozen):
    """Rooms of one type in one hotel for every night from check_in up to, not including, check_out."""

    hotel_id: Identifier
    room_type: Identifier
    check_in: Day
    check_out: Day = Field(description=f"After check_in, at most {MAX_NIGHTS} nights later.")
    rooms: Quantity

    # On the later field, not the model: a 422 then names it (`body.{field}.check_out`, `query.check_out`).
    @field_validator("check_out")
    @classmethod
    def _stay(cls, check_out: date, info: ValidationInfo) -> date:
        check_in = info.data.get("check_in")
        if isinstance(check_in, date):
            check_stay(check_in, check_out)
        return check_out

    def nights(self) -> list[date]:
        return nights_between(self.check_in, self.check_out)


class StayQuery(Frozen):
    check_in: Day = Field(description="First night, YYYY-MM-DD.")
    check_out: Day = Field(description=f"Departure day, after check_in (at most {MAX_NIGHTS} nights).")

    # On the later field, not the model: a 422 then names it (`body.{field}.check_out`, `query.check_out`).
    @field_validator("check_out")
    @classmethod
    def _stay(cls, check_out: date, info: ValidationInfo) -> date:
        check_in = info.data.get("check_in")
        if isinstance(check_in, date):
            check_stay(check_in, check_out)
        return check_out


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

    @field_validator("nights_to")
    @classmethod
    def _nights(cls, nights_to: date, info: ValidationInfo) -> date:
        nights_from = info.data.get("nights_from")
        if isinstance(nights_from, date):
            if nights_to < nights_from:
                raise ValueError("nights_to must not be before nights_from")
            if (nights_to - nights_from).days >= MAX_UPSERT_NIGHTS:
                raise ValueError(f"at most {MAX_UPSERT_NIGHTS} nights per upsert")
        return nights_to


class RoomTypeAvailability(BaseModel):
    available: int = Field(description="The least available over the nights asked for.")
    nights: dict[date, Counters]


class HotelAvailability(BaseModel):
    hotel_id: str
    room_types: dict[str, RoomTypeAvailability]
