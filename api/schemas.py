"""Request and response bodies of the HTTP API (v1). Problem bodies are in api/problems.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.problems import Problem
from services.types import (
    Alternative,
    FlightRequest,
    HoldLine,
    HoldStatus,
    HotelRequest,
    Identifier,
    ItemLine,
    ItemsRequest,
    RowAvailability,
    ServiceName,
    Shortage,
    Violation,
)
from workflows.models import CheckoutRequest, CheckoutStatus, CheckoutView, StatusChange

MAX_ITEM_LINES = 50


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- checkouts -------------------------------------------------------------------------------------------

class CheckoutBody(Body):
    """One checkout: a flight seat, a hotel stay, shop items, or any mix of them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "customer_id": "cust-42",
                "flight": {"flight_id": "BA117", "seat_class": "economy", "seats": 1},
                "hotel": {"hotel_id": "H1", "room_type": "deluxe", "check_in": "2026-12-01",
                          "check_out": "2026-12-03", "rooms": 1},
                "items": [{"sku": "SKU-1", "quantity": 2}],
                "hold_seconds": 600,
            }]
        },
    )

    customer_id: Identifier
    flight: FlightRequest | None = None
    hotel: HotelRequest | None = None
    items: Annotated[list[ItemLine], Field(min_length=1, max_length=MAX_ITEM_LINES)] | None = None
    hold_seconds: int | None = Field(
        default=None,
        description="How long the holds last before they are released. Default and bounds come from the "
        "server settings (600, and 5 to 3600, unless configured otherwise).",
    )

    @model_validator(mode="after")
    def _shape(self) -> CheckoutBody:
        if self.flight is None and self.hotel is None and self.items is None:
            raise ValueError("a checkout needs at least one of flight, hotel or items")
        if self.items is not None:
            skus = [line.sku for line in self.items]
            if len(set(skus)) != len(skus):
                raise ValueError("each sku may appear only once in items")
        return self

    def to_request(self) -> CheckoutRequest:
        # Items sorted by sku: the same basket in another order is the same request (and the same hash).
        items = ItemsRequest(items=sorted(self.items, key=lambda line: line.sku)) if self.items else None
        return CheckoutRequest(customer_id=self.customer_id, flight=self.flight, hotel=self.hotel, items=items)


class ExtendBody(Body):
    seconds: int = Field(ge=1, description="How many seconds to push expires_at out by.")


class Hold(BaseModel):
    service: ServiceName
    status: HoldStatus
    expires_at: datetime | None = None
    lines: list[HoldLine] = Field(default_factory=list)


class Checkout(BaseModel):
    """A checkout as the saga sees it now."""

    checkout_id: str
    customer_id: str
    status: CheckoutStatus
    expires_at: datetime | None = Field(default=None, description="When the holds run out, while HELD.")
    holds: list[Hold] = Field(default_factory=list)
    history: list[StatusChange] = Field(default_factory=list, description="Status changes, oldest first.")
    unavailable: list[Shortage] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)

    @classmethod
    def from_view(cls, view: CheckoutView) -> Checkout:
        return cls(
            checkout_id=view.checkout_id,
            customer_id=view.customer_id,
            status=view.status,
            expires_at=view.expires_at,
            holds=[Hold(service=h.service, status=h.status, expires_at=h.expires_at, lines=h.lines)
                   for h in view.holds],
            history=view.history,
            unavailable=view.unavailable,
            alternatives=view.alternatives,
        )


class CheckoutProblem(Problem):
    """A checkout that did not (or can no longer) go the requested way: its status and, when rejected,
    what was short and what could be booked instead."""

    checkout_id: str
    checkout_status: CheckoutStatus
    unavailable: list[Shortage] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)


# ---- inventory (operators) -------------------------------------------------------------------------------

Capacity = Annotated[int, Field(ge=0, le=1_000_000)]
# pydantic documents the key pattern as patternProperties only; say outright that no other key is accepted.
_CAPACITY_MAP_SCHEMA = {"additionalProperties": False, "propertyNames": {"pattern": r"^[A-Za-z0-9._:-]{1,64}$"}}
Place = Annotated[str, Field(min_length=1, max_length=64)]


class FlightInventory(Body):
    origin: Place
    destination: Place
    departs_at: datetime
    seats: dict[Identifier, Capacity] = Field(
        min_length=1, max_length=50, description="Capacity per seat class.", json_schema_extra=_CAPACITY_MAP_SCHEMA
    )


class HotelInventory(Body):
    city: Place
    rooms: dict[Identifier, Capacity] = Field(
        min_length=1, max_length=50, description="Capacity per room type, per night.",
        json_schema_extra=_CAPACITY_MAP_SCHEMA,
    )
    nights_from: date
    nights_to: date = Field(description="The last night offered (inclusive).")

    @model_validator(mode="after")
    def _nights(self) -> HotelInventory:
        if self.nights_to < self.nights_from:
            raise ValueError("nights_to must not be before nights_from")
        if (self.nights_to - self.nights_from).days > 731:
            raise ValueError("at most two years of nights per upsert")
        return self


class ItemInventory(Body):
    stock: Capacity


# ---- availability ----------------------------------------------------------------------------------------

class Availability(BaseModel):
    capacity: int
    held: int
    sold: int
    available: int

    @classmethod
    def of(cls, row: RowAvailability) -> Availability:
        return cls(capacity=row.capacity, held=row.held, sold=row.sold, available=row.available)


class FlightAvailability(BaseModel):
    flight_id: str
    seat_classes: dict[str, Availability]


class RoomTypeAvailability(BaseModel):
    available: int = Field(description="The least available over the nights asked for.")
    nights: dict[date, Availability]


class HotelAvailability(BaseModel):
    hotel_id: str
    room_types: dict[str, RoomTypeAvailability]


class ItemAvailability(Availability):
    sku: str


class AuditReport(BaseModel):
    ok: bool
    violations: list[Violation]


# ---- health ----------------------------------------------------------------------------------------------

class DependencyCheck(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, DependencyCheck]


class Liveness(BaseModel):
    status: str = "ok"
