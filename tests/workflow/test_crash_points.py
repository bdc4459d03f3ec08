"""Deterministic crash points on real processes: a worker SIGKILLed at an exact step of a checkout, the real Temporal
dev server and PostgreSQL.

For each step (after a hold committed, in the middle of compensation, of confirm, of extend) and each placement
(`local`: every participant a local activity of the checkout worker, the checkout worker dies; `remote`: every
participant on its own task queue, that participant's worker dies), two workers run where the crash happens, both
configured with the crash point (activities/adapter.py, BOOKING_SAGA_CRASH_AFTER) and one shared ONCE marker:
whichever reaches the step first dies there, the other is the standby that must take over, as a second replica
does in production. Each test asserts the saga settled to the status the scenario implies, the ledger moved exactly
once (held / sold equal the request's units, never double), nothing is left held, the ledger audit is clean, and
no HELD answer carried an expires_at already past.

The time from the death (the marker file is written just before the SIGKILL) to the saga's next history events
and to the answer is printed (`-s`): a measurement for docs/faults-and-chaos.md, never asserted (a loaded machine
decides it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from checkouts import saga
from services.bookings.models import MARK_ACTIVITY
from services.bookings.records import BookingRecords
from services.db import create_engine
from services.events.model import EventType as EventType_
from services.events.outbox import EventRow
from services.registry import NAMES, AnyService, build_services
from services.types import HoldStatus, Money
from services.wallet.schemas import WalletQuery
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import PAID_TOTAL, Inventory, counters, seed, seed_paid, unique
from workflows.cancel_sale import workflow_id as cancel_sale_id
from workflows.models import CONFIRM, EXTEND, CheckoutStatus, CheckoutView, ExtendInput

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

PLACEMENTS = ("local", "remote")
# The request every scenario makes, and what it holds per participant (counters(): held, sold).
SEATS, ROOMS, QUANTITY = 2, 1, 3
UNITS = {"flight": SEATS, "hotel": ROOMS, "orders": QUANTITY}
REQUESTED = tuple(UNITS)
NOTHING = {name: (0, 0) for name in UNITS}
HELD_ONCE = {name: (units, 0) for name, units in UNITS.items()}
SOLD_ONCE = {name: (0, units) for name, units in UNITS.items()}
# Bounds on waiting for a child process, not expectations of speed: a loaded 2-core machine gets the whole bound.
READY_WITHIN = 60.0
_POLL = 0.2
_CRASH_VARIABLES = ("BOOKING_SAGA_CRASH_BEFORE", "BOOKING_SAGA_CRASH_AFTER", "BOOKING_SAGA_CRASH_ONCE")


@dataclass
class Worker:
    """One `booking-saga worker --service X` child; stderr to a file (a pipe nobody reads could block it)."""

    service: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def killed(self) -> bool:
        return self.process.poll() == -signal.SIGKILL


@dataclass
class Stack:
    """The workers of one test on task queues of their own, all with the same PARTICIPANT_PLACEMENTS; the API side
    (`settings`) agrees with them, as the API and the workers must."""

    client: Client
    database_url: str
    placement: str
    tmp_path: Path
    settings: Settings
    marker: Path
    workers: list[Worker] = field(default_factory=list)

    def env(self, crash_after: str | None, before: bool = False) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if key not in ("DATABASE_URL", "REDIS_URL", *_CRASH_VARIABLES)}
        env.update({
            "TEMPORAL_ADDRESS": self.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": self.client.namespace,
            "DATABASE_URL": self.database_url,
            "TASK_QUEUE_CHECKOUT": self.settings.task_queue_checkout,
            "TASK_QUEUES": json.dumps(self.settings.task_queues),
            "PARTICIPANT_PLACEMENTS": json.dumps(self.settings.participant_placements),
            "LOG_LEVEL": "WARNING",
        })
        if crash_after is not None:
            point = "BOOKING_SAGA_CRASH_BEFORE" if before else "BOOKING_SAGA_CRASH_AFTER"
            env.update({point: crash_after, "BOOKING_SAGA_CRASH_ONCE": str(self.marker)})
        return env

    def start(self, service: str, crash_after: str | None = None, before: bool = False) -> Worker:
        stderr_path = self.tmp_path / f"worker-{len(self.workers)}-{service}.stderr"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "booking_saga.cli", "worker", "--service", service],
                env=self.env(crash_after, before), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        worker = Worker(service, process, stderr_path)
        self.workers.append(worker)
        return worker

    async def start_all(self, crash_after: str, before: bool = False) -> list[Worker]:
        """Where `crash_after` happens, two workers with the crash point (one dies, one stands by); one worker for
        every other queue the request needs. Returns once every queue has its pollers."""
        crashing = "checkout" if self.placement == "local" else crash_after.split(".")[0]
        services = ["checkout"] if self.placement == "local" else ["checkout", *REQUESTED]
        pair = [self.start(crashing, crash_after, before) for _ in range(2)]
        for service in services:
            if service != crashing:
                self.start(service)
        for service in services:
            queue, kind = (
                (self.settings.task_queue_checkout, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW) if service == "checkout"
                else (self.settings.task_queue(service), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            )
            await self.eventually(
                functools.partial(self._pollers, queue, kind, 2 if service == crashing else 1), f"{service} polls"
            )
        return pair

    async def _pollers(self, queue: str, kind: TaskQueueType.ValueType, wanted: int) -> bool:
        response = await self.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=self.client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind,
        ))
        return len(response.pollers) >= wanted

    async def eventually(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + READY_WITHIN
        while not await check():
            for worker in self.workers:
                if not worker.killed:
                    assert worker.process.poll() is None, f"{worker.service} exited:\n{worker.stderr}"
            logs = "\n".join(f"--- {w.service}\n{w.stderr}" for w in self.workers)
            assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {READY_WITHIN:.0f}s\n{logs}"
            await asyncio.sleep(_POLL)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in self.workers:
            try:
                worker.process.wait(15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


@pytest.fixture(scope="module")
async def ledgers(migrated_database_url: str) -> AsyncIterator[dict[str, AnyService]]:
    engine = create_engine(migrated_database_url, pool_size=2)
    yield build_services(engine)
    await engine.dispose()


@pytest.fixture(params=PLACEMENTS)
def stack(
    request: pytest.FixtureRequest, dev_server_env: WorkflowEnvironment, migrated_database_url: str, tmp_path: Path
) -> Iterator[Stack]:
    placement: str = request.param
    suffix = unique("crashpt")
    settings = Settings(
        task_queue_checkout=f"checkout-{suffix}", task_queues={name: f"{name}-{suffix}" for name in NAMES},
        participant_placements=dict.fromkeys(NAMES, placement),
    )
    built = Stack(dev_server_env.client, migrated_database_url, placement, tmp_path, settings, tmp_path / "crashed")
    yield built
    built.stop()


async def submit(stack: Stack, inventory: Inventory, hold_seconds: int) -> CheckoutView:
    """POST /v1/checkouts as the API places it (Update-with-Start); a HELD answer's expires_at must be ahead."""
    request = inventory.request(seats=SEATS, rooms=ROOMS, quantity=QUANTITY, customer=unique("crash-cust"))
    view = await saga.submit(stack.client, stack.settings, unique("co"), request, "crash-test", hold_seconds)
    answered = datetime.now(UTC)
    if view.status == CheckoutStatus.HELD:
        assert view.expires_at is not None
        ahead = (view.expires_at - answered).total_seconds()
        print(f"[crash-points] {stack.placement}: HELD answered with expires_at {ahead:+.1f}s ahead")
        assert view.expires_at > answered, f"201 HELD with an expiry already past: {view.expires_at} <= {answered}"
    return view


async def assert_one_died(stack: Stack, pair: list[Worker]) -> datetime:
    """Exactly one of the pair died of the crash point, the other is alive; returns the death time (the marker's
    mtime: it is written just before the SIGKILL)."""
    await stack.eventually(lambda: _true(any(w.killed for w in pair)), "a worker reaches the crash point")
    assert sorted(w.process.poll() is None for w in pair) == [False, True], [w.process.poll() for w in pair]
    return datetime.fromtimestamp(stack.marker.stat().st_mtime, UTC)


async def _true(value: bool) -> bool:
    return value


async def report_takeover(
    stack: Stack, handle: WorkflowHandle[object, object], died: datetime, answered: datetime, what: str
) -> None:
    """Print how long after the death the standby moved the saga again (a local participant: the workflow task
    started again after the dead worker's timed out; a remote one: the activity's next attempt started), and how
    long until the answer."""
    timed_out = False
    takeover = "not seen"
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime(UTC)
        if at <= died:
            continue
        timed_out = timed_out or event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
        retried = (event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                   and event.activity_task_started_event_attributes.attempt > 1)
        resumed = timed_out and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        if retried or resumed:
            kind = "activity attempt" if retried else "workflow task"
            takeover = f"+{(at - died).total_seconds():.2f}s ({kind} started on the standby)"
            break
    print(f"[crash-points] {stack.placement} {what}: death -> takeover {takeover}, "
          f"-> answer +{(answered - died).total_seconds():.2f}s")


def assert_holds(view: CheckoutView, status: HoldStatus) -> None:
    assert {hold.service: hold.status for hold in view.holds} == dict.fromkeys(REQUESTED, status), view.holds


async def test_crash_after_a_hold_committed(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    """The flight hold committed, its result lost with the worker: the standby places the holds (the ledger answers
    the same hold again), the checkout is HELD once and confirms once."""
    inventory = await seed(ledgers)
    pair = await stack.start_all("flight.hold")
    view = await submit(stack, inventory, hold_seconds=120)
    answered = datetime.now(UTC)
    died = await assert_one_died(stack, pair)
    await report_takeover(stack, stack.client.get_workflow_handle(view.checkout_id), died, answered, "hold")

    assert view.status == CheckoutStatus.HELD, view
    assert_holds(view, HoldStatus.ACTIVE)
    assert await counters(ledgers, inventory) == HELD_ONCE
    confirmed = await saga.update(stack.client, view.checkout_id, CONFIRM)
    assert confirmed.status == CheckoutStatus.CONFIRMED, confirmed
    assert_holds(confirmed, HoldStatus.CONFIRMED)
    assert await counters(ledgers, inventory) == SOLD_ONCE
    await assert_ledger_clean(ledgers)


async def test_crash_in_the_middle_of_compensation(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    """One participant short: the checkout rolls back, and the worker dies once the flight's release committed
    (the others' may not have): the standby finishes the releases, the checkout is REJECTED, nothing stays held."""
    inventory = await seed(ledgers, stock=QUANTITY - 1)
    pair = await stack.start_all("flight.release")
    view = await submit(stack, inventory, hold_seconds=120)
    answered = datetime.now(UTC)
    died = await assert_one_died(stack, pair)
    await report_takeover(stack, stack.client.get_workflow_handle(view.checkout_id), died, answered, "compensation")

    assert view.status == CheckoutStatus.REJECTED, view
    assert [shortage.resource for shortage in view.unavailable] == [inventory.sku], view.unavailable
    assert {hold.status for hold in view.holds} <= {HoldStatus.RELEASED, HoldStatus.REJECTED}, view.holds
    assert await counters(ledgers, inventory) == NOTHING
    await assert_ledger_clean(ledgers)


async def test_crash_in_the_middle_of_confirm(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    """The hotel's confirm committed, the worker died before its result was recorded: the standby confirms the rest
    (and the hotel again, which the ledger answers as already confirmed): sold once."""
    inventory = await seed(ledgers)
    pair = await stack.start_all("hotel.confirm")
    view = await submit(stack, inventory, hold_seconds=120)
    assert view.status == CheckoutStatus.HELD, view
    assert await counters(ledgers, inventory) == HELD_ONCE

    confirmed = await saga.update(stack.client, view.checkout_id, CONFIRM)
    answered = datetime.now(UTC)
    died = await assert_one_died(stack, pair)
    await report_takeover(stack, stack.client.get_workflow_handle(view.checkout_id), died, answered, "confirm")
    assert confirmed.status == CheckoutStatus.CONFIRMED, confirmed
    assert_holds(confirmed, HoldStatus.CONFIRMED)
    assert await counters(ledgers, inventory) == SOLD_ONCE
    await assert_ledger_clean(ledgers)


async def test_crash_in_the_middle_of_extend(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    """The flight's extend committed, the worker died: the standby extends every hold (the flight's again), the
    checkout stays HELD with the later expiry, holding once, and then expires at that expiry, releasing once."""
    inventory = await seed(ledgers)
    pair = await stack.start_all("flight.extend")
    view = await submit(stack, inventory, hold_seconds=20)
    assert view.status == CheckoutStatus.HELD and view.expires_at is not None, view

    extended = await saga.update(stack.client, view.checkout_id, EXTEND, ExtendInput(seconds=10))
    answered = datetime.now(UTC)
    died = await assert_one_died(stack, pair)
    handle: WorkflowHandle[object, CheckoutView] = stack.client.get_workflow_handle(
        view.checkout_id, result_type=CheckoutView
    )
    await report_takeover(stack, handle, died, answered, "extend")
    assert extended.status == CheckoutStatus.HELD, extended
    assert extended.expires_at is not None and (extended.expires_at - view.expires_at).total_seconds() == 10
    assert_holds(extended, HoldStatus.ACTIVE)
    assert all(hold.expires_at is not None and hold.expires_at >= extended.expires_at for hold in extended.holds)
    assert await counters(ledgers, inventory) == HELD_ONCE

    final = await handle.result()
    assert final.status == CheckoutStatus.EXPIRED, final
    assert final.history[-1].at >= extended.expires_at, final.history  # the extended expiry was the one kept
    assert_holds(final, HoldStatus.RELEASED)
    assert await counters(ledgers, inventory) == NOTHING
    await assert_ledger_clean(ledgers)


@pytest.mark.parametrize("point", ["before", "after"])
async def test_crash_around_a_sale_return(stack: Stack, ledgers: dict[str, AnyService], point: str) -> None:
    """A confirmed checkout cancelled (CancelSale), the worker dying just before the items' return reaches the
    ledger, or just after it committed: the standby returns everything (the items' return again, which the ledger
    answers as already returned): sold back to zero once, the record CANCELLED, the ledger clean."""
    inventory = await seed(ledgers)
    pair = await stack.start_all("orders.return_sale", before=point == "before")
    view = await submit(stack, inventory, hold_seconds=120)
    assert view.status == CheckoutStatus.HELD, view
    confirmed = await saga.update(stack.client, view.checkout_id, CONFIRM)
    assert confirmed.status == CheckoutStatus.CONFIRMED, confirmed
    await stack.client.get_workflow_handle(view.checkout_id).result()  # closed: its record is written
    assert await counters(ledgers, inventory) == SOLD_ONCE

    outcome = await saga.cancel_sale(stack.client, stack.settings, view.checkout_id, [], None)
    answered = datetime.now(UTC)
    died = await assert_one_died(stack, pair)
    cancel = stack.client.get_workflow_handle(cancel_sale_id(view.checkout_id, []))
    await report_takeover(stack, cancel, died, answered, f"return ({point} the commit)")
    cancelled = CheckoutView.model_validate(outcome.view)
    assert cancelled.status == CheckoutStatus.CANCELLED and not outcome.closed, outcome
    assert_holds(cancelled, HoldStatus.RETURNED)
    assert await counters(ledgers, inventory) == NOTHING
    await assert_ledger_clean(ledgers)


async def test_crash_after_a_sale_marked_cancelled(
    stack: Stack, ledgers: dict[str, AnyService], migrated_database_url: str
) -> None:
    """A confirmed checkout cancelled (CancelSale), the worker dying just after `checkout.mark_parts` committed the
    record CANCELLED, before the server kept the workflow task (a local activity: its result is lost with the task).
    The standby runs the task again. Local: the whole cancellation was that one task, so its record read runs
    again, finds nothing left sold and answers the record as it is. Remote: the returns' results came in an earlier
    task, so only the mark runs again and finds the record already as asked (`changed_parts`: no change; a mark
    that wrote anyway fails this). Either way CANCELLED once, one history entry and one `checkout.cancelled` event,
    nothing sold."""
    inventory = await seed(ledgers)
    pair = await stack.start_all(MARK_ACTIVITY)
    view = await submit(stack, inventory, hold_seconds=120)
    assert view.status == CheckoutStatus.HELD, view
    confirmed = await saga.update(stack.client, view.checkout_id, CONFIRM)
    assert confirmed.status == CheckoutStatus.CONFIRMED, confirmed
    await stack.client.get_workflow_handle(view.checkout_id).result()  # closed: its record is written

    outcome = await saga.cancel_sale(stack.client, stack.settings, view.checkout_id, [], None)
    answered = datetime.now(UTC)
    died = await assert_one_died(stack, pair)
    cancel = stack.client.get_workflow_handle(cancel_sale_id(view.checkout_id, []))
    await report_takeover(stack, cancel, died, answered, "record marked")
    cancelled = CheckoutView.model_validate(outcome.view)
    assert cancelled.status == CheckoutStatus.CANCELLED and not outcome.closed, outcome
    assert_holds(cancelled, HoldStatus.RETURNED)
    assert [c.reason for c in cancelled.history].count("sale cancelled") == 1, cancelled.history
    # The record's activities were local: none was an activity task (the task ran again, not an activity attempt).
    scheduled = [event async for event in cancel.fetch_history_events()
                 if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and event.activity_task_scheduled_event_attributes.activity_type.name == MARK_ACTIVITY]
    assert scheduled == []
    engine = create_engine(migrated_database_url, pool_size=1)
    try:
        record = await BookingRecords(engine).load(view.checkout_id)
        async with engine.connect() as conn:
            events = (await conn.execute(
                select(EventRow.type).where(EventRow.checkout_id == view.checkout_id).order_by(EventRow.id)
            )).scalars().all()
    finally:
        await engine.dispose()
    assert record is not None and record.status == "CANCELLED", record
    assert record.view == outcome.view
    assert events.count(EventType_.CANCELLED) == 1, events
    assert await counters(ledgers, inventory) == NOTHING
    await assert_ledger_clean(ledgers)


async def test_crash_after_a_repriced_authorization_was_declined(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    """A paid checkout whose held lines no longer add up to the API's quote (a price changed in between): the saga
    refuses it and declines the wallet's authorization (given back, its key recorded REJECTED with the refusal), and
    the worker dies once that decline committed. Local: the whole first workflow task runs again on the standby,
    its results lost, and the holds answer as recorded; remote: the decline's next attempt answers as recorded.
    Either way REJECTED naming `payment` for the same reason (a released key said nothing of why: FAILED), and
    nothing held or authorized."""
    paid = await seed_paid(ledgers, balance=50_000)
    quote = Money(amount=PAID_TOTAL - 1_000, currency="EUR")
    pair = await stack.start_all("wallet.decline")
    view = await saga.submit(stack.client, stack.settings, unique("co"), paid.request, "crash-test", 120, quote)
    answered = datetime.now(UTC)
    died = await assert_one_died(stack, pair)
    await report_takeover(stack, stack.client.get_workflow_handle(view.checkout_id), died, answered, "decline")

    assert view.status == CheckoutStatus.REJECTED, (view.status, view.error)
    assert [(s.resource, s.requested, s.available) for s in view.unavailable] == [
        ("payment", PAID_TOTAL, quote.amount)], view.unavailable
    assert "prices changed" in (view.unavailable[0].reason or ""), view.unavailable
    seats = (await ledgers["flight"].availability(paid.flight_id)).seat_classes["economy"]
    item = await ledgers["orders"].availability(paid.sku)
    account = await ledgers["wallet"].availability(paid.customer, WalletQuery())
    assert (seats.held, seats.sold, item.held, item.sold, account.authorized, account.captured) == (0, 0, 0, 0, 0, 0)
    await assert_ledger_clean(ledgers)
