"""Typed ledger errors. Nothing above services/ ever sees a raw driver exception.

Each error has an `ErrorType`: the activities send it as the ApplicationError type and the workflow matches on
it, so a rename of a class can never turn a REJECTED checkout into a FAILED one. The values are in recorded
histories: never change one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from services.types import HoldStatus, Shortage


class ErrorType(StrEnum):
    UNAVAILABLE = "Unavailable"
    UNKNOWN_RESOURCE = "UnknownResource"
    HOLD_NOT_ACTIVE = "HoldNotActive"
    INVALID_REQUEST = "InvalidRequest"
    BUSY = "Busy"
    STORAGE_ERROR = "StorageError"


class LedgerError(Exception):
    """Base class. `retryable` tells the activity layer whether Temporal should try again."""

    retryable = False
    type: ClassVar[ErrorType]


class Unavailable(LedgerError):
    type = ErrorType.UNAVAILABLE

    def __init__(self, shortages: list[Shortage]) -> None:
        self.shortages = shortages
        super().__init__(
            "; ".join(f"{s.resource}: requested {s.requested}, available {s.available}" for s in shortages)
        )


class UnknownResource(LedgerError):
    type = ErrorType.UNKNOWN_RESOURCE

    def __init__(self, resource: str) -> None:
        self.resource = resource
        super().__init__(f"unknown resource {resource}")


class HoldNotActive(LedgerError):
    type = ErrorType.HOLD_NOT_ACTIVE

    def __init__(self, hold_key: str, status: HoldStatus | None) -> None:
        self.hold_key = hold_key
        self.status = status
        super().__init__(f"hold {hold_key} is {status.value if status else 'unknown'}, not ACTIVE")


class InvalidRequest(LedgerError):
    type = ErrorType.INVALID_REQUEST


class Busy(LedgerError):
    """A lock was not granted within lock_timeout, or the database is unreachable: try again."""

    retryable = True
    type = ErrorType.BUSY


class StorageError(Busy):
    """An unexpected database error (logged in full). Retryable: most are transient (failover, restart)."""

    type = ErrorType.STORAGE_ERROR


class DatabaseUnavailable(Busy):
    """PostgreSQL cannot be reached or refuses connections for now (down, restarting, in recovery, out of
    connection slots, pool exhausted): retryable, and a 503 with Retry-After over HTTP. See services/unavailable.py.
    """
