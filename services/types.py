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

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

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


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HoldStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class HoldLine(Frozen):
    """One inventory row a hold touches. `resource` is the row's name: 'BA117/economy', 'H1/deluxe/2026-12-01'."""

    resource: str
    quantity: int


class HoldResult(Frozen):
    hold_key: str
    service: str
    status: HoldStatus
    expires_at: datetime | None = None
    lines: list[HoldLine] = Field(default_factory=list)


class Shortage(Frozen):
    resource: str
    requested: int
    available: int


class Alternative(Frozen):
    """A next option to offer in a 409. `checkout` is a checkout-body fragment (`{"flight": {...}}`) that can be
    merged into a new checkout as-is; `request` is the participant's own request."""

    service: str
    description: str
    available: int
    request: dict[str, object] = Field(default_factory=dict)
    checkout: dict[str, object] = Field(default_factory=dict)


class Counters(BaseModel):
    """One inventory row's counters as the HTTP API shows them."""

    capacity: int
    held: int
    sold: int
    available: int


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
