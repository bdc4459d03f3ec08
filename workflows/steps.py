"""The saga's calls to the service activities, with their timeouts and retry policies in one place.

Retry policies (why): hold, confirm and extend retry transient failures (Busy: a lock timeout, the database
unreachable) with backoff and stop at once on a business error, which the activity raises as non-retryable.
release is a compensation: it must eventually succeed, so it retries without an attempt limit; if it still
fails after RELEASE_PATIENCE the saga reports NEEDS_ATTENTION and tries again (see compensation.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.models import REFUND, DeclineInput, ExtendHoldInput, HoldInput, RefundInput, activity_name
    from services.types import Alternative, Frozen, HoldResult, RefundResult, Shortage
    from workflows.summaries import activity_summary

ATTEMPT_TIMEOUT = timedelta(seconds=10)
_TRANSIENT = RetryPolicy(
    initial_interval=timedelta(milliseconds=500), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
_UNTIL_DONE = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
# How long one round of release retries lasts before operators are told (NEEDS_ATTENTION).
RELEASE_PATIENCE = timedelta(minutes=5)
# Confirm also keeps trying transient failures for a while: giving up means a FAILED checkout.
CONFIRM_PATIENCE = timedelta(minutes=5)
# A local activity's retries are bounded too (the workflow task heartbeats meanwhile), then the saga rolls back.
LOCAL_PATIENCE = timedelta(minutes=1)
# A local activity's retries wait inside the workflow task up to this long, then as durable timers: the task (and
# with it queries, updates and the checkout's other work) is never held for a long backoff.
LOCAL_RETRY_IN_TASK = timedelta(seconds=1)
T = TypeVar("T")


class Steps:
    """Activity calls for one checkout: knows the hold keys, task queues, placements and what each participant
    was asked.

    A `local` participant's operations run as local activities in the checkout worker (no task-queue round trip,
    no activity events in the history: the fastest first answer); a remote one's on its own task queue. Both
    keep the same timeouts and retry policies, and the ledger's idempotency by hold key makes a local activity
    that is run again (a worker crash before its result was recorded) move stock once.
    """

    def __init__(
        self, checkout_id: str, requests: dict[str, Frozen], task_queues: dict[str, str],
        local: frozenset[str] = frozenset(),
    ):
        self.checkout_id = checkout_id
        self.requests = requests
        self.task_queues = task_queues
        self.local = local

    def hold_key(self, service: str) -> str:
        return f"{self.checkout_id}:{service}"

    def _summary(self, operation: str, service: str) -> str:
        if service not in self.requests:  # a cancellation of a checkout recorded without its request
            return f"{operation} {service}"
        return activity_summary(operation, service, self.requests[service])

    async def _run(
        self, service: str, operation: str, argument: object, result_type: type[T], *,
        retry_policy: RetryPolicy, schedule_to_close: timedelta | None = None,
        cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
        summary: str | None = None,
    ) -> T:
        name = activity_name(service, operation)
        summary = summary or self._summary(operation, service)
        if service in self.local:
            return await workflow.execute_local_activity(
                name, argument, result_type=result_type, start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=schedule_to_close or LOCAL_PATIENCE, retry_policy=retry_policy,
                cancellation_type=cancellation_type, summary=summary, local_retry_threshold=LOCAL_RETRY_IN_TASK,
            )
        return await workflow.execute_activity(
            name, argument, result_type=result_type, task_queue=self.task_queues.get(service, service),
            start_to_close_timeout=ATTEMPT_TIMEOUT, schedule_to_close_timeout=schedule_to_close,
            retry_policy=retry_policy, cancellation_type=cancellation_type, summary=summary,
        )

    async def hold(self, service: str, expires_at: datetime) -> HoldResult:
        return await self._run(
            service, "hold",
            HoldInput(hold_key=self.hold_key(service), request=self.requests[service], expires_at=expires_at),
            HoldResult, retry_policy=_TRANSIENT,
            # When another hold fails first the saga stops waiting for this one (it does not ask the server to
            # cancel it): its release is registered already, and the ledger refuses it if it lands later.
            cancellation_type=ActivityCancellationType.ABANDON,
        )

    async def confirm(self, service: str) -> HoldResult:
        return await self._run(
            service, "confirm", self.hold_key(service), HoldResult, retry_policy=_UNTIL_DONE,
            schedule_to_close=CONFIRM_PATIENCE,
        )

    async def release(self, service: str) -> HoldResult:
        return await self._run(
            service, "release", self.hold_key(service), HoldResult, retry_policy=_UNTIL_DONE,
            schedule_to_close=RELEASE_PATIENCE,
        )

    async def decline(self, service: str, shortage: Shortage) -> HoldResult:
        """A release that records why (the ledger's key REJECTED with `shortage`); retried like a release."""
        return await self._run(
            service, "decline", DeclineInput(hold_key=self.hold_key(service), shortage=shortage), HoldResult,
            retry_policy=_UNTIL_DONE, schedule_to_close=RELEASE_PATIENCE,
        )

    async def refund(self, service: str, refund_key: str, amount: int | None = None) -> RefundResult:
        """Give back what `service` captured (a payment), once per `refund_key`; like release, it must succeed."""
        return await self._run(
            service, REFUND, RefundInput(hold_key=self.hold_key(service), refund_key=refund_key, amount=amount),
            RefundResult, retry_policy=_UNTIL_DONE, schedule_to_close=RELEASE_PATIENCE,
        )

    async def return_sale(self, service: str) -> HoldResult:
        """A cancelled sale's part given back: retried like a release (it must eventually happen)."""
        return await self._run(
            service, "return_sale", self.hold_key(service), HoldResult, retry_policy=_UNTIL_DONE,
            schedule_to_close=RELEASE_PATIENCE,
        )

    async def extend(self, service: str, expires_at: datetime) -> HoldResult:
        return await self._run(
            service, "extend", ExtendHoldInput(hold_key=self.hold_key(service), expires_at=expires_at), HoldResult,
            retry_policy=_TRANSIENT,
        )

    async def alternatives(self, service: str) -> list[Alternative]:
        return await self._run(
            service, "alternatives", self.requests[service], list[Alternative],
            retry_policy=RetryPolicy(maximum_attempts=3), summary=self._summary("alternatives for", service),
        )
