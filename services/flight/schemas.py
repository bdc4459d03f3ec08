"""The flight participant's HTTP and saga models: the checkout part, the operator upsert, availability."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.money import prices_rule
from services.types import CapacityMap, Counters, Currency, Frozen, Identifier, Instant, Label, PriceMap, Quantity


class FlightRequest(Frozen):
    """Seats in one class of one flight."""

    flight_id: Identifier
    seat_class: Identifier
    seats: Quantity


class FlightInventory(Frozen):
    """Create or change a flight: its route, departure and the capacity of each seat class named."""

    origin: Label
    destination: Label
    departs_at: Instant = Field(description="Departure: an RFC 3339 date-time with a time zone.")
    seats: CapacityMap = Field(description="Capacity per seat class; classes not named stay as they are.")
    currency: Currency | None = Field(default=None, description="ISO 4217 code of `fares`.")
    fares: PriceMap | None = Field(
        default=None, description="Price of one seat per class named in `seats`, in minor units of `currency`; a "
        "class not named keeps its fare. A change never reaches a checkout already holding."
    )

    _fares = prices_rule("fares", "seats")


class FlightAvailability(BaseModel):
    flight_id: str
    seat_classes: dict[str, Counters]


class Departure(BaseModel):
    """What the alternatives compare: a flight's route and departure."""

    origin: str
    destination: str
    departs_at: datetime
