"""CheckoutSaga: hold in every service at once, then confirm, cancel or let the holds expire.

Steps in order (participants' `stage`): the inventory (stage 0) holds in parallel; a participant of a later stage (a
payment) holds once every earlier one held, with its request derived from their holds (the total), or, when the API
quoted the total (QUOTE_PATCH), beside them with its request derived from the quote and checked against the holds once
they are placed; confirms go the other way (the payment captures, then the inventory confirms; an inventory confirm
failing after the capture refunds it, then FAILED). A checkout of stage-0 parts only runs exactly as before (patch
STAGES_PATCH).

The shape follows the samples' booking saga: a compensation (release) is registered before each hold is attempted, and
compensations run detached from workflow cancellation, so nothing stays held behind a cancelled or failed checkout.
Business rules live in services/; this class only sequences them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.adapter import ledger_failure, to_application_error
    from activities.models import RELEASE_CLAIM
    from services.bookings.models import RECORD_ACTIVITY, RecordInput
    from services.errors import Declined, ErrorType, HoldNotActive, LedgerError, Unavailable, UnknownResource
    from services.registry import participant
    from services.types import Alternative, Frozen, HoldResult, HoldStatus, Money, Shortage
    from workflows.compensation import Compensations
    from workflows.models import (
        CANCEL,
        CANCEL_PARTS,
        CONFIRM,
        EXTEND,
        EXTEND_REFUSED,
        FINAL_STATUSES,
        RETRY_COMPENSATION_SIGNAL,
        STATE_QUERY,
        SUBMIT,
        UPDATE_REFUSED,
        WORKFLOW_NAME,
        CancelPartsInput,
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
#
# A saga started under this code asks one patch (PATCHES_AT_START_QUOTED; PATCHES_AT_START before it), first thing in
# its first workflow task, and takes the new path of every patch below without asking it (`_patched`). Why:
# `workflow.patched` decides when it is first asked, and in replay it answers True only from the workflow task that
# holds its marker on. Some patches below are asked right after a local activity's result, and the worker can
# complete a task holding that result's marker before the code has seen the result (under load, after a task timed
# out). Replay hands the result over in the marker's task, one
# task early: the patch answers False there and its marker, later in the history, fails the run (nondeterminism).
# The first task holds no local activity's result, so this patch is asked where every replay asks it. Histories
# without its marker (sagas started before it) ask the old patches where they always did.
PATCHES_AT_START = "patches-asked-at-start"
HOLD_CLOCK_PATCH = "hold-clock-starts-when-held"
CLAIMS_PATCH = "release-customer-claim"
# A local activity's failure arrives as the failure itself (ApplicationError, TimeoutError), not as ActivityError:
# before this patch a claim release that failed failed the whole (already settled) saga.
CLAIM_FAILURE_PATCH = "claim-release-failure-logged"
STAGES_PATCH = "participant-stages"
RECORD_PATCH = "booking-record"
# A release that finds its hold sold gives the sale back. Only this saga confirms its keys, so such a sale came from
# a run of its own workflow task that the server never kept: a local activity (a confirm) runs before its task
# completes, and a server that restarts meanwhile loses the task and the update in it, after which the history
# can decide otherwise (the hold expires, the customer cancels). Before this patch that release failed for good
# (NEEDS_ATTENTION, with stock sold that no checkout owns).
UNRECORDED_SALE_PATCH = "unrecorded-sale-given-back"
# A paid checkout started with the API's quote of its total (CheckoutInput.quote) holds its later stages (the
# payment) beside the inventory, their requests derived from the quote, then checks them against the holds: one
# round of holds where the staged steps took two. Asked first thing (the first workflow task, as every replay asks
# it) and only for a saga given a quote: none recorded before it has one.
QUOTE_PATCH = "payment-beside-holds"
# A saga started under this code asks this patch instead of PATCHES_AT_START, first thing, and it stands for that one
# and QUOTE_PATCH too. Why: each patch the SDK records is a marker and an upsert of the TemporalChangeVersion search
# attribute (a visibility write in the server), so a paid checkout started with a quote recorded two of each in its
# first task; now every saga records one. Histories without its marker ask the two as they always did.
# Under it too, a later stage refused as repriced is declined (its key recorded REJECTED with the refusal, the
# activity `<participant>.decline`), not released: a run of the task again, its results lost, is refused for the same
# reason and the checkout is REJECTED, where a released key said nothing of why (FAILED).
PATCHES_AT_START_QUOTED = "patches-asked-at-start-quote-included"
# How much later than the customer's expiry the ledgers are told: room for the holds' placement to be slow.
PLACEMENT_SLACK = timedelta(seconds=60)
# A stuck compensation is retried this often even without an operator's signal.
COMPENSATION_RETRY_EVERY = timedelta(hours=1)
# A record write (a regular activity: see activities/bookings.py) retries until the database takes it.
RECORD_TIMEOUT = timedelta(seconds=10)
RECORD_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(seconds=30), maximum_attempts=0)
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
        # The checkout's parts grouped by stage, lowest first (one group: every part holds at once, as always).
        stages: dict[int, list[str]] = {}
        for part, _ in params.request.parts():
            stages.setdefault(part.stage, []).append(part.name)
        self._stages = [stages[stage] for stage in sorted(stages)]
        self._decision: Decision | None = None
        self._extending = 0
        self._retry_requested = False
        self._started_at: datetime = workflow.now()
        # History entries the booking record holds (services/bookings): its version.
        self._recorded = 0
        # Parts being released by `cancel_parts` right now (a confirm waits for none).
        self._parts_in_flight = 0
        # PATCHES_AT_START (or PATCHES_AT_START_QUOTED) recorded: every later patch takes its new path unasked (set
        # first thing in `run`).
        self._patches_at_start = False
        # Every stage holds at once, the later ones from the quote (QUOTE_PATCH; set first thing in `run`).
        self._quoted = False
        # PATCHES_AT_START_QUOTED recorded (set first thing in `run`).
        self._quote_at_start = False
        # Holds this saga refuses after placing them, and why: compensated by a decline, not a release.
        self._declines: dict[str, Shortage] = {}

    @workflow.run
    async def run(self, params: CheckoutInput) -> CheckoutView:
        self._quote_at_start = workflow.patched(PATCHES_AT_START_QUOTED)
        self._patches_at_start = self._quote_at_start or workflow.patched(PATCHES_AT_START)
        self._quoted = params.quote is not None and len(self._stages) > 1 and (
            self._quote_at_start or workflow.patched(QUOTE_PATCH))
        self._state.start(self._patched)
        recorder = asyncio.create_task(self._keep_record()) if self._patched(RECORD_PATCH) else None
        try:
            await self._saga()
        except asyncio.CancelledError:
            # The workflow itself was cancelled (an operator). Work already under way was finished (detached);
            # if the checkout has not settled, release everything and end as cancelled.
            if self._state.status not in FINAL_STATUSES:
                await self._undo(CheckoutStatus.CANCELLED, "workflow cancelled by an operator")
                await _detached(self._release_claim())
                if recorder is not None:
                    await _detached(self._record_written(recorder))
                raise
        await self._release_claim()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if recorder is not None:
            await self._record_written(recorder)
        return self._state.view()

    def _patched(self, patch_id: str) -> bool:
        """`workflow.patched(patch_id)` for a saga started before PATCHES_AT_START; True for one started under it or
        PATCHES_AT_START_QUOTED."""
        return self._patches_at_start or workflow.patched(patch_id)

    # -- the booking record -------------------------------------------------------------------------------------

    async def _keep_record(self) -> None:
        """Write the record after each status change (from HELD or the first answer on), one write at a time,
        the newest view each time: writes that fall behind coalesce, and the record refuses an older version."""
        while True:
            await workflow.wait_condition(
                lambda: self._state.status != CheckoutStatus.PENDING and len(self._state.history) > self._recorded
            )
            view = self._state.view()
            await workflow.execute_activity(
                RECORD_ACTIVITY,
                RecordInput(
                    checkout_id=view.checkout_id, customer_id=view.customer_id, status=view.status.value,
                    version=len(view.history), view=view.model_dump(mode="json"),
                    request=self._params.request.model_dump(mode="json"), first_write=self._recorded == 0,
                ),
                result_type=bool, start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY,
                summary=f"record {view.status.value}",
            )
            self._recorded = len(view.history)

    async def _record_written(self, recorder: asyncio.Task[None]) -> None:
        """Before the workflow closes: its last view is in the record (a deleted workflow leaves it behind)."""
        await workflow.wait_condition(lambda: self._recorded >= len(self._state.history))
        recorder.cancel()

    # -- the saga ---------------------------------------------------------------------------------------------

    async def _saga(self) -> None:
        hold_for = timedelta(seconds=self._params.hold_seconds)
        # The customer's clock starts when the holds are placed (HELD), not when the saga starts: a saga whose
        # next workflow task waited (a worker died) must not answer HELD with an expiry already past. The ledger
        # is told a later expiry first (the sweeper must never expire a hold the saga still counts as HELD).
        clock_at_held = self._patched(HOLD_CLOCK_PATCH)
        ledger_expiry = workflow.now() + hold_for + (PLACEMENT_SLACK if clock_at_held else timedelta(0))
        failures = await self._place_stages(ledger_expiry)
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

    def _staged(self) -> bool:
        """Parts in more than one stage (a payment): the ordered steps. Asked only then, so a checkout of
        inventory parts alone records no marker and runs as it always did."""
        return len(self._stages) > 1 and self._patched(STAGES_PATCH)

    async def _place_stages(self, expires_at: datetime) -> dict[str, BaseException]:
        """Hold stage by stage: a later stage only once every earlier one held, its request derived from their
        holds (Participant.derive). The first failure (or a cancel) stops the steps."""
        if self._quoted:
            return await self._place_quoted(expires_at)
        if not self._staged():
            return await self._place_holds(expires_at)
        failures: dict[str, BaseException] = {}
        for number, services in enumerate(self._stages):
            if number > 0:
                failures = self._derive(services)
                if failures:
                    return failures
            failures = await self._place_holds(expires_at, services)
            if failures and all(_already_released(error) for error in failures.values()):
                # An earlier run of this workflow task (its results lost with it) rolled back already, for a
                # reason a later stage recorded: ask it (its ledger answers a known key as recorded, whatever the
                # request), so a decline stays the customer's answer.
                for later in self._stages[number + 1 :]:
                    failures |= await self._place_holds(expires_at, later)
                return failures
            if failures or self._decision == "cancel":
                return failures
        return failures

    async def _place_quoted(self, expires_at: datetime) -> dict[str, BaseException]:
        """Every stage at once, the later stages' requests derived from the quote; once all held, each of those
        derived again from the holds: one that differs (a price changed after the API's reading) is refused
        (Participant.repriced), so nothing is ever authorized but the held lines' total."""
        later = [service for services in self._stages[1:] for service in services]
        asked = {service: self._requests[service] for service in later}
        failures = self._derive(later, self._params.quote)
        if failures:
            return failures
        quoted = {service: self._requests[service] for service in later}
        failures = await self._place_holds(expires_at)
        if failures or self._decision == "cancel":
            return failures
        holds = {s: hold for s, hold in self._state.holds.items() if s not in quoted}
        for service, request in quoted.items():
            try:
                again = participant(service).derive(asked[service], self._params.request.customer_id, holds)
            except LedgerError as error:
                failures[service] = to_application_error(error)
                continue
            if again != request:
                refusal = participant(service).repriced(request, again)
                failures[service] = to_application_error(refusal)
                if self._quote_at_start:
                    self._declines[service] = refusal.shortage
        return failures

    def _derive(self, services: list[str], quote: Money | None = None) -> dict[str, BaseException]:
        """Each later-stage part's request from the holds placed so far, or from the `quote`; a refusal (Declined)
        is its failure."""
        failures: dict[str, BaseException] = {}
        holds, customer = dict(self._state.holds), self._params.request.customer_id
        for service in services:
            part, request = participant(service), self._requests[service]
            try:
                self._requests[service] = (part.derive(request, customer, holds) if quote is None
                                           else part.derive_quoted(request, customer, quote))
            except LedgerError as error:
                failures[service] = to_application_error(error)
        return failures

    async def _place_holds(
        self, expires_at: datetime, services: list[str] | None = None
    ) -> dict[str, BaseException]:
        """Hold in every service (of `services`) in parallel; stop waiting at the first failure (or a cancel) and
        cancel the rest: their compensations are registered already, so whatever they did is released."""
        wanted = list(self._requests) if services is None else services
        tasks = {service: asyncio.create_task(self._hold(service, expires_at)) for service in wanted}

        def settled() -> bool:
            return self._decision == "cancel" or all(t.done() for t in tasks.values()) or any(
                _failed(t) for t in tasks.values()
            )

        abandoned: set[str] = set()
        try:
            await workflow.wait_condition(settled)
        finally:
            abandoned = {service for service, task in tasks.items() if not task.done()}
            running_on: set[str] = set()
            for service in abandoned:
                if service in self._steps.local:
                    tasks[service].cancel()
                else:
                    # A hold on a participant's queue still out is left to finish on its own, never cancelled:
                    # cancelling it (ABANDON sends no command) leaves the SDK's activity machine in Canceled, and
                    # the activity's failure arriving after that (its ledger was short too) is an invalid
                    # transition that fails every later workflow task of the saga. Left running, it resolves its
                    # task and the outcome is dropped; no command differs, so recorded histories replay as before.
                    running_on.add(service)
                    tasks[service].add_done_callback(_outcome_dropped)
            await asyncio.gather(*(task for service, task in tasks.items() if service not in running_on),
                                 return_exceptions=True)
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
        self._state.unavailable += self._declined(failures)
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

    @staticmethod
    def _declined(failures: dict[str, BaseException]) -> list[Shortage]:
        """What participants of another kind declined (a payment): the customer's answer, not a failure."""
        found: list[Shortage] = []
        for error in failures.values():
            _, failure = ledger_failure(error)
            if isinstance(failure, Declined):
                found.append(failure.shortage)
        return found

    def _classify(
        self, failures: dict[str, BaseException]
    ) -> tuple[dict[str, list[Shortage]], list[str]]:
        """Shortages per service (the customer's answer: REJECTED) apart from anything else (FAILED). Each failure
        is read back through the error table (services/errors.py, via activities/adapter.py `ledger_failure`)."""
        shortages: dict[str, list[Shortage]] = {}
        errors: list[str] = []
        released: list[str] = []
        declined = False
        for service, error in failures.items():
            kind, failure = ledger_failure(error)
            if isinstance(failure, Unavailable):
                shortages[service] = failure.shortages
            elif isinstance(failure, UnknownResource):
                resource = failure.resource
                requested = participant(service).requested(self._requests[service], resource)
                shortages[service] = [Shortage(resource=resource, requested=requested, available=0)]
            elif kind == ErrorType.DECLINED:
                declined = True  # the customer's answer (REJECTED), listed by _declined
            elif _already_released(error):
                # This saga's own compensation already released the key: an earlier run of this workflow task
                # (its local activities' results lost with the task: a worker crash, an update arriving meanwhile)
                # placed, refused and rolled back already. The refusal that caused it comes back as recorded.
                released.append(f"{service}: {error}")
            else:
                cause = error.cause if isinstance(error, ActivityError) else error
                detail = f" ({cause})" if cause is not None and cause is not error else ""
                errors.append(f"{service}: {error}{detail}")
        if released and not shortages and not errors and not declined:
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
        if self._staged():
            await self._confirm_stages()
            return
        # Only what is still held: a part cancelled while HELD (cancel_parts) is released, not sold.
        services = [s for s, hold in self._state.holds.items() if hold.status == HoldStatus.ACTIVE]
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

    async def _confirm_stages(self) -> None:
        """The highest stage first (a payment captures), then the next: each stage in parallel. A stage failing
        stops the confirms: what an earlier step captured is refunded (`refunds` participants), what was not
        confirmed is released, and the checkout is FAILED. Inventory that did confirm stays sold, as ever."""
        confirmed: list[str] = []
        for services in reversed(self._stages):
            # Only what is still held: a part cancelled while HELD (cancel_parts) is released, not sold.
            held = [s for s in services if s in self._state.holds and self._state.holds[s].status == HoldStatus.ACTIVE]
            outcomes = await asyncio.gather(*(self._steps.confirm(s) for s in held), return_exceptions=True)
            errors: list[str] = []
            for service, outcome in zip(held, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    errors.append(f"{service}: {outcome} ({outcome.__cause__})")
                else:
                    self._state.holds[service] = outcome
                    self._compensations.forget(service)
                    confirmed.append(service)
            if errors:
                self._state.error = "confirm failed: " + "; ".join(errors)
                for service in confirmed:
                    if participant(service).refunds:
                        await self._refund(service, f"{self._steps.hold_key(service)}:refund:confirm-failed")
                await self._compensate()
                self._state.move_to(CheckoutStatus.FAILED, self._state.error)
                return
        self._state.move_to(CheckoutStatus.CONFIRMED, "confirmed by the customer")

    async def _refund(self, service: str, refund_key: str) -> None:
        """Give back all that `service` captured. Like a release it never drops: NEEDS_ATTENTION, then retry on
        the operator's signal (or every COMPENSATION_RETRY_EVERY)."""
        while True:
            try:
                await self._steps.refund(service, refund_key)
                return
            except ActivityError as error:
                reason = f"refund failed: {service}: {error.cause or error}"
            self._state.move_to(CheckoutStatus.NEEDS_ATTENTION, reason)
            self._retry_requested = False
            try:
                await workflow.wait_condition(
                    lambda: self._retry_requested, timeout=COMPENSATION_RETRY_EVERY, timeout_summary="retry refund",
                )
            except TimeoutError:
                pass

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
        if service in self._declines:
            self._state.holds[service] = await self._steps.decline(service, self._declines[service])
            return
        self._state.holds[service] = await self._release_hold(service)

    async def _release_hold(self, service: str) -> HoldResult:
        """Release one hold. One found sold was confirmed by a run of this saga's task that the history never
        kept (see UNRECORDED_SALE_PATCH): the history says not sold, so the sale is given back, a payment's
        capture refunded whole (by a key of its own: a retry refunds nothing twice)."""
        try:
            return await self._steps.release(service)
        except (ActivityError, FailureError) as error:
            if not _sold_already(error) or not self._patched(UNRECORDED_SALE_PATCH):
                raise
            workflow.logger.warning("%s of %s was sold by a task the history never kept: giving it back",
                                    service, self._params.checkout_id)
        if not participant(service).refunds:
            return await self._steps.return_sale(service)
        refund = await self._steps.refund(service, f"{self._steps.hold_key(service)}:refund:unrecorded-sale")
        held = self._state.holds.get(service)
        if held is None:  # the hold's own answer was lost too: what the refund says is all there is
            return HoldResult(hold_key=refund.hold_key, service=service, status=HoldStatus.RETURNED)
        return held.model_copy(update={"status": HoldStatus.RETURNED})

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
        if self._parts_in_flight:
            raise _refused("a part of the checkout is being cancelled: confirm again in a moment")
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

    @workflow.update(name=CANCEL_PARTS)
    async def cancel_parts(self, params: CancelPartsInput) -> CheckoutView:
        """Release some parts of a HELD checkout; the rest stays held (and is confirmed, cancelled or expires as
        usual). Cancelling the last part still held cancels the checkout. A part released already: no-op."""
        held = {s for s, hold in self._state.holds.items() if hold.status == HoldStatus.ACTIVE}
        todo = [p for p in params.parts if p in held]
        if not todo:
            return self._state.view()
        # A payment is not a part of its own: with no inventory left, the whole checkout is cancelled.
        left = {s for s in held - set(todo) if participant(s).inventory}
        if not left:
            if self._decision is None:
                self._decision = "cancel"
            await workflow.wait_condition(lambda: self._state.status in _SETTLED)
            return self._state.view()
        self._parts_in_flight += 1
        try:
            released = await _detached(self._release_parts(todo))
        finally:
            self._parts_in_flight -= 1
        for part, hold in zip(todo, released, strict=True):
            self._state.holds[part] = hold
            self._compensations.forget(part)
        self._state.move_to(CheckoutStatus.HELD, "part cancelled: " + ", ".join(todo))
        return self._state.view()

    async def _release_parts(self, parts: list[str]) -> list[HoldResult]:
        return list(await asyncio.gather(*(self._release_hold(p) for p in parts)))

    @cancel_parts.validator
    def _cancel_parts_allowed(self, params: CancelPartsInput) -> None:
        unknown = [p for p in params.parts if p not in self._state.holds]
        if unknown:
            raise _refused(f"the checkout has no part {', '.join(unknown)}")
        if self._decision == "confirm":  # being confirmed: a sale's parts are given back once it is
            raise _refused("checkout is CONFIRMED: its parts are returned, not released")
        if self._state.status != CheckoutStatus.HELD or self._decision is not None:
            raise _refused(f"checkout is {self._status_word()}: only a HELD checkout's parts are released")
        held = {s for s, hold in self._state.holds.items() if hold.status == HoldStatus.ACTIVE}
        inventory_left = {s for s in held - set(params.parts) if participant(s).inventory}
        if inventory_left and any(not participant(s).inventory for s in held):
            # The payment authorized the whole total: releasing a part would still capture it at confirm.
            raise _refused("a paid checkout is cancelled whole while HELD; once confirmed, a part can be cancelled "
                           "and its share is refunded")

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
        if not self._patched(CLAIMS_PATCH):
            return
        try:
            await workflow.execute_local_activity(
                RELEASE_CLAIM, self._params.checkout_id, result_type=bool,
                start_to_close_timeout=timedelta(seconds=10), schedule_to_close_timeout=timedelta(minutes=2),
                summary="release the customer's claim",
            )
        except ActivityError as error:
            workflow.logger.warning("claim of %s not released: %s", self._params.checkout_id, error)
        except FailureError as error:
            if not self._patched(CLAIM_FAILURE_PATCH):
                raise
            workflow.logger.warning("claim of %s not released: %s", self._params.checkout_id, error)

    async def _extend_ledgers(self, expires_at: datetime) -> None:
        # What is still held: a part released by cancel_parts stays released.
        services = [s for s, hold in self._state.holds.items() if hold.status == HoldStatus.ACTIVE]
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
    _, failure = ledger_failure(error)
    return isinstance(failure, HoldNotActive) and failure.status in (HoldStatus.RELEASED, HoldStatus.EXPIRED)


def _sold_already(error: BaseException) -> bool:
    """A release answered "this hold is sold"."""
    _, failure = ledger_failure(error)
    return isinstance(failure, HoldNotActive) and failure.status is HoldStatus.CONFIRMED


def _outcome_dropped(task: asyncio.Task[Any]) -> None:
    """An abandoned hold's outcome, read so that nothing reports it as never retrieved: its release is registered
    already, and a hold landing after that release is refused by the ledger."""
    if not task.cancelled():
        task.exception()


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
