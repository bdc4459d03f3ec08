"""A model of CheckoutSaga (Hypothesis RuleBasedStateMachine) on the time-skipping server, with the real workers and
ledgers of the session.

Random checkouts of one or two parts (items, and a flight seat or not) on small stocks, confirms, cancels of the
whole checkout or of one part (a HELD checkout's part released by its saga, a sale's part returned by CancelSale,
through the same function the API's cancel route calls), extends, time passing (expiries), duplicate deliveries (a
second submit / confirm / cancel of the same checkout) and faults (a participant's call failing transiently), in any
order, and the checkout worker restarted between any two steps (its in-flight activities cancelled, retried by
the next one). A checkout is read as the API reads it (`checkouts.bookings.view_of`: the booking record once
settled, else the saga). After every step:

- the ledgers' counters equal what the checkouts say: held = units of ACTIVE holds, sold = units of CONFIRMED ones;
- one outcome per checkout: a closed checkout never changes status again but for a sale's cancellation
  (CONFIRMED -> CANCELLED), and a duplicate answers the same outcome;
- the history: each status change is allowed from the one before it;
- the booking record agrees with the saga (the same status, once its write has landed), and the checkout's events
  in the outbox are exactly one per status its record reached, in order, plus one `checkout.part_cancelled` per part
  cancelled while another remained;
- the ledger invariants hold (audit).

Hypothesis drives the machine synchronously from a thread; each step runs on the session's event loop, where the
workers and the test server's client live.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from checkouts import bookings
from checkouts.problems import ProblemError
from runtime.worker import build_workers
from services.bookings.records import BookingRecords
from services.events.model import STATUS_EVENTS, EventType
from services.types import HoldStatus
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import FaultyService, Inventory, eventually, own_queues, seed, start_checkout, unique
from workflows.models import (
    CANCEL,
    CONFIRM,
    EXTEND,
    FINAL_STATUSES,
    STATE_QUERY,
    SUBMIT,
    CheckoutRequest,
    CheckoutStatus,
    CheckoutView,
    ExtendInput,
)

T = TypeVar("T")
STOCK = 5  # items
SEATS = 3
HOLD_SECONDS = 600
PARTS = ("orders", "flight")
S = CheckoutStatus
ALLOWED = {
    S.PENDING: {S.HELD, S.REJECTED, S.FAILED, S.CANCELLED},
    S.HELD: {S.HELD, S.CONFIRMED, S.CANCELLED, S.EXPIRED, S.FAILED, S.NEEDS_ATTENTION},
    S.NEEDS_ATTENTION: {S.NEEDS_ATTENTION, S.CANCELLED, S.EXPIRED, S.FAILED, S.REJECTED},
    # A sale: a part returned (the entry repeats CONFIRMED), or the whole sale cancelled.
    S.CONFIRMED: {S.CONFIRMED, S.CANCELLED},
}
LIVE = {HoldStatus.ACTIVE, HoldStatus.CONFIRMED}


class SagaMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    client: Client
    env: WorkflowEnvironment
    saga_settings: Settings
    services: dict[str, FaultyService]
    engine: AsyncEngine
    workers: list[Worker]
    runs: list[asyncio.Task[None]]

    checkouts = Bundle("checkouts")

    def log(self, *what: object) -> None:
        """Shown with a falsifying example: what each step saw."""
        note(" ".join(str(part) for part in what))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)

    @initialize()
    def stock(self) -> None:
        self.inventory: Inventory = self.run(seed(self.services, seats=SEATS, stock=STOCK))
        self.records = BookingRecords(self.engine)
        self.handles: dict[str, WorkflowHandle[Any, CheckoutView]] = {}
        self.units: dict[str, dict[str, int]] = {}  # per checkout: units per part (participant)
        self.part_events: dict[str, int] = {}  # per checkout: parts cancelled while another remained
        self.closed: dict[str, CheckoutStatus] = {}  # the outcome of each closed checkout

    # -- rules --------------------------------------------------------------------------------------------------

    @rule(target=checkouts, quantity=st.integers(1, 3), seats=st.integers(0, 2))
    def checkout(self, quantity: int, seats: int) -> str:
        parts = ("orders", "flight") if seats else ("orders",)
        request: CheckoutRequest = self.inventory.request(customer=unique("cust"), quantity=quantity,
                                                          seats=max(seats, 1), parts=parts)
        handle, view = self.run(start_checkout(self.client, self.saga_settings, request, hold_seconds=HOLD_SECONDS,
                                               remote=True))
        self.handles[handle.id] = handle
        self.units[handle.id] = {"orders": quantity, "flight": seats}
        self.part_events[handle.id] = 0
        assert view.status in (S.HELD, S.REJECTED), view
        self.log("checkout", handle.id, quantity, seats, view.status)
        return handle.id

    @rule(checkout=checkouts)
    def confirm(self, checkout: str) -> None:
        before = self.view(checkout).status
        outcome = self.update(checkout, CONFIRM)
        self.log("confirm", checkout, before, outcome)
        if before == S.HELD:
            assert outcome == S.CONFIRMED, (before, outcome)

    @rule(checkout=checkouts)
    def cancel(self, checkout: str) -> None:
        """The whole checkout, as the API cancels it: a HELD one by its saga, a sale by CancelSale."""
        before = self.view(checkout).status
        outcome = self.cancel_via_api(checkout, [])
        self.log("cancel", checkout, before, outcome)
        if before in (S.HELD, S.CONFIRMED):
            assert outcome == S.CANCELLED, (before, outcome)

    @rule(checkout=checkouts, part=st.sampled_from(PARTS))
    def cancel_part(self, checkout: str, part: str) -> None:
        """One part: released while HELD, returned once sold; the checkout remains while another part does."""
        before = self.view(checkout)
        holds = {hold.service: hold.status for hold in before.holds}
        outcome = self.cancel_via_api(checkout, [part])
        after = self.view(checkout)
        self.log("cancel part", checkout, part, before.status, outcome, {h.service: h.status for h in after.holds})
        if before.status in (S.HELD, S.CONFIRMED) and holds.get(part) in LIVE:
            others = [service for service, status in holds.items() if service != part and status in LIVE]
            assert after.status == (before.status if others else S.CANCELLED), (before.status, after.status)
            assert {h.service: h.status for h in after.holds}[part] in (HoldStatus.RELEASED, HoldStatus.RETURNED)
            if others:
                self.part_events[checkout] += 1

    @rule(checkout=checkouts, seconds=st.integers(1, 900))
    def extend(self, checkout: str, seconds: int) -> None:
        before = self.view(checkout)
        outcome = self.update(checkout, EXTEND, ExtendInput(seconds=seconds))
        self.log("extend", checkout, seconds, before.status, outcome)
        if before.status == S.HELD and outcome == S.HELD:
            after = self.view(checkout)
            assert after.expires_at is not None and before.expires_at is not None
            assert after.expires_at == before.expires_at + timedelta(seconds=seconds)

    @rule(checkout=checkouts, operation=st.sampled_from([SUBMIT, CONFIRM, CANCEL]))
    def duplicate(self, checkout: str, operation: str) -> None:
        """The same message twice in a row: the second answers what the first did."""
        first = self.update(checkout, operation)
        self.log("dup", checkout, operation, first)
        assert self.update(checkout, operation) == first

    @rule()
    def restart_workers(self) -> None:
        """The workers stop (their in-flight activities cancelled) and new ones take over the same queues."""
        self.log("restart workers")
        self.run(self._restart())

    @rule(minutes=st.integers(1, 30))
    def time_passes(self, minutes: int) -> None:
        self.run(self.env.sleep(minutes * 60))
        self.log("sleep", minutes)
        # Every HELD checkout past its expiry settles as EXPIRED (its timer fired on the server's clock).
        for checkout in list(self.handles):
            view = self.view(checkout)
            if view.status == S.HELD and view.expires_at is not None:
                self.run(self._settles_if_due(checkout))

    @rule(checkout=checkouts, op=st.sampled_from(["confirm", "release", "extend"]))
    def transient_fault(self, checkout: str, op: str) -> None:
        """The next call of `op` fails with Busy once (retried by the saga), then the checkout is cancelled or
        confirmed: the outcome is the same as without the fault."""
        self.services["orders"].fail_times[op] = 1
        self.log("fault", checkout, op)
        try:
            if op == "extend":
                self.extend(checkout, 60)
            else:
                (self.confirm if op == "confirm" else self.cancel)(checkout)
        finally:
            self.services["orders"].fail_times.pop(op, None)

    # -- invariants -----------------------------------------------------------------------------------------------

    @invariant()
    def ledger_agrees_with_the_checkouts(self) -> None:
        if not hasattr(self, "handles"):
            return
        views = {checkout: self.view(checkout) for checkout in self.handles}
        rows = self.run(self._rows())
        expected = {
            service: tuple(
                sum(self.units[c][service] for c, view in views.items() for hold in view.holds
                    if hold.service == service and hold.status == status)
                for status in (HoldStatus.ACTIVE, HoldStatus.CONFIRMED)
            )
            for service in PARTS
        }
        self.log("check", rows, expected)
        assert rows == expected, {c: (v.status, [(h.service, h.status) for h in v.holds]) for c, v in views.items()}
        assert sum(rows["orders"]) <= STOCK and sum(rows["flight"]) <= SEATS
        for checkout, view in views.items():
            if checkout in self.closed and view.status != self.closed[checkout]:
                # The one change a closed checkout may see: its sale cancelled.
                assert (self.closed[checkout], view.status) == (S.CONFIRMED, S.CANCELLED), (checkout, view.status)
            if view.status in FINAL_STATUSES:
                self.closed[checkout] = view.status
            statuses = [change.status for change in view.history]
            assert statuses[0] == S.PENDING
            for before, after in itertools.pairwise(statuses):
                assert after in ALLOWED.get(before, set()), statuses
            finals = [status for status in dict.fromkeys(statuses) if status in FINAL_STATUSES]
            assert len(finals) <= 1 or finals == [S.CONFIRMED, S.CANCELLED], statuses
        self.run(assert_ledger_clean(self.services))

    @invariant()
    def records_and_events_agree_with_the_sagas(self) -> None:
        if not hasattr(self, "handles"):
            return
        for checkout in self.handles:
            self.run(self._record_agrees(checkout))

    async def _record_agrees(self, checkout: str) -> None:
        """The record reaches the saga's status (its write may land after the answer), and its events are exactly
        the statuses it went through, once each and in order, plus the parts cancelled while others remained."""
        handle = self.handles[checkout]
        saga = await handle.query(STATE_QUERY, result_type=CheckoutView)

        async def landed() -> bool:
            record = await self.records.load(checkout)
            if record is None:
                return False
            if saga.status == S.CONFIRMED and record.status == S.CANCELLED.value:
                return True  # the sale was cancelled: only the record knows (CancelSale writes there)
            return record.status == saga.status.value

        await eventually(landed)
        record = await self.records.load(checkout)
        assert record is not None
        history = [change.status for change in bookings.record_view(record).history]
        reached = [status for n, status in enumerate(history) if n == 0 or status != history[n - 1]]
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                text("SELECT type FROM checkout.events WHERE checkout_id = :id ORDER BY id"), {"id": checkout}
            )).scalars().all()
        statuses = [kind for kind in rows if kind != EventType.PART_CANCELLED]
        assert statuses == [STATUS_EVENTS[s.value] for s in reached if s.value in STATUS_EVENTS], (history, rows)
        assert len(rows) - len(statuses) == self.part_events[checkout], (self.part_events[checkout], rows)

    # -- helpers --------------------------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Every saga of the example closed before the next one (and before the workers stop): a saga left open on
        a queue nobody polls would hold a task pending once its timer fired, and the time-skipping server then
        stops moving its clock for every later test."""
        if hasattr(self, "handles"):
            self.run(self._close_all())

    async def _close_all(self) -> None:
        for handle in self.handles.values():
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                with contextlib.suppress(Exception):  # refused or closed meanwhile: it is closing either way
                    await handle.execute_update(CANCEL, result_type=CheckoutView)
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()

    def view(self, checkout: str) -> CheckoutView:
        """As the API answers GET /v1/checkouts/{id}."""
        return self.run(bookings.view_of(self.client, self.records, checkout))

    @classmethod
    async def start_workers(cls) -> None:
        cls.workers = build_workers(cls.client, cls.saga_settings, "all", cls.services,  # type: ignore[arg-type]
                                    records=BookingRecords(cls.engine))
        cls.runs = [asyncio.create_task(worker.run()) for worker in cls.workers]

    @classmethod
    async def stop_workers(cls) -> None:
        await asyncio.gather(*(worker.shutdown() for worker in cls.workers), return_exceptions=True)
        await asyncio.gather(*cls.runs, return_exceptions=True)

    async def _restart(self) -> None:
        await self.stop_workers()
        await self.start_workers()

    async def _rows(self) -> dict[str, tuple[int, ...]]:
        seats = (await self.services["flight"].availability(self.inventory.flight_id)).seat_classes["economy"]
        items = await self.services["orders"].availability(self.inventory.sku)
        return {"orders": (items.held, items.sold), "flight": (seats.held, seats.sold)}

    def cancel_via_api(self, checkout: str, parts: list[str]) -> CheckoutStatus:
        """What POST /v1/checkouts/{id}/cancel does; a refusal (409, 422) answers the checkout's status as it is.
        The server's clock stays put meanwhile (waiting on CancelSale's result would let it skip time)."""

        async def send() -> tuple[CheckoutStatus, ProblemError | None]:
            with self.env.auto_time_skipping_disabled():
                try:
                    view = await bookings.cancel(self.client, self.saga_settings, self.records, checkout, parts)
                    return view.status, None
                except ProblemError as problem:
                    return (await bookings.view_of(self.client, self.records, checkout)).status, problem

        status, refused = self.run(send())
        if refused is not None:
            self.log("refused", checkout, parts, refused.status, refused.detail)
            assert refused.status in (409, 422), refused
        return status

    def update(self, checkout: str, name: str, argument: object = None) -> CheckoutStatus:
        """Send an update; a refusal (validator) or a closed workflow answers the checkout's status as it is."""
        handle = self.handles[checkout]

        async def send() -> CheckoutStatus:
            try:
                if argument is None:
                    return (await handle.execute_update(name, result_type=CheckoutView)).status
                return (await handle.execute_update(name, argument, result_type=CheckoutView)).status
            except WorkflowUpdateFailedError:
                return (await handle.query(STATE_QUERY, result_type=CheckoutView)).status
            except Exception:  # the workflow has closed: the server refuses updates; its last state is the outcome
                # (a query, not handle.result(): waiting on a result lets the test server skip time, which would
                # fire other checkouts' timers behind the model's back)
                return (await handle.query(STATE_QUERY, result_type=CheckoutView)).status

        return self.run(send())

    async def _settles_if_due(self, checkout: str) -> None:
        handle = self.handles[checkout]
        now = await self.env.get_current_time()

        async def settled() -> bool:
            view = await handle.query(STATE_QUERY, result_type=CheckoutView)
            return view.status != S.HELD or view.expires_at is None or view.expires_at > now

        await eventually(settled)


async def test_the_saga_matches_its_model(
    saga_client: Client, saga_settings: Settings, saga_services: dict[str, FaultyService],
    time_skipping_env: WorkflowEnvironment, saga_engine: AsyncEngine,
) -> None:
    SagaMachine.loop = asyncio.get_running_loop()
    SagaMachine.client, SagaMachine.env = saga_client, time_skipping_env
    # Workers of the machine's own, which it restarts: no saga cache, so no workflow task waits for a stopped
    # worker's sticky queue (the time-skipping server never hands such a task to another worker).
    SagaMachine.saga_settings = own_queues(saga_settings, workflow_cache_size=0)
    SagaMachine.services, SagaMachine.engine = saga_services, saga_engine
    SagaMachine.TestCase.settings = settings(
        max_examples=10, stateful_step_count=15, deadline=None, derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    await SagaMachine.start_workers()
    try:
        await asyncio.to_thread(SagaMachine.TestCase().runTest)
    finally:
        await SagaMachine.stop_workers()
