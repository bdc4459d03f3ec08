"""The shapes that cross service boundaries: requests, hold outcomes, availability, alternatives.

They travel through Temporal (pydantic data converter) and the HTTP API, so they are plain pydantic models.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ServiceName = Literal["flight", "hotel", "orders"]
SERVICES: tuple[ServiceName, ...] = ("flight", "hotel", "orders")

# Upper bounds keep absurd requests out before they reach a ledger (no int64 overflow, no 10^9 nights).
Quantity = Annotated[int, Field(ge=1, le=1000)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
MAX_NIGHTS = 60


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FlightRequest(Frozen):
    flight_id: Identifier
    seat_class: Identifier
    seats: Quantity


class HotelRequest(Frozen):
    hotel_id: Identifier
    room_type: Identifier
    check_in: date
    check_out: date
    rooms: Quantity

    @model_validator(mode="after")
    def _stay(self) -> HotelRequest:
        if self.check_out <= self.check_in:
            raise ValueError("check_out must be after check_in")
        if (self.check_out - self.check_in).days > MAX_NIGHTS:
            raise ValueError(f"a stay may not exceed {MAX_NIGHTS} nights")
        return self

    def nights(self) -> list[date]:
        from datetime import timedelta

        return [self.check_in + timedelta(days=i) for i in range((self.check_out - self.check_in).days)]


class ItemLine(Frozen):
    sku: Identifier
    quantity: Quantity


class ItemsRequest(Frozen):
    items: Annotated[list[ItemLine], Field(min_length=1, max_length=50)]

    @model_validator(mode="after")
    def _distinct(self) -> ItemsRequest:
        skus = [line.sku for line in self.items]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear only once in items")
        return self


class HoldStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class HoldLine(Frozen):
    """One inventory row a hold touches.

    `resource` is human-readable: 'BA117/economy', 'H1/deluxe/2026-12-01', 'SKU-1'.
    """

    resource: str
    quantity: int


class HoldResult(Frozen):
    hold_key: str
    service: ServiceName
    status: HoldStatus
    expires_at: datetime | None = None
    lines: list[HoldLine] = Field(default_factory=list)


class Shortage(Frozen):
    resource: str
    requested: int
    available: int


class Alternative(Frozen):
    """A next option to offer in a 409. `request` can be submitted as-is in a new checkout."""

    service: ServiceName
    description: str
    available: int
    request: dict[str, object] = Field(default_factory=dict)


class RowAvailability(Frozen):
    capacity: int
    held: int
    sold: int
    available: int
    version: int = 0


class Violation(Frozen):
    service: ServiceName
    resource: str
    problem: str
