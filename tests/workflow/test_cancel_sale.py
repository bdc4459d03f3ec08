"""CancelSale on the time-skipping server with the real ledgers and booking records (workflows/cancel_sale.py):
a return that keeps failing puts the record in NEEDS_ATTENTION and is tried again on the operator's signal; a
repeated cancellation gives nothing back twice; a part at a time; the record's activities local (one workflow task)
or activity tasks of their own."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from services.bookings.models import DEADLINES_ACTIVITY, LOAD_ACTIVITY, MARK_ACTIVITY
from services.bookings.records import BookingRecords
from services.registry import NAMES, local_names
from services.types import HoldStatus
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import FaultyService, counters, seed, start_checkout
from workflows.cancel_sale import CANCEL_SALE_WORKFLOW, CancelSaleInput, CancelSaleResult, workflow_id
from workflows.models import CONFIRM, RETRY_COMPENSATION_SIGNAL, CheckoutStatus, CheckoutView

pytestmark = pytest.mark.usefixtures("saga_workers")


async def sold(client: Client, settings: Settings, services: dict[str, FaultyService]) -> tuple[Any, str]:
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request())
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    await handle.result()  # closed: its record says CONFIRMED
    return inventory, handle.id


async def start(
    client: Client, settings: Settings, checkout_id: str, parts: list[str], *, remote: bool = False,
    local_records: bool = True,
) -> Any:
    """`remote`: the returns as activities on the participants' queues (their timeouts are the server's, which the
    time-skipping server moves; a local activity's are the worker's wall clock). `local_records`: the record's
    activities local (CANCEL_SALE_LOCAL_ACTIVITIES)."""
    return await client.start_workflow(
        CANCEL_SALE_WORKFLOW,
        CancelSaleInput(checkout_id=checkout_id, parts=parts,
                        task_queues={name: settings.task_queue(name) for name in NAMES},
                        local_participants=[] if remote else list(local_names(settings.participant_placements)),
                        local_records=local_records),
        id=workflow_id(checkout_id, parts), task_queue=settings.task_queue_checkout, result_type=CancelSaleResult,
    )


async def test_a_return_that_keeps_failing_needs_attention_until_retried(
    saga_client: Client, saga_settings: Settings, saga_services: dict[str, FaultyService],
    saga_engine: AsyncEngine, time_skipping_env: WorkflowEnvironment,
) -> None:
    inventory, checkout_id = await sold(saga_client, saga_settings, saga_services)
    records = BookingRecords(saga_engine)
    saga_services["orders"].fail_times["return_sale"] = 10_000
    handle = await start(saga_client, saga_settings, checkout_id, [], remote=True)
    for _ in range(60):
        record = await records.load(checkout_id)
        assert record is not None
        if record.status == "NEEDS_ATTENTION":
            break
        await time_skipping_env.sleep(60)
    assert record.status == "NEEDS_ATTENTION" and "orders" in str(record.view["error"]), record
    saga_services["orders"].fail_times.clear()  # the cause is fixed
    await handle.signal(RETRY_COMPENSATION_SIGNAL)
    result = await handle.result()
    view = CheckoutView.model_validate(result.view)
    assert view.status == CheckoutStatus.CANCELLED and view.error is None, view
    assert {hold.status for hold in view.holds} == {HoldStatus.RETURNED}
    assert [c.status for c in view.history][-1] == CheckoutStatus.CANCELLED
    assert await counters(saga_services, inventory) == {name: (0, 0) for name in ("flight", "hotel", "orders")}
    await assert_ledger_clean(saga_services)


async def test_parts_one_at_a_time_and_a_repeat_gives_nothing_back_twice(
    saga_client: Client, saga_settings: Settings, saga_services: dict[str, FaultyService],
) -> None:
    inventory, checkout_id = await sold(saga_client, saga_settings, saga_services)
    first = CheckoutView.model_validate((await (await start(saga_client, saga_settings, checkout_id, ["orders"]))
                                         .result()).view)
    assert first.status == CheckoutStatus.CONFIRMED
    assert {h.service: h.status for h in first.holds}["orders"] == HoldStatus.RETURNED
    # The same cancellation again (a new run under the same id): nothing moves.
    again = CheckoutView.model_validate((await (await start(saga_client, saga_settings, checkout_id, ["orders"]))
                                         .result()).view)
    assert again == first
    assert await counters(saga_services, inventory) == {"flight": (0, 1), "hotel": (0, 1), "orders": (0, 0)}
    rest = CheckoutView.model_validate((await (await start(saga_client, saga_settings, checkout_id, []))
                                        .result()).view)
    assert rest.status == CheckoutStatus.CANCELLED
    assert [c.status for c in rest.history] == [
        CheckoutStatus.PENDING, CheckoutStatus.HELD, CheckoutStatus.CONFIRMED, CheckoutStatus.CONFIRMED,
        CheckoutStatus.CANCELLED]
    assert await counters(saga_services, inventory) == {name: (0, 0) for name in ("flight", "hotel", "orders")}
    await assert_ledger_clean(saga_services)


@pytest.mark.parametrize("local_records", [True, False], ids=["local", "activity-tasks"])
async def test_the_record_local_or_as_activity_tasks(
    saga_client: Client, saga_settings: Settings, saga_services: dict[str, FaultyService], local_records: bool,
) -> None:
    """Under cancel-sale-local-records the record's read, the windows' check and the record's write are local
    activities: with local returns the whole cancellation is one workflow task. Off (the setting, or a history from
    before the patch): three activity tasks. The same outcome either way."""
    inventory, checkout_id = await sold(saga_client, saga_settings, saga_services)
    handle = await start(saga_client, saga_settings, checkout_id, [], local_records=local_records)
    view = CheckoutView.model_validate((await handle.result()).view)
    assert view.status == CheckoutStatus.CANCELLED, view
    assert {hold.status for hold in view.holds} == {HoldStatus.RETURNED}
    assert await counters(saga_services, inventory) == {name: (0, 0) for name in ("flight", "hotel", "orders")}
    events = [event async for event in handle.fetch_history_events()]
    scheduled = sorted(e.activity_task_scheduled_event_attributes.activity_type.name for e in events
                       if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    tasks = sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    if local_records:
        assert (scheduled, tasks) == ([], 1), (scheduled, tasks)
    else:
        assert scheduled == [DEADLINES_ACTIVITY, LOAD_ACTIVITY, MARK_ACTIVITY], scheduled
        assert tasks == 4, tasks
    await assert_ledger_clean(saga_services)
