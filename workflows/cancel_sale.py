"""CancelSale: give a confirmed checkout's sold parts back, durably, from its booking record.

Why a workflow of its own per cancellation (not the saga kept open until every window closes): the saga closes
when it settles, so its recorded histories and its deploys stay as they are, and a sale stays cancellable after
Temporal's retention deleted the saga (this workflow reads the record, not the saga). A saga kept open for days
would instead need every deploy in those days to replay it.

Contract:
- Workflow id `cancel-sale:{checkout_id}:{parts}` (`workflow_id`): the API starts it with USE_EXISTING, so
  concurrent cancels of the same parts join one run, and the ledger's `return_sale` is idempotent by hold key, so
  a second run (a repeated cancel) gives nothing back twice.
- Reads the record (waiting for the saga's CONFIRMED to land there when the cancel came first), checks every
  part's cancellation window (`checkout.cancel_deadlines`; one closed: nothing is returned, the answer names the
  parts), returns each part (`<participant>.return_sale`, retried; one that keeps failing marks the record
  NEEDS_ATTENTION and is tried again on the `retry_compensation` signal or every hour), then writes the parts'
  RETURNED holds and CANCELLED (no part left) into the record in one transaction (`checkout.mark_parts`).
- The record's reads and writes and the windows' check are local activities of the checkout worker (LOCAL_PATCH,
  `CancelSaleInput.local_records`): with local returns the whole cancellation is one workflow task. Exactly once
  all the same: a run of a task again (its worker died before the server kept it) writes nothing twice, since its
  record read finds what the lost run changed, and `mark_parts` changes nothing a change already made and then
  answers the record as it is.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.adapter import ledger_failure
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
    from services.errors import ErrorType, HoldNotActive
    from services.registry import PARTICIPANTS, participant
    from services.types import Frozen, HoldResult, HoldStatus
    from workflows.models import RETRY_COMPENSATION_SIGNAL, CheckoutRequest, CheckoutView
    from workflows.steps import LOCAL_RETRY_IN_TASK, Steps

CANCEL_SALE_WORKFLOW = "CancelSale"
RECORD_CALL = timedelta(seconds=10)
# Waiting for the saga's CONFIRMED to reach the record: it is written right after the confirm's answer.
RECORD_WAIT = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=10), maximum_attempts=0)
RETURN_RETRY_EVERY = timedelta(hours=1)
T = TypeVar("T")
# Under this patch the record's activities run as local activities (when the input asks for them): each regular one
# was a round trip through the task queue and a workflow task more. Asked first thing, in the first workflow task,
# where every replay asks it (workflows/checkout_saga.py says why that matters); histories without its marker run
# them as activity tasks, as they were recorded.
LOCAL_PATCH = "cancel-sale-local-records"


def workflow_id(checkout_id: str, parts: list[str]) -> str:
    """One cancellation's id: the checkout and which parts (sorted; none = the whole sale)."""
    return f"cancel-sale:{checkout_id}:{','.join(sorted(set(parts))) or '*'}"


class CancelSaleInput(Frozen):
    checkout_id: str
    # Participant names; empty: every part still sold.
    parts: list[str] = []
    task_queues: dict[str, str] = {}
    local_participants: list[str] = []
    # The view the API saw (the saga's, when it still exists): written as the record if there is none yet.
    view: dict[str, Any] | None = None
    # The record's reads and writes as local activities (LOCAL_PATCH); off: activity tasks of their own, each
    # listed with its attempts in the Temporal UI (settings.cancel_sale_local_activities).
    local_records: bool = True


class ClosedWindow(Frozen):
    part: str  # the checkout-body field
    until: datetime


class CancelSaleResult(Frozen):
    view: dict[str, Any]
    # Not empty: the cancellation was refused, nothing was returned.
    closed: list[ClosedWindow] = []


@workflow.defn(name=CANCEL_SALE_WORKFLOW)
class CancelSale:
    def __init__(self) -> None:
        self._retry_requested = False
        self._local = False

    @workflow.run
    async def run(self, params: CancelSaleInput) -> CancelSaleResult:
        self._local = params.local_records and workflow.patched(LOCAL_PATCH)
        record = await self._record(params)
        view = CheckoutView.model_validate(record.view)
        sold = {h.service for h in view.holds if h.status == HoldStatus.CONFIRMED}
        parts = [p for p in (params.parts or sorted(sold)) if p in sold]
        if not parts:  # everything asked for was returned already: the same answer again
            return CancelSaleResult(view=record.view)
        request = CheckoutRequest.model_validate(record.request) if record.request else None
        confirmed_at = next((c.at for c in reversed(view.history) if c.status.value == "CONFIRMED"), workflow.now())
        if request is not None:
            closed = await self._closed_windows(params.checkout_id, parts, record.request or {}, confirmed_at)
            if closed:
                return CancelSaleResult(view=record.view, closed=closed)
        requests: dict[str, Frozen] = {p.name: part for p, part in request.parts()} if request else {}
        steps = Steps(params.checkout_id, requests, params.task_queues, frozenset(params.local_participants))
        returned = await self._return_all(steps, [p for p in parts if participant(p).inventory], params.checkout_id)
        returned |= await self._refund_payments(steps, view, sold, parts, params.checkout_id)
        what = "sale cancelled" if set(parts) == sold else "part cancelled: " + ", ".join(_fields(parts))
        final = await self._mark(MarkParts(
            checkout_id=params.checkout_id, holds={s: h.model_dump(mode="json") for s, h in returned.items()},
            at=workflow.now(), reason=what,
        ))
        return CancelSaleResult(view=final.view if final is not None else record.view)

    @workflow.signal(name=RETRY_COMPENSATION_SIGNAL)
    def retry(self) -> None:
        """Operator: the cause of a failing return is fixed, try again now."""
        self._retry_requested = True

    async def _record(self, params: CancelSaleInput) -> BookingRecord:
        """The record once it shows the sale (the saga writes CONFIRMED just after answering the confirm)."""
        if params.view is not None:  # no record yet (a checkout from before records): the API's view is one
            given = CheckoutView.model_validate(params.view)
            await self._call(
                RECORD_ACTIVITY,
                RecordInput(checkout_id=given.checkout_id, customer_id=given.customer_id, status=given.status.value,
                            version=len(given.history), view=params.view),
                bool, "record the checkout as the API saw it",
            )
        while True:
            record: BookingRecord | None = await self._call(
                LOAD_ACTIVITY, params.checkout_id, BookingRecord | None, "read the booking record",  # type: ignore[arg-type]
            )
            if record is not None and record.status not in ("PENDING", "HELD"):
                return record
            await workflow.sleep(timedelta(seconds=1), summary="wait for the sale in the record")

    async def _closed_windows(
        self, checkout_id: str, parts: list[str], request: dict[str, Any], confirmed_at: datetime
    ) -> list[ClosedWindow]:
        # The activity judges the windows by its clock (the answer is recorded: replays see the same).
        closed: dict[str, datetime] = await self._call(
            DEADLINES_ACTIVITY, DeadlinesInput(checkout_id=checkout_id, parts=parts, request=request,
                                               confirmed_at=confirmed_at),
            dict[str, datetime], "cancellation windows",
        )
        return [ClosedWindow(part=_fields([part])[0], until=until) for part, until in sorted(closed.items())]

    async def _return_all(self, steps: Steps, parts: list[str], checkout_id: str) -> dict[str, HoldResult]:
        """Every part given back; a part that keeps failing puts the record in NEEDS_ATTENTION until it is."""
        returned: dict[str, HoldResult] = {}
        while True:
            todo = [p for p in parts if p not in returned]
            outcomes = await asyncio.gather(*(steps.return_sale(p) for p in todo), return_exceptions=True)
            errors: list[str] = []
            for part, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, HoldResult):
                    returned[part] = outcome
                elif _not_sold(outcome):  # nothing sold under this key: nothing to give back
                    returned[part] = HoldResult(hold_key=steps.hold_key(part), service=part,
                                                status=_status_of(outcome))
                else:
                    errors.append(f"{part}: {outcome}")
            if not errors:
                return returned
            error = "return failed: " + "; ".join(errors)
            await self._mark(MarkParts(
                checkout_id=checkout_id, holds={s: h.model_dump(mode="json") for s, h in returned.items()},
                at=workflow.now(), reason=error, status="NEEDS_ATTENTION", error=error,
            ))
            await self._until_retry("retry the return")

    async def _refund_payments(
        self, steps: Steps, view: CheckoutView, sold: set[str], parts: list[str], checkout_id: str
    ) -> dict[str, HoldResult]:
        """What a payment captured for the parts given back, refunded by a key of those parts (a repeated
        cancellation refunds nothing twice). When no inventory is left sold, all that is left of the capture is
        refunded and the payment's hold counts as RETURNED (the checkout is then CANCELLED)."""
        holds = {h.service: h for h in view.holds}
        returning = {p for p in parts if participant(p).inventory}
        everything = {s for s in sold if participant(s).inventory} <= returning
        refunded: dict[str, HoldResult] = {}
        for payer in sorted(s for s in sold if participant(s).refunds):
            if everything:
                key, amount = f"{steps.hold_key(payer)}:refund:cancel", None
            else:
                key = f"{steps.hold_key(payer)}:refund:{','.join(sorted(returning))}"
                amount = sum(line.amount or 0 for part in returning for line in holds[part].lines)
            while True:
                try:
                    await steps.refund(payer, key, amount)
                    break
                except ActivityError as error:
                    failure = f"refund failed: {payer}: {error.cause or error}"
                await self._mark(MarkParts(checkout_id=checkout_id, holds={}, at=workflow.now(), reason=failure,
                                           status="NEEDS_ATTENTION", error=failure))
                await self._until_retry("retry the refund")
            if everything:
                refunded[payer] = holds[payer].model_copy(update={"status": HoldStatus.RETURNED})
        return refunded

    async def _until_retry(self, summary: str) -> None:
        """Until the operator's `retry_compensation` signal, or RETURN_RETRY_EVERY without one."""
        self._retry_requested = False
        try:
            await workflow.wait_condition(lambda: self._retry_requested, timeout=RETURN_RETRY_EVERY,
                                          timeout_summary=summary)
        except TimeoutError:
            pass

    async def _mark(self, change: MarkParts) -> BookingRecord | None:
        result: BookingRecord | None = await self._call(
            MARK_ACTIVITY, change, BookingRecord | None, change.reason,  # type: ignore[arg-type]
        )
        return result

    async def _call(self, name: str, argument: object, result_type: type[T], summary: str) -> T:
        """One of the record's activities (services/bookings), retried until the database answers: local under
        LOCAL_PATCH, an activity task on the workflow's own queue before it."""
        if self._local:
            return await workflow.execute_local_activity(
                name, argument, result_type=result_type, start_to_close_timeout=RECORD_CALL,
                retry_policy=RECORD_WAIT, summary=summary, local_retry_threshold=LOCAL_RETRY_IN_TASK,
            )
        return await workflow.execute_activity(
            name, argument, result_type=result_type, start_to_close_timeout=RECORD_CALL, retry_policy=RECORD_WAIT,
            summary=summary,
        )


def _fields(parts: list[str]) -> list[str]:
    """Participant names -> their checkout-body fields (what the customer calls the parts)."""
    by_name = {p.name: p.field for p in PARTICIPANTS}
    return [by_name.get(part, part) for part in parts]


def _not_sold(error: BaseException) -> bool:
    """The ledger answered HoldNotActive (read back through services/errors.py): nothing sold under this key."""
    kind, _ = ledger_failure(error)
    return kind == ErrorType.HOLD_NOT_ACTIVE


def _status_of(error: BaseException) -> HoldStatus:
    _, failure = ledger_failure(error)
    if isinstance(failure, HoldNotActive) and failure.status is not None:
        return failure.status
    return HoldStatus.RELEASED
