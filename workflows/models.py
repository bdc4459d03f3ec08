"""What CheckoutSaga takes, returns and answers: the contract between the API, the workflow and operators."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, model_validator

from services import errors
from services.registry import PARTICIPANTS, AnyParticipant
from services.types import Alternative, Frozen, HoldResult, Identifier, Money, Shortage

WORKFLOW_NAME = "CheckoutSaga"
# Update names, also used by the API. `submit` is the update sent with Update-with-Start.
SUBMIT = "submit"
CONFIRM = "confirm"
CANCEL = "cancel"
EXTEND = "extend"
# Release some parts of a HELD checkout (a newer saga's update: an older one refuses it as unknown).
CANCEL_PARTS = "cancel_parts"
STATE_QUERY = "state"
# The operator's signal: a failing release's cause is fixed, try the compensation again now.
RETRY_COMPENSATION_SIGNAL = "retry_compensation"
# ApplicationError types of a refused update: defined, with their HTTP answer (409), in the error table.
UPDATE_REFUSED = errors.UPDATE_REFUSED
EXTEND_REFUSED = errors.EXTEND_REFUSED


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


class CheckoutRequestBase(Frozen):
    """One checkout as the saga takes it: the customer and one optional part per participant, in a field named
    after the participant's checkout-body field (`CheckoutRequest` adds those fields from the registry)."""

    customer_id: Identifier

    def parts(self) -> list[tuple[AnyParticipant, Frozen]]:
        """(participant, its request) for every part present, in registry order."""
        found: list[tuple[AnyParticipant, Frozen]] = []
        for participant in PARTICIPANTS:
            part = getattr(self, participant.field, None)
            if part is not None:
                found.append((participant, part))
        return found

    @model_validator(mode="after")
    def _not_empty(self) -> CheckoutRequestBase:
        if not self.parts():
            fields = ", ".join(p.field for p in PARTICIPANTS)
            raise ValueError(f"a checkout needs at least one of {fields}")
        return self


def _checkout_request_model() -> type[CheckoutRequestBase]:
    # The JSON shape (one field per participant) is what recorded histories hold: keep it.
    parts: dict[str, Any] = {p.field: (p.request_model | None, None) for p in PARTICIPANTS}
    return create_model("CheckoutRequest", __base__=CheckoutRequestBase, **parts)


if TYPE_CHECKING:
    CheckoutRequest = CheckoutRequestBase
else:
    CheckoutRequest = _checkout_request_model()


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
    # Participants whose operations run as local activities in the checkout worker (Participant.placement),
    # fixed at start like the task queues. Absent (histories from before placements): all remote.
    local_participants: list[str] = Field(default_factory=list)
    # A paid checkout's total as the API read it from the rows' prices (api/precheck.py): its payment authorizes
    # this beside the inventory's holds, and the saga refuses the checkout when the held lines' total differs.
    # Absent (histories from before it, or PAYMENT_BESIDE_HOLDS off): the payment authorizes the held total after.
    quote: Money | None = None


class CancelPartsInput(Frozen):
    parts: list[str] = Field(min_length=1)  # participant names


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
    # The sum of the holds' priced lines (each priced when its hold was placed); None when no line has a price.
    total: Money | None = None
