"""Typed ledger errors. Nothing above services/ ever sees a raw driver exception."""

from __future__ import annotations

from services.types import HoldStatus, Shortage


class LedgerError(Exception):
    """Base class. `retryable` tells the activity layer whether Temporal should try again."""

    retryable = False


class Unavailable(LedgerError):
    def __init__(self, shortages: list[Shortage]) -> None:
        self.shortages = shortages
        super().__init__(
            "; ".join(f"{s.resource}: requested {s.requested}, available {s.available}" for s in shortages)
        )


class UnknownResource(LedgerError):
    def __init__(self, resource: str) -> None:
        self.resource = resource
        super().__init__(f"unknown resource {resource}")


class HoldNotActive(LedgerError):
    def __init__(self, hold_key: str, status: HoldStatus | None) -> None:
        self.hold_key = hold_key
        self.status = status
        super().__init__(f"hold {hold_key} is {status.value if status else 'unknown'}, not ACTIVE")


class InvalidRequest(LedgerError):
    pass


class Busy(LedgerError):
    """A lock was not granted within lock_timeout, or the database is unreachable: try again."""

    retryable = True


class StorageError(Busy):
    """An unexpected database error (logged in full). Retryable: most are transient (failover, restart)."""
