"""The sweeper through a database outage: one WARNING when it starts, one INFO when it ends, no traceback;
an unexpected error is still logged in full."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

import pytest

from runtime.worker import sweep_forever
from services.errors import DatabaseUnavailable

OUTAGE_PASSES = 5
LOGGER = "runtime.worker"


class FlakyService:
    """A service whose `expire_overdue` fails `failures` times, then works; `done` is set after `passes` calls."""

    def __init__(self, name: str, failures: Sequence[BaseException], passes: int) -> None:
        self.name = name
        self.failures = list(failures)
        self.passes = passes
        self.calls = 0
        self.done = asyncio.Event()

    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int:
        self.calls += 1
        if self.calls >= self.passes:
            self.done.set()
        if self.failures:
            raise self.failures.pop(0)
        return 0


async def _sweep_until_done(*services: FlakyService) -> None:
    task = asyncio.create_task(sweep_forever(services, grace_seconds=0, every=0))
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in services)), 60)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_an_outage_logs_one_warning_then_one_recovery_line(caplog: pytest.LogCaptureFixture) -> None:
    outage = [DatabaseUnavailable("database unavailable (ConnectionRefusedError): try again")] * OUTAGE_PASSES
    flight = FlakyService("flight", outage, passes=OUTAGE_PASSES + 3)
    hotel = FlakyService("hotel", outage, passes=OUTAGE_PASSES + 3)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await _sweep_until_done(flight, hotel)

    records = [r for r in caplog.records if r.name == LOGGER]
    assert not [r for r in records if r.levelno >= logging.ERROR]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("database is unavailable" in w for w in warnings), warnings
    assert {w.split()[1] for w in warnings} == {"flight", "hotel"}
    resumed = [r.getMessage() for r in records if r.levelno == logging.INFO and "resumed" in r.getMessage()]
    assert sorted(resumed) == ["sweeper: flight resumed, the database is available again",
                               "sweeper: hotel resumed, the database is available again"]
    assert not any(r.exc_info for r in records)


async def test_an_unexpected_error_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    orders = FlakyService("orders", [RuntimeError("a bug")] * 2, passes=3)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await _sweep_until_done(orders)
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors)
