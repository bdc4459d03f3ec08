"""The shapes every participant shares: field rules, hold outcomes, counters, alternatives, audit findings.

They travel through Temporal (pydantic data converter) and the HTTP API, so they are plain pydantic models.
Each participant's own request, availability and upsert models live in its package (services/<name>/schemas.py)
and are built from the field rules here, so one rule has one copy.

Integers are JSON integers (JsonInt): no bool, no fraction and no numeric string is taken as a number, so an
operator's `{"stock": false}` is refused, not read as 0; `2.0` is the same JSON number as `2` (RFC 8259, JSON
Schema's `integer`) and is read as 2. Dates are `YYYY-MM-DD` strings only (Day) and instants RFC 3339 strings
with an offset only (Instant): no number is read as a timestamp.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

import pycountry
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
# Upper bounds keep absurd requests out before they reach a ledger (no int64 overflow, no 10^9 nights).
MAX_QUANTITY = 1000
MAX_CAPACITY = 1_000_000
MAX_NAMED = 50

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _json_integer(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _iso_day(value: object) -> object:
    # A date object comes from Python (demo offers, Temporal payloads); from HTTP only the string form counts.
    if (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and _DAY.fullmatch(value)
    ):
        return value
    raise ValueError("must be a date, YYYY-MM-DD")


def _iso_instant(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and _INSTANT.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2026-12-01T09:30:00Z")


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
Day = Annotated[date, BeforeValidator(_iso_day)]
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_instant)]

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)]
Quantity = Annotated[JsonInt, Field(ge=1, le=MAX_QUANTITY)]
Capacity = Annotated[JsonInt, Field(ge=0, le=MAX_CAPACITY)]
# A free-text name such as a city or an airport.
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"\S")]
# pydantic documents a dict's key pattern as patternProperties only; say outright that no other key is accepted.
_CAPACITY_MAP_SCHEMA = {"additionalProperties": False, "propertyNames": {"pattern": IDENTIFIER_PATTERN}}
CapacityMap = Annotated[
    dict[Identifier, Capacity], Field(min_length=1, max_length=MAX_NAMED, json_schema_extra=_CAPACITY_MAP_SCHEMA)
]


# 10^12 minor units: ten billion in a two-decimal currency; times MAX_QUANTITY and MAX_NAMED lines still fits int64.
MAX_AMOUNT = 10**12


def _iso_4217(value: str) -> str:
    if pycountry.currencies.get(alpha_3=value) is None or value != value.upper():
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. EUR, USD, GBP)")
    return value


Currency = Annotated[str, Field(min_length=3, max_length=3, examples=["EUR"]), AfterValidator(_iso_4217)]
Amount = Annotated[JsonInt, Field(ge=0, le=MAX_AMOUNT, description="Minor units of the currency (cents).")]
PriceMap = Annotated[
    dict[Identifier, Amount], Field(min_length=1, max_length=MAX_NAMED, json_schema_extra=_CAPACITY_MAP_SCHEMA)
]


class Money(BaseModel):
    amount: int = Field(description="Minor units of the currency (cents).")
    currency: str = Field(description="ISO 4217 code.")


class Price(BaseModel):
    """A row's unit price as availability shows it (null where the row has none)."""

    amount: int
    currency: str


def price_of(amount: int | None, currency: str | None) -> Price | None:
    return Price(amount=amount, currency=currency) if amount is not None and currency is not None else None


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HoldStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    # A sold hold given back (a cancelled sale): its lines no longer count in `sold`.
    RETURNED = "RETURNED"


class HoldLine(Frozen):
    """One inventory row a hold touches. `resource` is the row's name: 'BA117/economy', 'H1/deluxe/2026-12-01'."""

    resource: str
    quantity: int
    # The row's unit price when the hold was placed (minor units, ISO 4217): an operator's later change never
    # changes it. None: the row has no price. `amount` = unit_price * quantity.
    unit_price: int | None = None
    amount: int | None = None
    currency: str | None = None


class HoldResult(Frozen):
    hold_key: str
    service: str
    status: HoldStatus
    expires_at: datetime | None = None
    lines: list[HoldLine] = Field(default_factory=list)


class RefundResult(Frozen):
    """One refund of a capture: `amount` given back by this refund key, `refunded` in all so far, `captured` what is
    left to refund (all in minor units of `currency`)."""

    hold_key: str
    refund_key: str
    amount: int
    refunded: int
    captured: int
    currency: str


class Shortage(Frozen):
    """What was short. `resource` names an inventory row, or `payment` for a declined payment (then `requested`
    and `available` are amounts in minor units and `reason` says why: a decline is not a shortage of stock)."""

    resource: str
    requested: int
    available: int
    # Why, when it is not a matter of numbers: "departed" (a flight that has left), a payment's decline. Left out
    # when there is none,
    # so a shortage of numbers reads as it always did.
    reason: str | None = Field(default=None, exclude_if=lambda value: value is None)


class Alternative(Frozen):
    """A next option to offer in a 409. `checkout` is a checkout-body fragment (`{"flight": {...}}`) that can be
    merged into a new checkout as-is; `request` is the participant's own request."""

    service: str
    description: str
    available: int
    request: dict[str, object] = Field(default_factory=dict)
    checkout: dict[str, object] = Field(default_factory=dict)


class Counters(BaseModel):
    """One inventory row's counters as the HTTP API shows them, and its unit price (null where it has none)."""

    capacity: int
    held: int
    sold: int
    available: int
    price: Price | None = None


class RowAvailability(Frozen):
    capacity: int
    held: int
    sold: int
    available: int
    version: int = 0


class Violation(Frozen):
    service: str
    resource: str
    problem: str
