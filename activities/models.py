"""What the workflow sends the participant activities. Pure pydantic: safe to import from workflow code.

The workflow sends a `HoldInput` whose request is the participant's own model (serialized whole); the activity
decodes it with `hold_input_for(participant)`, whose `request` field is that participant's request model.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from pydantic import SerializeAsAny, create_model

from services.registry import AnyParticipant
from services.types import Frozen, Shortage


class HoldInput(Frozen):
    hold_key: str
    request: SerializeAsAny[Frozen]
    expires_at: datetime


class DeclineInput(Frozen):
    """A hold the saga refuses after it was placed, and why (the customer's answer: REJECTED)."""

    hold_key: str
    shortage: Shortage


class RefundInput(Frozen):
    hold_key: str
    refund_key: str
    amount: int | None = None  # None: all that is left of the capture


class ExtendHoldInput(Frozen):
    hold_key: str
    expires_at: datetime


@cache
def hold_input_for(participant: AnyParticipant) -> type[HoldInput]:
    """HoldInput with `request` typed as `participant`'s request model (what its hold activity decodes)."""
    request: Any = (participant.request_model, ...)
    return create_model(f"{type(participant).__name__}HoldInput", __base__=HoldInput, request=request)


def activity_name(service: str, operation: str) -> str:
    """'flight.hold', 'hotel.release', ...: one place decides how activities are named."""
    return f"{service}.{operation}"


# The checkout worker's own activity: the settled saga gives its customer's claim back (activities/claims.py).
RELEASE_CLAIM = "checkout.release_claim"

OPERATIONS = ("hold", "confirm", "release", "decline", "extend", "alternatives", "return_sale")
# Only for a participant that declares `refunds` (a payment): a capture given back, by refund key.
REFUND = "refund"


def operations_of(participant: AnyParticipant) -> tuple[str, ...]:
    """The activity operations `participant` serves."""
    return (*OPERATIONS, REFUND) if participant.refunds else OPERATIONS
