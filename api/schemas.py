"""Request and response bodies of the HTTP API (v1). Problem bodies are in api/problems.py; each participant's
own bodies (its checkout part, availability, upsert) are in its package, and the checkout body is built here
from the registry: one optional field per participant."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from api.problems import Problem
from services.events import EventType
from services.registry import NAMES, PARTICIPANTS
from services.types import Alternative, HoldLine, HoldStatus, Identifier, JsonInt, Money, Shortage, Violation
from workflows.models import CheckoutRequest, CheckoutStatus, CheckoutView, StatusChange
from workflows.saga_audit import SagaAuditReport


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- checkouts -------------------------------------------------------------------------------------------

def example_checkout() -> dict[str, object]:
    """A checkout of one demo offer per participant: it works against `make dev`'s inventory."""
    today = datetime.now(UTC).date()
    example: dict[str, object] = {"customer_id": "cust-42"}
    for participant in PARTICIPANTS:
        if not participant.inventory:  # a payment needs an account first: not in the example
            continue
        offers = participant.demo_offers(today)
        if offers:
            example[participant.field] = participant.to_body(offers[0])
    example["hold_seconds"] = 600
    return example


class CheckoutBodyBase(Body):
    """One checkout: any mix of the participants' parts (at least one)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda schema: schema.update(
        examples=[example_checkout()]
    ))

    customer_id: Identifier | None = Field(
        default=None, description="Who books. Required with CUSTOMER_AUTH=none; under jwt the token's `sub` says "
        "it (a different one here: 403).",
    )
    hold_seconds: JsonInt | None = Field(
        default=None,
        description="How long the holds last before they are released. Default and bounds come from the "
        "server settings (HOLD_SECONDS_DEFAULT, HOLD_SECONDS_MIN to HOLD_SECONDS_MAX: the bounds below).",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> CheckoutBodyBase:
        if all(getattr(self, p.field, None) is None for p in PARTICIPANTS):
            raise ValueError(f"a checkout needs at least one of {', '.join(p.field for p in PARTICIPANTS)}")
        return self

    def to_request(self, customer_id: str | None = None) -> CheckoutRequest:
        """The saga's request, for `customer_id` (the caller's, when the body names none)."""
        parts = {
            p.field: p.to_request(value)
            for p in PARTICIPANTS
            if (value := getattr(self, p.field, None)) is not None
        }
        return CheckoutRequest(customer_id=customer_id or self.customer_id, **parts)


def _checkout_body_model() -> type[CheckoutBodyBase]:
    fields: dict[str, Any] = {
        p.field: (p.body_type() | None, Field(default=None, description=f"{p.title}: optional."))  # type: ignore[operator]
        for p in PARTICIPANTS
    }
    return create_model("CheckoutBody", __base__=CheckoutBodyBase, **fields)


if TYPE_CHECKING:
    CheckoutBody = CheckoutBodyBase
else:
    CheckoutBody = _checkout_body_model()


class ExtendBody(Body):
    seconds: JsonInt = Field(ge=1, description="How many seconds to push expires_at out by (at most HOLD_SECONDS_MAX; "
                             "the new expiry may not pass the maximum hold lifetime: 409).")


# A part of a checkout, named by its checkout-body field (from the registry).
PartField: Any = StrEnum("PartField", {p.field: p.field for p in PARTICIPANTS})  # type: ignore[misc]


class CancelBody(Body):
    """Which parts to cancel, by their checkout-body field; without a body, the whole checkout."""

    parts: list[PartField] = Field(min_length=1, max_length=len(PARTICIPANTS),
                                   description="Checkout-body field names of the parts to cancel.")


class Hold(BaseModel):
    service: str = Field(description="The participant holding.", json_schema_extra={"enum": list(NAMES)})
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
    total: Money | None = Field(
        default=None, description="The sum of the priced lines (`amount` of each), in their one currency; null when "
        "no line has a price. Fixed when the holds were placed: a later price change never changes it.",
    )

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
            total=view.total,
        )


class CheckoutList(BaseModel):
    """A page of checkouts, newest first."""

    checkouts: list[Checkout]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class CheckoutProblem(Problem):
    """A checkout that did not (or can no longer) go the requested way: its status and, when rejected,
    what was short and what could be booked instead."""

    checkout_id: str
    checkout_status: CheckoutStatus
    unavailable: list[Shortage] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)


class HoldLimitProblem(Problem):
    """The customer would pass a hold limit (CUSTOMER_ACTIVE_CHECKOUTS_MAX or CUSTOMER_UNITS_MAX): nothing is
    held and no checkout was started."""

    limit: str = Field(description="`active_checkouts` (checkouts PENDING or HELD at once) or `units_per_row` "
                       "(units of one inventory row across the customer's checkouts).")
    current: int = Field(description="What the customer has now.")
    max: int
    resource: str | None = Field(default=None, description="For units_per_row: `participant:row`.")


class AuditReport(BaseModel):
    ok: bool
    violations: list[Violation]
    # ?sagas=true: the saga-vs-ledger audit; `ok` is then false when either finds a violation.
    sagas: SagaAuditReport | None = None


# ---- events ----------------------------------------------------------------------------------------------

class EventBody(BaseModel):
    """One event, as the feed lists it and webhooks POST it (docs/events.md)."""

    id: int = Field(description="Commit order; the `webhook-id` of its webhook deliveries, and the dedup key.")
    type: EventType
    checkout_id: str
    customer_id: str
    occurred_at: datetime = Field(description="When the checkout changed.")
    data: dict[str, Any] = Field(description="The checkout's view after the change (as GET /v1/checkouts/{id}).")
    part: str | None = Field(default=None, description="checkout.part_cancelled: the participant whose part was "
                             "cancelled; null on every other event.")


class EventPage(BaseModel):
    events: list[EventBody]
    next: int = Field(description="Ask `after=` this next time (the last event's id; `after` itself when empty).")


# ---- health ----------------------------------------------------------------------------------------------

class DependencyCheck(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, DependencyCheck]


class Liveness(BaseModel):
    status: str = "ok"
