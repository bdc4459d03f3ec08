"""The saga's calls to the service activities, with their timeouts and retry policies in one place.

Retry policies (why): hold, confirm and extend retry transient failures (Busy: a lock timeout, the database
unreachable) with backoff and stop at once on a business error, which the activity raises as non-retryable.
release is a compensation: it must eventually succeed, so it retries without an attempt limit; if it still
fails after RELEASE_PATIENCE the saga reports NEEDS_ATTENTION and tries again (see compensation.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.models import ExtendHoldInput, HoldInput, activity_name
    from services.protocol import ServiceRequest
    from services.types import Alternative, HoldResult, ServiceName
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


class Steps:
    """Activity calls for one checkout: knows the hold keys, task queues and what each service was asked."""

    def __init__(self, checkout_id: str, requests: dict[ServiceName, ServiceRequest], task_queues: dict[str, str]):
        self.checkout_id = checkout_id
        self.requests = requests
        self.task_queues = task_queues

    def hold_key(self, service: ServiceName) -> str:
        return f"{self.checkout_id}:{service}"

    def _queue(self, service: ServiceName) -> str:
        return self.task_queues.get(service, service)

    def _summary(self, operation: str, service: ServiceName) -> str:
        return activity_summary(operation, service, self.requests[service])

    async def hold(self, service: ServiceName, expires_at: datetime) -> HoldResult:
        return await workflow.execute_activity(
            activity_name(service, "hold"),
            HoldInput(hold_key=self.hold_key(service), request=self.requests[service], expires_at=expires_at),
            result_type=HoldResult, task_queue=self._queue(service), start_to_close_timeout=ATTEMPT_TIMEOUT,
            retry_policy=_TRANSIENT, summary=self._summary("hold", service),
            # When another hold fails first the saga stops waiting for this one (it does not ask the server to
            # cancel it): its release is registered already, and the ledger refuses it if it lands later.
            cancellation_type=ActivityCancellationType.ABANDON,
        )

    async def confirm(self, service: ServiceName) -> HoldResult:
        return await workflow.execute_activity(
            activity_name(service, "confirm"), self.hold_key(service),
            result_type=HoldResult, task_queue=self._queue(service), start_to_close_timeout=ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=CONFIRM_PATIENCE, retry_policy=_UNTIL_DONE,
            summary=self._summary("confirm", service),
        )

    async def release(self, service: ServiceName) -> HoldResult:
        return await workflow.execute_activity(
            activity_name(service, "release"), self.hold_key(service),
            result_type=HoldResult, task_queue=self._queue(service), start_to_close_timeout=ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=RELEASE_PATIENCE, retry_policy=_UNTIL_DONE,
            summary=self._summary("release", service),
        )

    async def extend(self, service: ServiceName, expires_at: datetime) -> HoldResult:
        return await workflow.execute_activity(
            activity_name(service, "extend"), ExtendHoldInput(hold_key=self.hold_key(service), expires_at=expires_at),
            result_type=HoldResult, task_queue=self._queue(service), start_to_close_timeout=ATTEMPT_TIMEOUT,
            retry_policy=_TRANSIENT, summary=self._summary("extend", service),
        )

    async def alternatives(self, service: ServiceName) -> list[Alternative]:
        return await workflow.execute_activity(
            activity_name(service, "alternatives"), self.requests[service],
            result_type=list[Alternative], task_queue=self._queue(service), start_to_close_timeout=ATTEMPT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3), summary=self._summary("alternatives for", service),
        )
