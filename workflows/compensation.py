"""The compensation stack: what to undo if the saga does not reach CONFIRMED.

A service is registered BEFORE its hold is attempted: a hold whose result never reaches the workflow (a timeout
after the ledger committed) is still released, and releasing a key that was never held leaves a tombstone in
the ledger that refuses a late hold. Releases are idempotent, so over-registering is harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Compensations:
    def __init__(self) -> None:
        self._pending: list[str] = []

    def register(self, service: str) -> None:
        if service not in self._pending:
            self._pending.append(service)

    def forget(self, service: str) -> None:
        """A confirmed hold is a sale: there is nothing left to release."""
        if service in self._pending:
            self._pending.remove(service)

    async def run(self, release: Callable[[str], Awaitable[object]]) -> dict[str, str]:
        """Release everything pending, newest first (in parallel: releases are independent).

        Returns the services whose release failed, with why; those stay pending for the next round."""
        order = list(reversed(self._pending))
        outcomes = await asyncio.gather(*(release(service) for service in order), return_exceptions=True)
        failures: dict[str, str] = {}
        for service, outcome in zip(order, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                failures[service] = _reason(outcome)
            else:
                self.forget(service)
        return failures


def _reason(err: BaseException) -> str:
    cause = err.__cause__
    return f"{err}: {cause}" if cause is not None else str(err)
