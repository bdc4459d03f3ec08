"""Record CheckoutSaga histories for the replay test: `python -m tests.replay.record [NAME...]`.

Runs each scenario on a fresh time-skipping test server with the real activities on PostgreSQL
($DATABASE_URL, or an embedded server deleted afterwards) and writes tests/replay/histories/<name>.json.

When to record a new history: after a deliberate change to CheckoutSaga's commands, put the change behind
`workflow.patched("...")`, keep the old files (they must still replay) and record the new path under a new
name, e.g. `python -m tests.replay.record happy` then rename happy.json to happy_v2.json. A history of a real
server can be saved too: `temporal workflow show --workflow-id ID --output json > tests/replay/histories/x.json`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from booking_saga.embedded import start_postgres
from booking_saga.settings import Settings
from booking_saga.temporal import test_server_path
from booking_saga.worker import build_workers
from services.cars.schemas import CarRequest, DepotInventory
from services.db import create_engine
from services.migrate import reset
from services.registry import build_services
from tests.workflow.helpers import FaultyService, register_search_attributes, seed, start_checkout, unique
from workflows.models import (
    CANCEL,
    CONFIRM,
    EXTEND,
    RETRY_COMPENSATION_SIGNAL,
    STATE_QUERY,
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
    handle, _ = await start_checkout(client, settings, inventory.request())
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


SCENARIOS: dict[str, Scenario] = {
    "happy": happy, "happy_attributes_at_start": happy_attributes_at_start,
    "rejected": rejected, "expired": expired, "cancelled": cancelled,
    "needs_attention": needs_attention,
    "local_happy": local_happy, "local_rejected": local_rejected, "car": car,
}


async def record(names: list[str], database_url: str) -> None:
    await reset(database_url)
    engine = create_engine(database_url, pool_size=3)
    services = {name: FaultyService(service) for name, service in build_services(engine).items()}
    settings = Settings()
    HISTORIES.mkdir(exist_ok=True)
    for name in names:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=test_server_path(), data_converter=pydantic_data_converter
        )
        await register_search_attributes(env.client)
        workers = build_workers(env.client, settings, "all", services)  # type: ignore[arg-type]
        runs = [asyncio.create_task(worker.run()) for worker in workers]
        try:
            handle = await SCENARIOS[name](env.client, settings, services, env)
            final = await handle.result()
            history = await handle.fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"{name}: {final.status} -> {HISTORIES / (name + '.json')}")
        finally:
            await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
            await asyncio.gather(*runs, return_exceptions=True)
            await env.shutdown()
    await engine.dispose()


def main() -> None:
    import os

    if not sys.argv[1:]:
        # Recording every scenario would overwrite the old histories, which must stay as they were recorded.
        sys.exit(f"name the scenario(s) to record: {', '.join(SCENARIOS)}")
    names = sys.argv[1:]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenario(s) {', '.join(sorted(unknown))}: choose from {', '.join(SCENARIOS)}")
    if os.environ.get("DATABASE_URL"):
        asyncio.run(record(names, os.environ["DATABASE_URL"]))
        return
    with tempfile.TemporaryDirectory() as scratch:
        server = start_postgres(Path(scratch) / "pg", delete_on_stop=True)
        try:
            asyncio.run(record(names, server.url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
