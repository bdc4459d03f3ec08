"""CheckoutSaga end to end on the time-skipping server: real activities, real ledgers, statuses and counters."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from services.bookings.models import RECORD_ACTIVITY, RecordInput
from services.types import HoldStatus
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import counters, seed, start_checkout
from workflows import search_attributes
from workflows.models import CANCEL, CONFIRM, EXTEND, UPDATE_REFUSED, CheckoutStatus, CheckoutView, ExtendInput

pytestmark = pytest.mark.usefixtures("saga_workers")

NOTHING_MOVED = {"flight": (0, 0), "hotel": (0, 0), "orders": (0, 0)}


async def test_hold_then_confirm(saga_client: Client, saga_settings: Settings, saga_services) -> None:
    inventory = await seed(saga_services)
    handle, view = await start_checkout(saga_client, saga_settings, inventory.request(seats=2, rooms=1, quantity=3))
    assert view.status == CheckoutStatus.HELD
    assert view.expires_at is not None
    assert {h.status for h in view.holds} == {HoldStatus.ACTIVE}
    assert await counters(saga_services, inventory) == {"flight": (2, 0), "hotel": (1, 0), "orders": (3, 0)}

    confirmed = await handle.execute_update(CONFIRM, result_type=CheckoutView)
    assert confirmed.status == CheckoutStatus.CONFIRMED
    assert {h.service: h.status for h in confirmed.holds} == {s: HoldStatus.CONFIRMED for s in NOTHING_MOVED}
    assert await counters(saga_services, inventory) == {"flight": (0, 2), "hotel": (0, 1), "orders": (0, 3)}
    result = await handle.result()
    assert [c.status for c in result.history] == [
        CheckoutStatus.PENDING, CheckoutStatus.HELD, CheckoutStatus.CONFIRMED
    ]
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(search_attributes.CHECKOUT_STATUS) == "CONFIRMED"
    assert attributes.get(search_attributes.CUSTOMER_ID) == "cust-1"
    assert f"orders:{inventory.sku}" in (attributes.get(search_attributes.RESOURCES) or [])
    writes = await record_writes(saga_client, handle)
    assert writes[0].first_write and not any(w.first_write for w in writes[1:]), "only the first write says so"
    assert writes[-1].status == "CONFIRMED"
    await assert_ledger_clean(saga_services)


async def record_writes(client: Client, handle: WorkflowHandle[Any, Any]) -> list[RecordInput]:
    """The booking record's writes the saga scheduled, in order, as their activity received them."""
    writes = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == RECORD_ACTIVITY:
                [new] = await client.data_converter.decode(scheduled.input.payloads, [RecordInput])
                writes.append(new)
    return writes


@pytest.mark.parametrize("short", ["flight", "hotel", "orders"])
async def test_one_service_short_rejects_and_releases_the_others(
    saga_client: Client, saga_settings: Settings, saga_services, short: str
) -> None:
    inventory = await seed(saga_services, seats=5, rooms=3, stock=10)
    too_many = {"flight": {"seats": 6}, "hotel": {"rooms": 4}, "orders": {"quantity": 11}}[short]
    handle, view = await start_checkout(saga_client, saga_settings, inventory.request(**too_many))
    assert view.status == CheckoutStatus.REJECTED, view.error
    assert len(view.unavailable) >= 1 and view.unavailable[0].available < view.unavailable[0].requested
    assert view.alternatives, "a rejection offers alternatives"
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    statuses = {h.service: h.status for h in view.holds}
    assert HoldStatus.ACTIVE not in statuses.values()
    assert (await handle.result()).status == CheckoutStatus.REJECTED
    await assert_ledger_clean(saga_services)


async def test_expiry_releases_everything(saga_client: Client, saga_settings: Settings, saga_services) -> None:
    inventory = await seed(saga_services)
    handle, view = await start_checkout(saga_client, saga_settings, inventory.request())
    assert view.status == CheckoutStatus.HELD
    result = await handle.result()  # skips the 600 s hold
    assert result.status == CheckoutStatus.EXPIRED
    assert {h.status for h in result.holds} == {HoldStatus.RELEASED}
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    await assert_ledger_clean(saga_services)


async def test_cancel_releases_and_confirm_after_is_refused(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    inventory = await seed(saga_services)
    handle, _ = await start_checkout(saga_client, saga_settings, inventory.request())
    cancelled = await handle.execute_update(CANCEL, result_type=CheckoutView)
    assert cancelled.status == CheckoutStatus.CANCELLED
    assert await counters(saga_services, inventory) == NOTHING_MOVED
    assert (await handle.result()).status == CheckoutStatus.CANCELLED
    await assert_ledger_clean(saga_services)


async def test_extend_moves_the_expiry(saga_client: Client, saga_settings: Settings, saga_services) -> None:
    inventory = await seed(saga_services)
    handle, held = await start_checkout(saga_client, saga_settings, inventory.request(), hold_seconds=600)
    assert held.expires_at is not None
    extended = await handle.execute_update(EXTEND, ExtendInput(seconds=900), result_type=CheckoutView)
    assert extended.status == CheckoutStatus.HELD
    assert extended.expires_at is not None and (extended.expires_at - held.expires_at).total_seconds() == 900
    assert {h.expires_at for h in extended.holds} == {extended.expires_at}
    result = await handle.result()
    assert result.status == CheckoutStatus.EXPIRED
    assert result.history[-1].at >= extended.expires_at  # the workflow's clock, not the test's
    assert await counters(saga_services, inventory) == NOTHING_MOVED


async def test_extend_beyond_the_bounds_is_refused(saga_client: Client, saga_settings: Settings, saga_services) -> None:
    inventory = await seed(saga_services)
    handle, _ = await start_checkout(
        saga_client, saga_settings, inventory.request(), extend_max_seconds=600, hold_lifetime_max_seconds=1000
    )
    for seconds in (601, 500):  # more than one call allows; past the lifetime from the start (600 + 500 > 1000)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(EXTEND, ExtendInput(seconds=seconds), result_type=CheckoutView)
        assert isinstance(refused.value.cause, ApplicationError)
    await handle.execute_update(CANCEL, result_type=CheckoutView)


async def test_confirm_after_expiry_is_refused(saga_client: Client, saga_settings: Settings, saga_services) -> None:
    inventory = await seed(saga_services)
    handle, _ = await start_checkout(saga_client, saga_settings, inventory.request())
    assert (await handle.result()).status == CheckoutStatus.EXPIRED
    # The workflow has closed: the server refuses the update, nothing is confirmed.
    with pytest.raises(Exception):  # noqa: B017 - RPCError NOT_FOUND or WorkflowUpdateFailedError
        await handle.execute_update(CONFIRM, result_type=CheckoutView)
    assert await counters(saga_services, inventory) == NOTHING_MOVED


async def test_cancel_after_confirm_is_refused(saga_client: Client, saga_settings: Settings, saga_services) -> None:
    inventory = await seed(saga_services)
    # Remote placement: the time-skipping server can lose an update accepted in a workflow task that fails because
    # another update arrived while local activities ran (the dev server handles it; tests/chaos drives it there).
    handle, _ = await start_checkout(
        saga_client, saga_settings, inventory.request(parts=("orders",), quantity=2), remote=True
    )
    # Slow the confirm down (two transient failures) so the saga is still running when the next updates arrive.
    saga_services["orders"].fail_times["confirm"] = 2
    first = await handle.start_update(CONFIRM, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=CheckoutView)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(CANCEL, result_type=CheckoutView)
    assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == UPDATE_REFUSED
    again = await handle.execute_update(CONFIRM, result_type=CheckoutView)  # repeatable
    assert again.status == (await first.result()).status == CheckoutStatus.CONFIRMED
    assert (await counters(saga_services, inventory))["orders"] == (0, 2)
    await assert_ledger_clean(saga_services)
