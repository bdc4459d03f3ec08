"""What CheckoutSaga takes, returns and answers: the contract between the API, the workflow and operators."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, model_validator

from services.types import (
    Alternative,
    FlightRequest,
    Frozen,
    HoldResult,
    HotelRequest,
    Identifier,
    ItemsRequest,
    ServiceName,
    Shortage,
)

WORKFLOW_NAME = "CheckoutSaga"
# Update names, also used by the API. `submit` is the update sent with Update-with-Start.
SUBMIT = "submit"
CONFIRM = "confirm"
CANCEL = "cancel"
EXTEND = "extend"
STATE_QUERY = "state"
RETRY_COMPENSATION_SIGNAL = "retry_compensation"
# ApplicationError types of a refused update (the validator said no, nothing was done).
# UPDATE_REFUSED: not allowed in the checkout's current status (HTTP 409). EXTEND_REFUSED: beyond the bounds (422).
UPDATE_REFUSED = "UpdateRefused"
EXTEND_REFUSED = "ExtendRefused"


class CheckoutStatus(StrEnum):
    PENDING = "PENDING"
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


FINAL_STATUSES = frozenset(
    {
        CheckoutStatus.CONFIRMED,
        CheckoutStatus.CANCELLED,
        CheckoutStatus.EXPIRED,
        CheckoutStatus.REJECTED,
        CheckoutStatus.FAILED,
    }
)


class CheckoutRequest(Frozen):
    """One checkout as the front-end submits it: any mix of a flight, a hotel stay and items."""

    customer_id: Identifier
    flight: FlightRequest | None = None
    hotel: HotelRequest | None = None
    items: ItemsRequest | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> CheckoutRequest:
        if self.flight is None and self.hotel is None and self.items is None:
            raise ValueError("a checkout needs at least one of flight, hotel or items")
        return self

    def services(self) -> list[ServiceName]:
        named: list[tuple[ServiceName, object]] = [
            ("flight", self.flight),
            ("hotel", self.hotel),
            ("orders", self.items),
        ]
        return [name for name, part in named if part is not None]


class CheckoutInput(Frozen):
    checkout_id: str
    request: CheckoutRequest
    # sha256 of the canonical request: the API compares it to refuse the same key with another body.
    request_hash: str
    hold_seconds: int
    # Bounds for `extend`, fixed at start so that a settings change cannot alter a running saga's history.
    extend_max_seconds: int = 3600
    hold_lifetime_max_seconds: int = 7200
    # Task queue of each service's activity worker (Settings.task_queue); a service missing here uses its name.
    task_queues: dict[str, str] = Field(default_factory=dict)


class ExtendInput(Frozen):
    seconds: int = Field(ge=1)


class StatusChange(Frozen):
    status: CheckoutStatus
    at: datetime
    reason: str | None = None


class CheckoutView(Frozen):
    """The whole checkout: the `state` query, every update's answer and the workflow result."""

    checkout_id: str
    customer_id: str
    request_hash: str
    status: CheckoutStatus
    expires_at: datetime | None = None
    holds: list[HoldResult] = Field(default_factory=list)
    unavailable: list[Shortage] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)
    history: list[StatusChange] = Field(default_factory=list)
    # Set for FAILED / NEEDS_ATTENTION: what went wrong, for operators.
    error: str | None = None
