"""What a booking record holds and what its writers send: pure pydantic, safe to import from workflow code.

The record keeps the checkout's view (the saga's `CheckoutView` as JSON: parts' holds with their statuses and
lines, the history of status changes) as a dict, so that services/ never imports workflows/. `version` orders
the writes: the number of history entries the view holds. A history only grows, so a replayed or retried write
of an older view (or the same one) is refused by the record (`services.bookings.records.record_change`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from services.types import Frozen

# Activity names (the checkout worker runs them): the saga's record write, and what the sale's cancellation
# workflow reads and writes.
RECORD_ACTIVITY = "checkout.record"
LOAD_ACTIVITY = "checkout.load_record"
MARK_ACTIVITY = "checkout.mark_parts"
DEADLINES_ACTIVITY = "checkout.cancel_deadlines"


class RecordInput(Frozen):
    """One version of a checkout's record, as its writer (the saga) sends it."""

    checkout_id: str
    customer_id: str
    status: str
    version: int = Field(ge=1)
    # The checkout view (CheckoutView.model_dump(mode="json")).
    view: dict[str, Any]
    # The checkout's request (CheckoutRequest.model_dump(mode="json")): what each part asked for, so that a
    # cancellation can work out its window once the saga is gone.
    request: dict[str, Any] | None = None
    # The writer has recorded no version of this checkout yet: the record is most likely new, and is first tried
    # as one INSERT (services/bookings/records.py `insert_first`); a stored record sends the write the locked way.
    first_write: bool = False


class BookingRecord(Frozen):
    """One checkout's record as stored."""

    checkout_id: str
    customer_id: str
    status: str
    version: int
    view: dict[str, Any]
    request: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class MarkParts(Frozen):
    """A cancellation's change to a record: `parts` (participant names) moved to their hold's new status
    (RETURNED for a sale's part), one history entry added; the checkout becomes `status_when_none_left` when no
    part remains, else keeps its status. `at` is the workflow's time (deterministic)."""

    checkout_id: str
    holds: dict[str, dict[str, Any]]  # participant name -> its HoldResult as JSON
    at: datetime
    reason: str
    status_when_none_left: str = "CANCELLED"
    # A status to set while parts remain (NEEDS_ATTENTION while a return keeps failing), else None.
    status: str | None = None
    error: str | None = None


class DeadlinesInput(Frozen):
    """Which parts of a recorded checkout a cancellation wants, for their windows."""

    checkout_id: str
    parts: list[str]  # participant names
    request: dict[str, Any]  # the record's request (CheckoutRequest as JSON)
    confirmed_at: datetime
