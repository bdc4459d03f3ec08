"""CheckoutSaga's less travelled branches on the time-skipping server, each asserted by its outcome: the final
status, the ledgers' counters, what the saga reports (error, unavailable, history) and the ledger invariants.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from runtime.worker import build_workers
from services.customer_limits import CustomerLimits
from services.errors import HoldNotActive
from services.types import HoldStatus
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import (
    RefusingClaims,
    begin_checkout,
    counters,
    eventually,
    own_queues,
    running,
    seed,
    start_checkout,
    unique,
)
from workflows import checkout_saga
from workflows.models import (
    CANCEL,
    CONFIRM,
    EXTEND,
    EXTEND_REFUSED,
    RETRY_COMPENSATION_SIGNAL,
    STATE_QUERY,
    SUBMIT,
    CheckoutStatus,
    CheckoutView,
    ExtendInput,
)

pytestmark = pytest.mark.usefixtures("saga_workers")

NOTHING_MOVED = {"flight": (0, 0), "hotel": (0, 0), "orders": (0, 0)}


async def test_confirm_failing_in_one_part_fails_and_keeps_the_confirmed_parts(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    inventory = await seed(saga_services)
    handle, held = await start_checkout(saga_client, saga_settings, inventory.request(seats=2))
    assert held.status == CheckoutStatus.HELD
    saga_services["orders"].refuse.add("confirm")

    view = await handle.execute_update(CONFIRM, result_type=CheckoutView)
    assert view.status == CheckoutStatus.FAILED
    assert view.error is not None and view.error.startswith("confirm failed") and "orders" in view.error
    # Whatever confirmed stays sold (an operator refunds it); the part that did not is released.
    assert await counters(saga_services, inventory) == {"flight": (0, 2), "hotel": (0, 1), "orders": (0, 0)}
    assert {h.service: h.status for h in view.holds} == {
        "flight": HoldStatus.CONFIRMED, "hotel": HoldStatus.CONFIRMED, "orders": HoldStatus.RELEASED,
    }
    assert (await handle.result()).status == CheckoutStatus.FAILED
    await assert_ledger_clean(saga_services)


async def test_a_hold_error_that_is_not_a_shortage_fails_the_checkout(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    inventory = await seed(saga_services)
    saga_services["hotel"].refuse.add("hold")
    handle, view = await start_checkout(saga_client, saga_settings, inventory.request())
    assert view.status == CheckoutStatus.FAILED  # not REJECTED: the customer's request was not the problem
    assert view.unavailable == [] and view.alternatives == []
    assert view.error is not None and "hotel" in view.error and "injected refusal" in view.error
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    assert (await handle.result()).status == CheckoutStatus.FAILED
    await assert_ledger_clean(saga_services)


async def test_a_hold_that_fails_after_the_saga_stopped_waiting_for_it(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    """Both ledgers short; the flight's hold answers only after the saga has rejected the checkout on the items'
    shortage and stopped waiting for the flight. Its failure arriving then must not break the saga's workflow
    tasks (it did while the abandoned hold was cancelled: the SDK's machine refused the late failure). The items'
    release is refused meanwhile, so the saga is still open (NEEDS_ATTENTION) when the late failure lands."""
    inventory = await seed(saga_services, seats=0, stock=0)
    saga_services["flight"].hang_before_hold = True
    saga_services["orders"].refuse.add("release")
    handle = await begin_checkout(saga_client, saga_settings, inventory.request(parts=("flight", "orders")),
                                  remote=True)
    answer = await handle.execute_update(SUBMIT, result_type=CheckoutView)
    assert answer.status in (CheckoutStatus.REJECTED, CheckoutStatus.NEEDS_ATTENTION), answer

    async def needs_attention() -> bool:
        return (await handle.query(STATE_QUERY, result_type=CheckoutView)).status == CheckoutStatus.NEEDS_ATTENTION

    await eventually(needs_attention)
    saga_services["flight"].unblock.set()  # the abandoned hold now runs and fails (no seat)
    await eventually(lambda: _true(bool(saga_services["flight"].late_hold_outcome)))
    assert isinstance(saga_services["flight"].late_hold_outcome[0], Exception)
    saga_services["orders"].refuse.clear()
    await handle.signal(RETRY_COMPENSATION_SIGNAL)
    result = await handle.result()
    assert result.status == CheckoutStatus.REJECTED, result
    assert {s.resource for s in result.unavailable} >= {inventory.sku}
    history = await handle.fetch_history()
    failed_tasks = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failed_tasks == [], failed_tasks[0].workflow_task_failed_event_attributes.failure.message
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    await assert_ledger_clean(saga_services)


async def test_an_unknown_resource_is_a_shortage_of_everything_asked(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    inventory = await seed(saga_services)
    request = inventory.request(seats=3)
    assert request.flight is not None
    nowhere = unique("FL-NOWHERE")  # no such flight in the ledger
    request = request.model_copy(update={"flight": request.flight.model_copy(update={"flight_id": nowhere})})
    handle, view = await start_checkout(saga_client, saga_settings, request)
    assert view.status == CheckoutStatus.REJECTED, view.error
    assert [(s.requested, s.available) for s in view.unavailable] == [(3, 0)]
    assert nowhere in view.unavailable[0].resource
    assert await counters(saga_services, inventory) == NOTHING_MOVED  # the hotel and the item were released
    assert (await handle.result()).status == CheckoutStatus.REJECTED
    await assert_ledger_clean(saga_services)


async def test_cancel_before_the_holds_are_placed(
    isolated_client: Client, saga_settings: Settings, saga_services
) -> None:
    inventory = await seed(saga_services)
    flight = saga_services["flight"]
    flight.hang_before_hold = True  # the flight's hold has not reached the ledger when the customer cancels
    # Remote: a delivery that outlives the saga is a remote activity's.
    handle = await begin_checkout(isolated_client, saga_settings, inventory.request(), remote=True)
    await eventually(lambda: _called(flight, "hold"))
    cancelled = await handle.execute_update(CANCEL, result_type=CheckoutView)
    assert cancelled.status == CheckoutStatus.CANCELLED
    assert cancelled.history[-1].reason == "cancelled before the holds were placed"
    assert [c.status for c in cancelled.history] == [CheckoutStatus.PENDING, CheckoutStatus.CANCELLED]
    assert (await handle.result()).status == CheckoutStatus.CANCELLED
    flight.unblock.set()
    await eventually(lambda: _true(bool(flight.late_hold_outcome)))
    assert isinstance(flight.late_hold_outcome[0], HoldNotActive)  # the release's tombstone refuses it
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    await assert_ledger_clean(saga_services)


async def test_placing_slower_than_the_slack_pushes_the_ledgers_out_first(
    saga_client: Client, saga_settings: Settings, saga_services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No slack at all (an unsandboxed worker of the test's own sees the patched constant): any placement that
    takes time is slower than it, so the ledgers must be told the customer's expiry before HELD is answered."""
    monkeypatch.setattr(checkout_saga, "PLACEMENT_SLACK", timedelta(0))
    settings = own_queues(saga_settings, workflow_sandbox=False)
    inventory = await seed(saga_services)
    saga_services["hotel"].fail_times["hold"] = 1  # one retry: the placement takes its backoff at least
    async with running(build_workers(saga_client, settings, "all", saga_services)):
        handle, view = await start_checkout(saga_client, settings, inventory.request())
        assert view.status == CheckoutStatus.HELD
        assert view.expires_at is not None and view.expires_at > view.history[0].at + timedelta(seconds=600)
        # Every ledger holds until the customer's expiry, not the earlier one it was first told.
        assert {h.expires_at for h in view.holds} == {view.expires_at}
        assert {name: saga_services[name].calls.get("extend", 0) for name in NOTHING_MOVED} == dict.fromkeys(
            NOTHING_MOVED, 1
        )
        await handle.execute_update(CANCEL, result_type=CheckoutView)
        await handle.result()  # closed before its workers stop (see `running`)
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    await assert_ledger_clean(saga_services)


async def test_expiry_while_an_extend_is_in_flight_waits_for_the_extend(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    inventory = await seed(saga_services)
    handle, held = await start_checkout(saga_client, saga_settings, inventory.request(), hold_seconds=5, remote=True)
    assert held.expires_at is not None
    # The hotel's extend retries for longer than the hold has left: the timer fires while the extend is in flight.
    saga_services["hotel"].fail_times["extend"] = 4
    extending = await handle.start_update(
        EXTEND, ExtendInput(seconds=600), wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=CheckoutView
    )
    result = await handle.result()  # skips time: past the first expiry, then past the extended one
    extended = await extending.result()
    assert extended.status == CheckoutStatus.HELD
    assert extended.expires_at == held.expires_at + timedelta(seconds=600)
    assert result.status == CheckoutStatus.EXPIRED
    assert result.history[-1].at >= extended.expires_at  # expired at the extended expiry, not the first one
    assert [c.status for c in result.history] == [
        CheckoutStatus.PENDING, CheckoutStatus.HELD, CheckoutStatus.HELD, CheckoutStatus.EXPIRED
    ]
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    await assert_ledger_clean(saga_services)


async def test_concurrent_extends_never_pass_the_lifetime(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    """Two extends in flight at once, each allowed alone, both not: the hold never passes its lifetime, a refused
    one says EXTEND_REFUSED, and the ledgers agree with the saga's expiry."""
    inventory = await seed(saga_services)
    handle, held = await start_checkout(
        saga_client, saga_settings, inventory.request(), hold_seconds=600, hold_lifetime_max_seconds=1000,
        remote=True,
    )
    saga_services["hotel"].fail_times["extend"] = 2  # the first extend is still in flight when the second arrives
    first = await handle.start_update(
        EXTEND, ExtendInput(seconds=300), wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=CheckoutView
    )
    outcomes: list[CheckoutView | ApplicationError] = []
    for update in (first, None):
        try:
            if update is None:
                outcomes.append(await handle.execute_update(EXTEND, ExtendInput(seconds=350), result_type=CheckoutView))
            else:
                outcomes.append(await update.result())
        except WorkflowUpdateFailedError as refused:
            cause = refused.cause
            assert isinstance(cause, ApplicationError) and cause.type == EXTEND_REFUSED, cause
            outcomes.append(cause)
    view = await handle.query(STATE_QUERY, result_type=CheckoutView)
    assert view.expires_at is not None
    assert view.expires_at <= held.history[0].at + timedelta(seconds=1000)
    assert {h.expires_at for h in view.holds} == {view.expires_at}
    assert any(isinstance(outcome, CheckoutView) for outcome in outcomes)
    await handle.execute_update(CANCEL, result_type=CheckoutView)
    assert await counters(saga_services, inventory) == NOTHING_MOVED


async def test_compensation_is_retried_hourly_without_a_signal(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    inventory = await seed(saga_services)
    handle, _ = await start_checkout(saga_client, saga_settings, inventory.request(), remote=True)
    saga_services["hotel"].refuse.add("release")
    stuck = await handle.execute_update(CANCEL, result_type=CheckoutView)
    assert stuck.status == CheckoutStatus.NEEDS_ATTENTION and stuck.error and "hotel" in stuck.error
    assert (await counters(saga_services, inventory))["hotel"] == (1, 0)

    saga_services["hotel"].refuse.clear()  # fixed, and nobody signals
    result = await handle.result()  # skips time to the next hourly round
    assert result.status == CheckoutStatus.CANCELLED and result.error is None
    attention = next(c for c in result.history if c.status == CheckoutStatus.NEEDS_ATTENTION)
    assert result.history[-1].at - attention.at >= checkout_saga.COMPENSATION_RETRY_EVERY  # the workflow's clock
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    await assert_ledger_clean(saga_services)


async def test_a_failing_claim_release_does_not_hold_up_the_checkout(
    saga_client: Client, saga_settings: Settings, saga_services, saga_engine, caplog: pytest.LogCaptureFixture
) -> None:
    settings = own_queues(saga_settings)
    limits = RefusingClaims(saga_engine, 3, 9, timedelta(hours=3))
    inventory = await seed(saga_services)
    request = inventory.request(customer=unique("cust"))
    async with running(build_workers(saga_client, settings, "all", saga_services, limits)):
        handle = await begin_checkout(saga_client, settings, request)
        await limits.claim(handle.id, request.customer_id, {("orders", inventory.sku): 1})
        await handle.execute_update(SUBMIT, result_type=CheckoutView)
        with caplog.at_level(logging.WARNING):
            confirmed = await handle.execute_update(CONFIRM, result_type=CheckoutView)
            result = await handle.result()
    assert confirmed.status == result.status == CheckoutStatus.CONFIRMED
    assert f"claim of {handle.id} not released" in caplog.text
    # The claim is still there (the sweeper expires it): the real release finds it.
    assert await CustomerLimits.release(limits, handle.id) is True
    await assert_ledger_clean(saga_services)


async def _called(service, op: str) -> bool:  # type: ignore[no-untyped-def]
    return service.calls.get(op, 0) > 0


async def _true(value: bool) -> bool:
    return value
