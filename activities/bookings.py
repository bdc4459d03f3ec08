"""The booking record's activities, run by the checkout worker (services/bookings/records.py):

- `checkout.record`: the saga's write of its view at a status change. A regular activity, not a local one: the
  saga schedules it in the same workflow task that answers the update (submit, confirm, cancel), so the answer
  leaves without waiting for PostgreSQL, while a local activity would run inside that task and delay it. (A
  sale's cancellation writes the API's view with it as a local activity: it answers only after its record
  writes anyway.)
- `checkout.load_record`, `checkout.cancel_deadlines`, `checkout.mark_parts`: what a sale's cancellation
  (workflows/cancel_sale.py) reads, checks and writes; local activities there (its LOCAL_PATCH), so a task run
  again after its worker died runs them again: `mark_parts` writes nothing a change already made.

Without a database (the benchmark's no-op floor) nothing is recorded and nothing is found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.crash import CrashPoints
from services.bookings.models import (
    DEADLINES_ACTIVITY,
    LOAD_ACTIVITY,
    MARK_ACTIVITY,
    RECORD_ACTIVITY,
    BookingRecord,
    DeadlinesInput,
    MarkParts,
    RecordInput,
)
from services.bookings.records import BookingRecords
from services.participant import CancelWindows, HoldOperations
from services.registry import participant


class BookingActivities:
    def __init__(
        self, records: BookingRecords | None, services: Mapping[str, HoldOperations[Any]] | None = None,
        windows: CancelWindows | None = None,
    ) -> None:
        self.records = records
        self.services = services or {}
        self.windows = windows or CancelWindows()
        self._crash = CrashPoints()

    async def cancel_deadlines(self, asked: DeadlinesInput) -> dict[str, datetime]:
        """The parts whose window (`InventoryService.cancel_until`, declared by its participant) has closed, with
        when it closed; judged by this clock, now (the workflow records the answer)."""
        now = datetime.now(UTC)
        found: dict[str, datetime] = {}
        for name in asked.parts:
            # Any operations with a `cancel_until` (an InventoryService, or a test's wrapper of one).
            cancel_until = getattr(self.services.get(name), "cancel_until", None)
            body = asked.request.get(participant(name).field)
            if cancel_until is None or body is None:
                continue
            request = participant(name).request_model.model_validate(body)
            until = await cancel_until(request, asked.confirmed_at, self.windows)
            if until is not None and now >= until:
                found[name] = until
        return found

    def activities(self) -> list[Callable[..., Awaitable[object]]]:
        records = self.records

        # Plain functions: a bound method cannot carry Temporal's definition attribute.
        async def record(new: RecordInput) -> bool:
            return await records.record(new) if records is not None else False

        async def load_record(checkout_id: str) -> BookingRecord | None:
            return await records.load(checkout_id) if records is not None else None

        async def mark_parts(change: MarkParts) -> BookingRecord | None:
            self._crash.before(MARK_ACTIVITY)
            marked = await records.change_parts(change) if records is not None else None
            self._crash.after(MARK_ACTIVITY)
            return marked

        async def cancel_deadlines(asked: DeadlinesInput) -> dict[str, datetime]:
            return await self.cancel_deadlines(asked)

        return [
            activity.defn(name=DEADLINES_ACTIVITY)(cancel_deadlines),
            activity.defn(name=RECORD_ACTIVITY)(record),
            activity.defn(name=LOAD_ACTIVITY)(load_record),
            activity.defn(name=MARK_ACTIVITY)(mark_parts),
        ]
