"""Record CheckoutSaga histories for the replay test: `python -m tests.replay.record [--dev-server] [NAME...]`.

Runs each scenario on a fresh time-skipping test server (or, with --dev-server, on the real Temporal dev server,
as `booking-saga dev` starts it: the file is then named dev_<name>.json) with the real activities on PostgreSQL
($DATABASE_URL, or an embedded server deleted afterwards) and writes tests/replay/histories/<name>.json.

`python -m tests.replay.record --stamp` refreshes tests/replay/histories.stamp, the hash of workflows/*.py
that tests/replay/test_replay.py compares: it refuses while workflows/ changed and no history was added or
re-recorded since the last stamp (`--stamp --no-new-path` for a change that adds no path: a comment, a rename).

When to record a new history: after a deliberate change to CheckoutSaga's commands, put the change behind
`workflow.patched("...")`, keep the old files (they must still replay) and record the new path under a new
name: `python -m tests.replay.record --suffix _v2 happy` writes happy_v2.json. A history of a real
server can be saved too: `temporal workflow show --workflow-id ID --output json > tests/replay/histories/x.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runtime.children import Children
from runtime.codec import data_converter
from runtime.devstack import dev_server_args, start_dev_server
from runtime.embedded import free_port, start_postgres
from runtime.temporal import test_server_path
from runtime.worker import build_workers
from services.bookings.records import BookingRecords
from services.cars.schemas import CarRequest, DepotInventory
from services.db import create_engine
from services.flight.schemas import FlightInventory
from services.migrate import reset
from services.registry import NAMES, build_services, local_names
from services.types import Money
from settings import Settings
from tests.replay.stamp import refresh_stamp
from tests.workflow.helpers import (
    FaultyService,
    RefusingClaims,
    begin_checkout,
    eventually,
    register_search_attributes,
    seed,
    seed_paid,
    start_checkout,
    unique,
)
from workflows.cancel_sale import CANCEL_SALE_WORKFLOW, CancelSaleInput, CancelSaleResult
from workflows.cancel_sale import workflow_id as cancel_sale_id
from workflows.models import (
    CANCEL,
    CANCEL_PARTS,
    CONFIRM,
    EXTEND,
    RETRY_COMPENSATION_SIGNAL,
    STATE_QUERY,
    SUBMIT,
    CancelPartsInput,
    CheckoutRequest,
    CheckoutView,
    ExtendInput,
)

HISTORIES = Path(__file__).parent / "histories"
Scenario = Callable[
    [Client, Settings, dict[str, FaultyService], WorkflowEnvironment], Awaitable[WorkflowHandle[Any, Any]]
]


async def happy(client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment):
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request(seats=2))
    await handle.execute_update(EXTEND, ExtendInput(seconds=60), result_type=CheckoutView)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def happy_attributes_at_start(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """Started as the API starts it, search attributes set: the workflow upserts none before its holds."""
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request(seats=2), attributes_at_start=True)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def rejected(client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment):
    inventory = await seed(services, rooms=1)
    handle, _ = await start_checkout(client, settings, inventory.request(rooms=2))
    return handle


async def expired(client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment):
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request())
    return handle


async def cancelled(client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment):
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request())
    await handle.execute_update(CANCEL, result_type=CheckoutView)
    return handle


async def needs_attention(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    inventory = await seed(services)
    # Remote holds, as when its first histories were recorded: with local ones the release retried thousands of
    # times here without reaching NEEDS_ATTENTION (its retries wait on workflow timers, which the time-skipping server
    # fires at once; its patience appears to run on the worker's clock), and the query loop below spun.
    handle, _ = await start_checkout(client, settings, inventory.request(), remote=True)
    services["hotel"].fail_times["release"] = 10_000
    while (await handle.query(STATE_QUERY, result_type=CheckoutView)).status != "NEEDS_ATTENTION":
        await env.sleep(30)
    services["hotel"].fail_times.clear()
    await handle.signal(RETRY_COMPENSATION_SIGNAL)
    return handle


async def local_happy(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """The fast shape: every participant placed local (its holds are local activities), extended, confirmed; the
    hold clock starts when HELD and the customer's claim is released at the end (both behind workflow.patched)."""
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request(seats=2), attributes_at_start=True)
    await handle.execute_update(EXTEND, ExtendInput(seconds=60), result_type=CheckoutView)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def local_rejected(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """The fast shape, one participant short: rolled back, REJECTED with alternatives."""
    inventory = await seed(services, rooms=1)
    handle, _ = await start_checkout(client, settings, inventory.request(rooms=2), attributes_at_start=True)
    return handle


async def car(client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment):
    """A car rental with a flight and an item (the fourth participant), confirmed."""
    inventory = await seed(services)
    depot = unique("DEP")
    await services["cars"].upsert(depot, DepotInventory(
        city="London", cars={"compact": 3},
        days_from=inventory.check_in, days_to=inventory.check_in + timedelta(days=9),
    ))
    request = CheckoutRequest.model_validate({
        **inventory.request(parts=("flight", "orders")).model_dump(exclude_none=True),
        "car": CarRequest(depot_id=depot, car_class="compact", pick_up=inventory.check_in,
                          drop_off=inventory.check_in + timedelta(days=3), cars=1).model_dump(),
    })
    handle, _ = await start_checkout(client, settings, request, attributes_at_start=True)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def failed_confirm(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """FAILED: one part refuses its confirm; the confirmed parts stay sold, the other is released."""
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request())
    services["orders"].refuse.add("confirm")
    try:
        await handle.execute_update(CONFIRM, result_type=CheckoutView)
    finally:
        services["orders"].refuse.clear()
    return handle


async def failed_hold(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """FAILED: a hold error that is not a shortage; everything rolled back."""
    inventory = await seed(services)
    services["hotel"].refuse.add("hold")
    try:
        handle, _ = await start_checkout(client, settings, inventory.request())
    finally:
        services["hotel"].refuse.clear()
    return handle


async def operator_cancel(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """The workflow itself cancelled (an operator): released, ends cancelled."""
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request())
    await handle.cancel()
    return handle


async def cancel_before_held(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """CANCELLED while the holds were still being placed (a remote hold that had not answered)."""
    inventory = await seed(services)
    flight = services["flight"]
    flight.hang_before_hold = True
    handle = await begin_checkout(client, settings, inventory.request(), remote=True)

    async def hold_started() -> bool:
        return flight.calls.get("hold", 0) > 0

    await eventually(hold_started)
    await handle.execute_update(CANCEL, result_type=CheckoutView)
    flight.unblock.set()

    async def delivered() -> bool:
        return bool(flight.late_hold_outcome)

    await eventually(delivered)
    flight.clear()
    return handle


async def late_hold_failure(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """REJECTED: both ledgers short; the flight's hold fails only after the saga stopped waiting for it, while the
    saga is still open (the items' release refused, NEEDS_ATTENTION, then retried)."""
    inventory = await seed(services, seats=0, stock=0)
    flight, orders = services["flight"], services["orders"]
    flight.hang_before_hold = True
    orders.refuse.add("release")
    handle = await begin_checkout(client, settings, inventory.request(parts=("flight", "orders")), remote=True)
    await handle.execute_update(SUBMIT, result_type=CheckoutView)

    async def needs_attention() -> bool:
        return (await handle.query(STATE_QUERY, result_type=CheckoutView)).status.value == "NEEDS_ATTENTION"

    await eventually(needs_attention)
    flight.unblock.set()

    async def delivered() -> bool:
        return bool(flight.late_hold_outcome)

    await eventually(delivered)
    orders.refuse.clear()
    await handle.signal(RETRY_COMPENSATION_SIGNAL)
    return handle


async def extend_refused(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """Extends past the bounds refused (by the validator: no event), one within them accepted, then cancelled."""
    inventory = await seed(services)
    handle, _ = await start_checkout(
        client, settings, inventory.request(), extend_max_seconds=600, hold_lifetime_max_seconds=1000
    )
    for seconds in (601, 500):
        try:
            await handle.execute_update(EXTEND, ExtendInput(seconds=seconds), result_type=CheckoutView)
        except WorkflowUpdateFailedError:
            pass
        else:
            raise AssertionError(f"an extend by {seconds}s was accepted")
    await handle.execute_update(EXTEND, ExtendInput(seconds=300), result_type=CheckoutView)
    await handle.execute_update(CANCEL, result_type=CheckoutView)
    return handle


async def needs_attention_hourly(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """NEEDS_ATTENTION resolved by the hourly retry, with no operator signal."""
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request(), remote=True)
    services["hotel"].refuse.add("release")
    await handle.execute_update(CANCEL, result_type=CheckoutView)
    services["hotel"].refuse.clear()
    return handle  # record() waits for the result: the time-skipping server moves to the next round


async def claim_release_failed(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """CONFIRMED although the customer's claim could not be released (CLAIM_FAILURE_PATCH)."""
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request())
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def _sold(client: Client, settings: Settings, services: dict[str, FaultyService], **seeded: Any):
    inventory = await seed(services, **seeded)
    handle, _ = await start_checkout(client, settings, inventory.request(), attributes_at_start=True)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    await handle.result()  # closed: its record (CONFIRMED) is written
    return inventory, handle


async def _cancel_sale(client: Client, settings: Settings, checkout_id: str, parts: list[str]):
    return await client.start_workflow(
        CANCEL_SALE_WORKFLOW,
        CancelSaleInput(checkout_id=checkout_id, parts=parts,
                        task_queues={name: settings.task_queue(name) for name in NAMES},
                        local_participants=list(local_names(settings.participant_placements))),
        id=cancel_sale_id(checkout_id, parts), task_queue=settings.task_queue_checkout, result_type=CancelSaleResult,
    )


async def recorded_happy(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """The saga writing its booking record at each status change (patch booking-record), confirmed."""
    _, handle = await _sold(client, settings, services)
    return handle


async def part_released(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """A HELD checkout's hotel released (the cancel_parts update), the rest confirmed."""
    inventory = await seed(services)
    handle, _ = await start_checkout(client, settings, inventory.request(), attributes_at_start=True)
    await handle.execute_update(CANCEL_PARTS, CancelPartsInput(parts=["hotel"]), result_type=CheckoutView)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def _paid_checkout(
    client: Client, settings: Settings, services: dict[str, FaultyService], balance: int, quote: int | None = None
) -> tuple[WorkflowHandle[Any, CheckoutView], CheckoutView]:
    """A priced flight seat and item paid from a wallet holding `balance` (the total is 12 000 EUR cents); with a
    `quote`, started as the API starts a paid checkout (the payment authorizes the quote beside the holds)."""
    request = (await seed_paid(services, balance=balance)).request
    return await start_checkout(client, settings, request, attributes_at_start=True,
                                quote=None if quote is None else Money(amount=quote, currency="EUR"))


async def paid(client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment):
    """Inventory held, then the wallet authorized (stage 1); confirm captures, then confirms the inventory."""
    handle, _ = await _paid_checkout(client, settings, services, balance=50_000)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def paid_declined(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """The wallet holds too little: every hold released, REJECTED naming payment."""
    handle, _ = await _paid_checkout(client, settings, services, balance=5_000)
    return handle


async def paid_refunded(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """The flight's hold ends behind the saga's back: confirm captures, the flight's confirm fails, the capture
    is refunded, FAILED."""
    handle, view = await _paid_checkout(client, settings, services, balance=50_000)
    await services["flight"].release(f"{view.checkout_id}:flight")
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def paid_sale_cancelled(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """A CancelSale run of a paid sale: the items returned and their share refunded, the rest still sold."""
    handle, _ = await _paid_checkout(client, settings, services, balance=50_000)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    await handle.result()  # closed: its record (CONFIRMED) is written
    return await _cancel_sale(client, settings, handle.id, ["orders"])


async def sale_cancelled(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """A CancelSale run: every part of a confirmed checkout given back, the record CANCELLED."""
    _, handle = await _sold(client, settings, services)
    return await _cancel_sale(client, settings, handle.id, [])


async def part_returned(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """A CancelSale run of one part (the items), after one failed return attempt."""
    _, handle = await _sold(client, settings, services)
    services["orders"].fail_times["return_sale"] = 1
    return await _cancel_sale(client, settings, handle.id, ["orders"])


async def cancel_window_closed(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """A CancelSale run refused: the flight departs within the window (its part named, nothing returned)."""
    inventory, handle = await _sold(client, settings, services)
    await services["flight"].upsert(inventory.flight_id, FlightInventory(
        origin="LHR", destination="JFK", departs_at=datetime.now(UTC) + timedelta(hours=2),
        seats={"economy": 5, "business": 10},
    ))
    return await _cancel_sale(client, settings, handle.id, [])


async def unrecorded_sale(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """Two holds sold by a task the server lost (confirmed in the ledgers behind the history's back), then the
    customer cancels: their sales are returned, the rest released, CANCELLED (unrecorded-sale-given-back)."""
    inventory = await seed(services)
    handle, view = await start_checkout(client, settings, inventory.request())
    for service in ("flight", "orders"):
        await services[service].real.confirm(f"{view.checkout_id}:{service}")
    await handle.execute_update(CANCEL, result_type=CheckoutView)
    return handle


async def paid_unrecorded_sale(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """A paid checkout captured and confirmed by a task the server lost, then the hold expires: the capture is
    refunded whole, the inventory returned, EXPIRED."""
    handle, view = await _paid_checkout(client, settings, services, balance=50_000)
    for service in ("wallet", "flight", "orders"):
        await services[service].real.confirm(f"{view.checkout_id}:{service}")
    return handle


async def paid_beside(client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment):
    """The quote authorized beside the inventory's holds (payment-beside-holds); confirm captures, then confirms."""
    handle, _ = await _paid_checkout(client, settings, services, balance=50_000, quote=12_000)
    await handle.execute_update(CONFIRM, result_type=CheckoutView)
    return handle


async def paid_beside_declined(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """The wallet holds too little for the quote: every hold placed beside it released, REJECTED naming payment."""
    handle, _ = await _paid_checkout(client, settings, services, balance=5_000, quote=12_000)
    return handle


async def paid_repriced(
    client: Client, settings: Settings, services: dict[str, FaultyService], env: WorkflowEnvironment
):
    """Held lines that add up to more than the quote (a price changed after the API read it): REJECTED naming
    payment, everything released."""
    handle, _ = await _paid_checkout(client, settings, services, balance=50_000, quote=11_000)
    return handle


SCENARIOS: dict[str, Scenario] = {
    "happy": happy, "happy_attributes_at_start": happy_attributes_at_start,
    "rejected": rejected, "expired": expired, "cancelled": cancelled,
    "needs_attention": needs_attention,
    "local_happy": local_happy, "local_rejected": local_rejected, "car": car,
    # The API's search attributes with the CustomerId pseudonym, kept by the saga (the keep-customer-pseudonym patch).
    "customer_pseudonym": happy_attributes_at_start,
    # The same, recorded by a worker from before the patch (the API updated first): it published the plain id.
    "customer_pseudonym_former_worker": happy_attributes_at_start,
    "failed_confirm": failed_confirm, "failed_hold": failed_hold, "operator_cancel": operator_cancel,
    "cancel_before_held": cancel_before_held, "extend_refused": extend_refused,
    "needs_attention_hourly": needs_attention_hourly, "claim_release_failed": claim_release_failed,
    "paid": paid, "paid_declined": paid_declined, "paid_refunded": paid_refunded,
    "paid_sale_cancelled": paid_sale_cancelled,
    "recorded_happy": recorded_happy, "part_released": part_released, "sale_cancelled": sale_cancelled,
    "part_returned": part_returned, "cancel_window_closed": cancel_window_closed,
    "late_hold_failure": late_hold_failure,
    "unrecorded_sale": unrecorded_sale, "paid_unrecorded_sale": paid_unrecorded_sale,
    "paid_beside": paid_beside, "paid_beside_declined": paid_beside_declined, "paid_repriced": paid_repriced,
}
# Scenarios whose workers need the customers' claims, and one that fails to release them.
REFUSING_CLAIMS = {"claim_release_failed"}


async def record(names: list[str], database_url: str, *, dev_server: bool = False, suffix: str = "") -> None:
    await reset(database_url)
    engine = create_engine(database_url, pool_size=3)
    services = {name: FaultyService(service) for name, service in build_services(engine).items()}
    settings = Settings()
    records = BookingRecords(engine)
    HISTORIES.mkdir(exist_ok=True)
    for name in names:
        async with _server(dev_server) as env:
            limits = RefusingClaims(engine, 3, 9, timedelta(hours=3)) if name in REFUSING_CLAIMS else None
            workers = build_workers(env.client, settings, "all", services, limits, records=records)  # type: ignore[arg-type]
            runs = [asyncio.create_task(worker.run()) for worker in workers]
            try:
                handle = await SCENARIOS[name](env.client, settings, services, env)
                try:
                    result = await handle.result()
                    final: object = getattr(result, "status", result)
                except WorkflowFailureError as failure:
                    final = f"closed without a result ({failure.cause})"
                history = await handle.fetch_history()
                path = HISTORIES / f"{'dev_' if dev_server else ''}{name}{suffix}.json"
                path.write_text(history.to_json())
                print(f"{name}: {final} -> {path}")
            finally:
                for service in services.values():
                    service.clear()
                await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
                await asyncio.gather(*runs, return_exceptions=True)
    await engine.dispose()


@contextlib.asynccontextmanager
async def _server(dev_server: bool) -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server, or the dev server as `booking-saga dev` starts it (in memory)."""
    if not dev_server:
        env = await WorkflowEnvironment.start_time_skipping(
            # Plaintext payloads (no PAYLOAD_KEYS), whatever the environment says: a recorded history must replay
            # anywhere, and the codec leaves plaintext payloads as they are (runtime/codec.py).
            test_server_existing_path=test_server_path(), data_converter=data_converter(Settings(payload_keys=""))
        )
        try:
            await register_search_attributes(env.client)
            yield env
        finally:
            await env.shutdown()
        return
    children = Children()
    port = free_port()
    try:
        start_dev_server(children, dev_server_args(port, namespace="default"))
        client = await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
        yield WorkflowEnvironment.from_client(client)
    finally:
        children.stop_all()


def main() -> None:
    import os

    args = sys.argv[1:]
    if args[:1] == ["--stamp"]:
        sys.exit(refresh_stamp(allow_no_new_path="--no-new-path" in args))
    dev_server = "--dev-server" in args
    suffix = ""
    if "--suffix" in args:  # a new path of every scenario named, beside the old files: happy_v2.json
        at = args.index("--suffix")
        suffix, args = args[at + 1], args[:at] + args[at + 2:]
    names = [arg for arg in args if arg != "--dev-server"]
    if not names:
        # Recording every scenario would overwrite the old histories, which must stay as they were recorded.
        sys.exit(f"name the scenario(s) to record: {', '.join(SCENARIOS)}")
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenario(s) {', '.join(sorted(unknown))}: choose from {', '.join(SCENARIOS)}")
    if os.environ.get("DATABASE_URL"):
        asyncio.run(record(names, os.environ["DATABASE_URL"], dev_server=dev_server, suffix=suffix))
        return
    with tempfile.TemporaryDirectory() as scratch:
        server = start_postgres(Path(scratch) / "pg", delete_on_stop=True)
        try:
            asyncio.run(record(names, server.url, dev_server=dev_server, suffix=suffix))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
