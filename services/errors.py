"""Typed ledger errors, and the one table of what each becomes: its Temporal failure and its HTTP problem.

Nothing above services/ ever sees a raw driver exception. Each error class carries, in one place:

- `type` (an `ErrorType`): the ApplicationError type the activities send (activities/adapter.py) and the workflows
  match on (workflows/checkout_saga.py, workflows/cancel_sale.py), so a rename of a class can never turn a REJECTED
  checkout into a FAILED one. The values are in recorded histories: never change one.
- `retryable`: whether Temporal tries again (the ApplicationError's non_retryable, and its category).
- `details()` / `from_details()`: the ApplicationError details it is sent with, and the error read back from them
  (`decode`). The shapes are in recorded histories too.
- `problem` (an `HttpProblem`): the status, problem kind and title the API answers with (api/ledger_errors.py,
  api/problems.py, checkouts/answers.py, api/admission.py). The detail, in words, is the answering module's.

The refusals of a checkout's updates (UPDATE_REFUSED, EXTEND_REFUSED) and the per-customer hold limit are in the
table too (`REFUSED_UPDATE`, `HOLD_LIMIT`), as are the answers for a checkout its saga did not place (`REJECTED`,
`CHECKOUT_FAILED`).

Workflows import this module inside the sandbox: it stays pure (no I/O, no clock, no randomness).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, cast

from services.types import HoldStatus, Shortage


@dataclass(frozen=True, slots=True)
class HttpProblem:
    """How an error reads over HTTP: the problem+json `status`, `type` (its kind, the tail of the type URI) and
    `title`. `escaped_kind`: the kind when the error escaped its route to the app's last-line handler, where
    it means the database as a whole (api/problems.py); None: the same kind. `with_checkout`: the problem is
    answered with the checkout's state (checkouts/answers.py), never from a route's own ledger call."""

    status: int
    kind: str
    title: str
    escaped_kind: str | None = None
    with_checkout: bool = False


UNAVAILABLE_TITLE = "Service temporarily unavailable"
# A 503 the client retries after Retry-After (checkouts/problems.py service_unavailable).
TEMPORARILY_UNAVAILABLE = HttpProblem(503, "temporarily-unavailable", UNAVAILABLE_TITLE)
# A checkout the saga (or the sold-out lane) REJECTED: something is short, or a payment declined.
REJECTED = HttpProblem(409, "checkout-rejected", "Not available", with_checkout=True)
# A checkout the saga could not place for any other reason (FAILED, NEEDS_ATTENTION).
CHECKOUT_FAILED = HttpProblem(409, "checkout-failed", "Checkout failed", with_checkout=True)
# A refused confirm, cancel or extend (the ApplicationError types below): 409 with the checkout as it is, titled
# by the action ("Cannot extend").
REFUSED_UPDATE = HttpProblem(409, "checkout-conflict", "Checkout conflict", with_checkout=True)
# A new checkout would pass a per-customer limit (services/customer_limits.py LimitExceeded): nothing is held.
HOLD_LIMIT = HttpProblem(429, "hold-limit", "Hold limit reached")

# ApplicationError types of a refused update (the validator said no, nothing was done); both answer REFUSED_UPDATE:
# the request was well-formed, the checkout said no. UPDATE_REFUSED: not allowed in the checkout's current status.
# EXTEND_REFUSED: beyond the bounds (a maximum hold lifetime, or more at once than the saga allows). In recorded
# histories: never change one.
UPDATE_REFUSED = "UpdateRefused"
EXTEND_REFUSED = "ExtendRefused"


class ErrorType(StrEnum):
    UNAVAILABLE = "Unavailable"
    UNKNOWN_RESOURCE = "UnknownResource"
    HOLD_NOT_ACTIVE = "HoldNotActive"
    INVALID_REQUEST = "InvalidRequest"
    BUSY = "Busy"
    STORAGE_ERROR = "StorageError"
    DECLINED = "Declined"


class LedgerError(Exception):
    """Base class. `retryable` tells the activity layer whether Temporal should try again. A new error that
    names no problem of its own is the database's trouble, not the request's: a 503."""

    retryable = False
    type: ClassVar[ErrorType]
    problem: ClassVar[HttpProblem] = TEMPORARILY_UNAVAILABLE

    def details(self) -> list[object]:
        """The ApplicationError details this error is sent with (what a workflow needs of it)."""
        return []

    @classmethod
    def from_details(cls, message: str, details: Sequence[object]) -> LedgerError | None:
        """The error again from its ApplicationError; None when the details do not carry what it needs."""
        return cls(message)


class Unavailable(LedgerError):
    type = ErrorType.UNAVAILABLE
    problem = REJECTED

    def __init__(self, shortages: list[Shortage]) -> None:
        self.shortages = shortages
        super().__init__(
            "; ".join(f"{s.resource}: requested {s.requested}, available {s.available}" for s in shortages)
        )

    def details(self) -> list[object]:
        return [[s.model_dump(mode="json") for s in self.shortages]]

    @classmethod
    def from_details(cls, message: str, details: Sequence[object]) -> LedgerError | None:
        if not details:
            return None
        return cls([Shortage.model_validate(item) for item in cast(list[object], details[0])])


class Declined(LedgerError):
    """A participant of another kind (a payment) refused the request for a reason of its own: not a shortage of
    stock. The checkout is REJECTED with `unavailable` naming the participant (`shortage.resource`), never FAILED."""

    type = ErrorType.DECLINED
    problem = REJECTED

    def __init__(self, shortage: Shortage) -> None:
        self.shortage = shortage
        super().__init__(shortage.reason or f"{shortage.resource}: declined")

    def details(self) -> list[object]:
        return [self.shortage.model_dump(mode="json")]

    @classmethod
    def from_details(cls, message: str, details: Sequence[object]) -> LedgerError | None:
        return cls(Shortage.model_validate(details[0])) if details else None


class UnknownResource(LedgerError):
    type = ErrorType.UNKNOWN_RESOURCE
    # 404 when the resource is in the path; a route that names it in a body answers 422 (api/ledger_errors.py).
    problem = HttpProblem(404, "unknown-resource", "Unknown resource")

    def __init__(self, resource: str) -> None:
        self.resource = resource
        super().__init__(f"unknown resource {resource}")

    def details(self) -> list[object]:
        return [self.resource]

    @classmethod
    def from_details(cls, message: str, details: Sequence[object]) -> LedgerError | None:
        return cls(str(details[0])) if details else None


class HoldNotActive(LedgerError):
    type = ErrorType.HOLD_NOT_ACTIVE
    problem = REFUSED_UPDATE

    def __init__(self, hold_key: str, status: HoldStatus | None) -> None:
        self.hold_key = hold_key
        self.status = status
        super().__init__(f"hold {hold_key} is {status.value if status else 'unknown'}, not ACTIVE")

    def details(self) -> list[object]:
        return [self.status.value if self.status is not None else None]

    @classmethod
    def from_details(cls, message: str, details: Sequence[object]) -> LedgerError | None:
        # The hold key is not sent (the workflow knows it); a status this version does not know reads as unknown.
        status = details[0] if details else None
        known = status in HoldStatus.__members__.values()
        return cls("", HoldStatus(str(status)) if known else None)


class InvalidRequest(LedgerError):
    type = ErrorType.INVALID_REQUEST
    problem = HttpProblem(422, "invalid-request", "Invalid request")


class Busy(LedgerError):
    """A lock was not granted within lock_timeout, or the database is unreachable: try again."""

    retryable = True
    type = ErrorType.BUSY
    problem = HttpProblem(503, "temporarily-unavailable", UNAVAILABLE_TITLE, escaped_kind="database-busy")


class StorageError(Busy):
    """An unexpected database error (logged in full). Retryable: most are transient (failover, restart)."""

    type = ErrorType.STORAGE_ERROR


class DatabaseUnavailable(Busy):
    """PostgreSQL cannot be reached or refuses connections for now (down, restarting, in recovery, out of
    connection slots, pool exhausted): retryable, and a 503 with Retry-After over HTTP. See services/unavailable.py.
    """

    problem = HttpProblem(503, "database-unavailable", UNAVAILABLE_TITLE)


# ErrorType -> the class a workflow reads it back as. Busy's subclass DatabaseUnavailable is sent as a Busy and
# read back as one: the workflow only needs to know it is worth retrying.
BY_TYPE: dict[ErrorType, type[LedgerError]] = {
    cls.type: cls for cls in (Unavailable, Declined, UnknownResource, HoldNotActive, InvalidRequest, Busy, StorageError)
}


def error_type(failure_type: str | None) -> ErrorType | None:
    """The ErrorType an ApplicationError's type names, or None for a failure of another kind (a refused update,
    Temporal's own)."""
    return ErrorType(failure_type) if failure_type in BY_TYPE else None


def decode(failure_type: str | None, message: str, details: Sequence[object]) -> LedgerError | None:
    """The ledger error an ApplicationError carries (its type, message and details), or None when it carries none
    (another kind of failure, or details without what the error needs)."""
    kind = error_type(failure_type)
    if kind is None:
        return None
    try:
        return BY_TYPE[kind].from_details(message, details)
    except (ValueError, TypeError, IndexError):  # details of another shape (pydantic's ValidationError is a ValueError)
        return None
