"""The flight participant's HTTP and saga models: the checkout part, the operator upsert, availability."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.types import CapacityMap, Counters, Frozen, Identifier, Instant, Label, Quantity


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


class FlightAvailability(BaseModel):
    flight_id: str
    seat_classes: dict[str, Counters]


class Departure(BaseModel):
    """What the alternatives compare: a flight's route and departure."""

    origin: str
    destination: str
    departs_at: datetime
