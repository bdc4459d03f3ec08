"""CheckoutSaga: hold in every service at once, then confirm, cancel or let the holds expire.

The shape follows the samples' booking saga: a compensation (release) is registered before each hold is
attempted, and compensations run detached from workflow cancellation, so nothing stays held behind a
cancelled or failed checkout. Business rules live in services/; this class only sequences them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.errors import ErrorType
    from services.registry import participant
    from services.types import Alternative, Frozen, HoldResult, HoldStatus, Shortage
    from workflows.compensation import Compensations
    from workflows.models import (
        CANCEL,
        CONFIRM,
        EXTEND,
        EXTEND_REFUSED,
        FINAL_STATUSES,
        RELEASE_CLAIM,
        RETRY_COMPENSATION_SIGNAL,
        STATE_QUERY,
        SUBMIT,
        UPDATE_REFUSED,
        WORKFLOW_NAME,
        CheckoutInput,
        CheckoutStatus,
        CheckoutView,
        ExtendInput,
    )
    from workflows.state import CheckoutState
    from workflows.steps import Steps

Decision = Literal["confirm", "cancel", "expire"]
T = TypeVar("T")

# Patch ids (workflow.patched): histories recorded before a change keep replaying the old way.
HOLD_CLOCK_PATCH = "hold-clock-starts-when-held"
CLAIMS_PATCH = "release-customer-claim"
# How much later than the customer's expiry the ledgers are told: room for the holds' placement to be slow.
PLACEMENT_SLACK = timedelta(seconds=60)
# A stuck compensation is retried this often even without an operator's signal.
COMPENSATION_RETRY_EVERY = timedelta(hours=1)
# Update handlers return once the saga has settled into one of these.
_SETTLED = FINAL_STATUSES | {CheckoutStatus.NEEDS_ATTENTION}


@workflow.defn(name=WORKFLOW_NAME)
class CheckoutSaga:
    @workflow.init
    def __init__(self, params: CheckoutInput) -> None:
        self._params = params
        self._state = CheckoutState(params)
        self._requests: dict[str, Frozen] = {p.name: part for p, part in params.request.parts()}
        self._steps = Steps(
            params.checkout_id, self._requests, params.task_queues, frozenset(params.local_participants)
        )
        self._compensations = Compensations()
        self._decision: Decision | None = None
        self._extending = 0
        self._retry_requested = False
        self._started_at: datetime = workflow.now()

    @workflow.run
    async def run(self, params: CheckoutInput) -> CheckoutView:
        self._state.start()
        try:
            await self._saga()
        except asyncio.CancelledError:
            # The workflow itself was cancelled (an operator). Work already under way was finished (detached);
            # if the checkout has not settled, release everything and end as cancelled.
            if self._state.status not in FINAL_STATUSES:
                await self._undo(CheckoutStatus.CANCELLED, "workflow cancelled by an operator")
                await _detached(self._release_claim())
                raise
        await self._release_claim()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state.view()

    # -- the saga ---------------------------------------------------------------------------------------------

    async def _saga(self) -> None:
        hold_for = timedelta(seconds=self._params.hold_seconds)
        # The customer's clock starts when the holds are placed (HELD), not when the saga starts: a saga whose
        # next workflow task waited (a worker died) must not answer HELD with an expiry already past. The ledger
        # is told a later expiry first (the sweeper must never expire a hold the saga still counts as HELD).
        clock_at_held = workflow.patched(HOLD_CLOCK_PATCH)
        ledger_expiry = workflow.now() + hold_for + (PLACEMENT_SLACK if clock_at_held else timedelta(0))
        failures = await self._place_holds(ledger_expiry)
        if self._decision == "cancel":
            await self._undo(CheckoutStatus.CANCELLED, "cancelled before the holds were placed")
            return
        if failures:
            await self._reject(failures)
            return
        expires_at = ledger_expiry
        if clock_at_held:
            expires_at = workflow.now() + hold_for
            if expires_at > ledger_expiry:  # placing took longer than the slack: push the ledgers out first
                await self._extend_ledgers(expires_at)
        self._state.expires_at = expires_at
        self._state.move_to(CheckoutStatus.HELD, "every service holds the request")
        decision = await self._await_decision()
        if decision == "confirm":
            await _detached(self._confirm_all())
        elif decision == "cancel":
            await self._undo(CheckoutStatus.CANCELLED, "cancelled by the customer")
        else:
            await self._undo(CheckoutStatus.EXPIRED, "not confirmed before expires_at")

    async def _place_holds(self, expires_at: datetime) -> dict[str, BaseException]:
        """Hold in every service in parallel; stop waiting at the first failure (or a cancel) and cancel the rest:
        their compensations are registered already, so whatever they did is released."""
        tasks = {service: asyncio.create_task(self._hold(service, expires_at)) for service in self._requests}

        def settled() -> bool:
            return self._decision == "cancel" or all(t.done() for t in tasks.values()) or any(
                _failed(t) for t in tasks.values()
            )

        abandoned: set[str] = set()
        try:
            await workflow.wait_condition(settled)
        finally:
            for service, task in tasks.items():
                if not task.done():
                    abandoned.add(service)
                    task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        failures: dict[str, BaseException] = {}
        for service, task in tasks.items():
            if service in abandoned or task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                failures[service] = error
            else:
                self._state.holds[service] = task.result()
        return failures

    async def _hold(self, service: str, expires_at: datetime) -> HoldResult:
        self._compensations.register(service)  # before the call: see compensation.py
        return await self._steps.hold(service, expires_at)

    async def _reject(self, failures: dict[str, BaseException]) -> None:
        shortages, errors = self._classify(failures)
        self._state.unavailable = [shortage for found in shortages.values() for shortage in found]
        # Anything but a shortage (a timeout, a bad request) is not the customer's answer but a failure.
        status = CheckoutStatus.FAILED if errors else CheckoutStatus.REJECTED
        if errors:
            self._state.error = "; ".join(errors)

        async def roll_back() -> None:
            alternatives, _ = await asyncio.gather(self._alternatives(list(shortages)), self._compensate())
            self._state.alternatives = alternatives
            short = ", ".join(s.resource for s in self._state.unavailable)
            reason = f"not available: {short}" if short else "hold failed"
            self._state.move_to(status, reason)

        await _detached(roll_back())

    def _classify(
        self, failures: dict[str, BaseException]
    ) -> tuple[dict[str, list[Shortage]], list[str]]:
        """Shortages per service (the customer's answer: REJECTED) apart from anything else (FAILED)."""
        shortages: dict[str, list[Shortage]] = {}
        errors: list[str] = []
        released: list[str] = []
        for service, error in failures.items():
            # A remote activity's failure arrives as ActivityError(cause=ApplicationError); a local activity's as the
            # ApplicationError itself.
            cause = error.cause if isinstance(error, ActivityError) else error
            if isinstance(cause, ApplicationError) and cause.type == ErrorType.UNAVAILABLE and cause.details:
                shortages[service] = [Shortage.model_validate(item) for item in cause.details[0]]
            elif isinstance(cause, ApplicationError) and cause.type == ErrorType.UNKNOWN_RESOURCE and cause.details:
                resource = str(cause.details[0])
                requested = participant(service).requested(self._requests[service], resource)
                shortages[service] = [Shortage(resource=resource, requested=requested, available=0)]
            elif _already_released(error):
                # This saga's own compensation already released the key: an earlier run of this workflow task
                # (its local activities' results lost with the task: a worker crash, an update arriving meanwhile)
                # placed, refused and rolled back already. The refusal that caused it comes back as recorded.
                released.append(f"{service}: {error}")
            else:
                detail = f" ({cause})" if cause is not None and cause is not error else ""
                errors.append(f"{service}: {error}{detail}")
        if released and not shortages and not errors:
            errors = released  # released with no recorded reason: not the customer's answer
        return shortages, errors

    async def _alternatives(self, services: list[str]) -> list[Alternative]:
        """Best effort: a checkout is rejected with or without suggestions."""
        found: list[Alternative] = []
        for outcome in await asyncio.gather(*(self._steps.alternatives(s) for s in services), return_exceptions=True):
            if isinstance(outcome, list):
                found += outcome
        return found

    async def _await_decision(self) -> Decision:
        """Wait for confirm or cancel; the durable timer at expires_at decides otherwise. An extend moves the timer."""
        while self._decision is None:
            assert self._state.expires_at is not None
            seen = self._state.expires_at
            remaining = (seen - workflow.now()).total_seconds()
            if remaining <= 0:
                if self._extending:  # the ledgers are being pushed out: wait to see the new expires_at
                    await workflow.wait_condition(lambda: not self._extending)
                    continue
                self._decision = "expire"
                break
            try:
                await workflow.wait_condition(
                    lambda seen=seen: self._decision is not None or self._state.expires_at != seen,  # type: ignore[misc]
                    timeout=remaining, timeout_summary="hold expiry",
                )
            except TimeoutError:
                pass
        return self._decision

    async def _confirm_all(self) -> None:
        services = list(self._state.holds)
        outcomes = await asyncio.gather(*(self._steps.confirm(s) for s in services), return_exceptions=True)
        errors: list[str] = []
        for service, outcome in zip(services, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                errors.append(f"{service}: {outcome} ({outcome.__cause__})")
            else:
                self._state.holds[service] = outcome
                self._compensations.forget(service)  # a sale is not released
        if not errors:
            self._state.move_to(CheckoutStatus.CONFIRMED, "confirmed by the customer")
            return
        # Whatever did confirm stays sold (an operator refunds it); whatever did not is released.
        self._state.error = "confirm failed: " + "; ".join(errors)
        await self._compensate()
        self._state.move_to(CheckoutStatus.FAILED, self._state.error)

    async def _undo(self, status: CheckoutStatus, reason: str) -> None:
        async def release_then_settle() -> None:
            await self._compensate()
            self._state.move_to(status, reason)

        await _detached(release_then_settle())

    async def _compensate(self) -> None:
        """Release everything pending. A release that keeps failing never drops: NEEDS_ATTENTION, then retry on
        the operator's signal (or every COMPENSATION_RETRY_EVERY)."""
        while True:
            failures = await self._compensations.run(self._release)
            if not failures:
                if self._state.status == CheckoutStatus.NEEDS_ATTENTION:
                    self._state.error = None
                return
            self._state.error = "release failed: " + "; ".join(f"{s}: {why}" for s, why in failures.items())
            self._state.move_to(CheckoutStatus.NEEDS_ATTENTION, self._state.error)
            self._retry_requested = False
            try:
                await workflow.wait_condition(
                    lambda: self._retry_requested, timeout=COMPENSATION_RETRY_EVERY,
                    timeout_summary="retry compensation",
                )
            except TimeoutError:
                pass

    async def _release(self, service: str) -> None:
        self._state.holds[service] = await self._steps.release(service)

    # -- updates, query, signal ---------------------------------------------------------------------------------

    @workflow.update(name=SUBMIT)
    async def submit(self) -> CheckoutView:
        """Answer once the holds are placed (HELD) or rolled back (REJECTED / FAILED)."""
        await workflow.wait_condition(lambda: self._state.status != CheckoutStatus.PENDING)
        return self._state.view()

    @workflow.update(name=CONFIRM)
    async def confirm(self) -> CheckoutView:
        if self._decision is None:
            self._decision = "confirm"
        await workflow.wait_condition(lambda: self._state.status in _SETTLED)
        return self._state.view()

    @confirm.validator
    def _confirm_allowed(self) -> None:
        if self._state.status == CheckoutStatus.CONFIRMED or self._decision == "confirm":
            return  # repeatable
        if self._state.status != CheckoutStatus.HELD or self._decision is not None:
            raise _refused(f"checkout is {self._status_word()}: only a HELD checkout can be confirmed")

    @workflow.update(name=CANCEL)
    async def cancel(self) -> CheckoutView:
        if self._decision is None:
            self._decision = "cancel"
        await workflow.wait_condition(lambda: self._state.status in _SETTLED)
        return self._state.view()

    @cancel.validator
    def _cancel_allowed(self) -> None:
        if self._state.status == CheckoutStatus.CANCELLED or self._decision == "cancel":
            return  # repeatable
        if self._state.status == CheckoutStatus.CONFIRMED or self._decision == "confirm":
            raise _refused("checkout is CONFIRMED: it can no longer be cancelled")
        if self._state.status not in (CheckoutStatus.PENDING, CheckoutStatus.HELD) or self._decision is not None:
            raise _refused(f"checkout is {self._status_word()}: there is nothing to cancel")

    @workflow.update(name=EXTEND)
    async def extend(self, params: ExtendInput) -> CheckoutView:
        self._extending += 1
        try:
            assert self._state.expires_at is not None
            new_expiry = self._state.expires_at + timedelta(seconds=params.seconds)
            if new_expiry > self._latest_expiry():  # a concurrent extend got there first
                raise ApplicationError("the hold cannot be extended that far", type=EXTEND_REFUSED, non_retryable=True)
            # The ledgers first: the sweeper must never expire a hold the workflow still counts as HELD.
            await self._extend_ledgers(new_expiry)
            self._state.expires_at = max(self._state.expires_at, new_expiry)
            self._state.move_to(CheckoutStatus.HELD, f"extended by {params.seconds}s")
        finally:
            self._extending -= 1
        return self._state.view()

    @extend.validator
    def _extend_allowed(self, params: ExtendInput) -> None:
        if self._state.status != CheckoutStatus.HELD or self._decision is not None or self._state.expires_at is None:
            raise _refused(f"checkout is {self._status_word()}: only a HELD checkout can be extended")
        if workflow.now() >= self._state.expires_at:
            raise _refused("the hold has expired")
        if params.seconds > self._params.extend_max_seconds:
            raise ApplicationError(
                f"extend by at most {self._params.extend_max_seconds}s at a time", type=EXTEND_REFUSED,
                non_retryable=True,
            )
        if self._state.expires_at + timedelta(seconds=params.seconds) > self._latest_expiry():
            raise ApplicationError(
                f"a hold lasts at most {self._params.hold_lifetime_max_seconds}s from the checkout's start",
                type=EXTEND_REFUSED, non_retryable=True,
            )

    @workflow.query(name=STATE_QUERY)
    def state(self) -> CheckoutView:
        return self._state.view()

    @workflow.signal(name=RETRY_COMPENSATION_SIGNAL)
    def retry_compensation(self) -> None:
        """Operator: the cause of a failing release is fixed, try again now."""
        self._retry_requested = True

    async def _release_claim(self) -> None:
        """The checkout settled: it no longer counts against its customer's limits. Best effort: a claim left
        behind expires on its own (the sweeper)."""
        if not workflow.patched(CLAIMS_PATCH):
            return
        try:
            await workflow.execute_local_activity(
                RELEASE_CLAIM, self._params.checkout_id, result_type=bool,
                start_to_close_timeout=timedelta(seconds=10), schedule_to_close_timeout=timedelta(minutes=2),
                summary="release the customer's claim",
            )
        except ActivityError as error:
            workflow.logger.warning("claim of %s not released: %s", self._params.checkout_id, error)

    async def _extend_ledgers(self, expires_at: datetime) -> None:
        services = list(self._state.holds)
        extended = await asyncio.gather(*(self._steps.extend(s, expires_at) for s in services))
        self._state.holds.update(zip(services, extended, strict=True))

    def _latest_expiry(self) -> datetime:
        return self._started_at + timedelta(seconds=self._params.hold_lifetime_max_seconds)

    def _status_word(self) -> str:
        if self._decision == "expire" and self._state.status not in FINAL_STATUSES:
            return "EXPIRED"
        return self._state.status.value


def _refused(message: str) -> ApplicationError:
    return ApplicationError(message, type=UPDATE_REFUSED, non_retryable=True)


def _already_released(error: BaseException | None) -> bool:
    """A hold answered "already released": this saga's own compensation ran in an earlier run of the task."""
    cause = error.cause if isinstance(error, ActivityError) else error
    return (
        isinstance(cause, ApplicationError) and cause.type == ErrorType.HOLD_NOT_ACTIVE
        and bool(cause.details) and cause.details[0] in (HoldStatus.RELEASED, HoldStatus.EXPIRED)
    )


def _failed(task: asyncio.Task[Any]) -> bool:
    """A hold that failed for a reason of its own. "Already released" is not one: the saga waits for the others,
    whose recorded refusal is the reason (an earlier run of this task rolled back)."""
    if not task.done() or task.cancelled():
        return False
    error = task.exception()
    return error is not None and not _already_released(error)


async def _detached(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to completion even if the workflow is cancelled meanwhile (compensation must not stop half-way);
    the cancellation is delivered once the work is done."""
    task = asyncio.create_task(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.cancelled():
            raise
        await task
        raise
