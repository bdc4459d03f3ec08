"""A Temporal server restart between a local confirm's commit and the end of its workflow task, on the real dev
server (its SQLite file kept across the restart): the task and the confirm update in it are lost, the ledger has
sold the holds, the history says HELD. The hold then expires, and the saga gives the sales back
(`unrecorded-sale-given-back`, taken unasked under `patches-asked-at-start`): EXPIRED, every hold RETURNED, nothing
sold. Without the patch: NEEDS_ATTENTION with the stock sold (what the chaos suite met once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.worker import Worker

from runtime.children import Children
from runtime.codec import data_converter
from runtime.devstack import dev_server_args, start_dev_server
from runtime.embedded import free_port
from runtime.worker import build_workers
from services.types import HoldStatus
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import FaultyService, counters, register_search_attributes, seed, start_checkout
from workflows.models import CONFIRM, FINAL_STATUSES, STATE_QUERY, CheckoutStatus, CheckoutView

pytestmark = [pytest.mark.devserver, pytest.mark.slow]


@contextlib.asynccontextmanager
async def dev_server(db_file: Path) -> AsyncIterator[tuple[Client, list[str], Children]]:
    """The dev server on `db_file` (as the chaos suite runs it), its args to start it again, and its Children."""
    children = Children()
    port = free_port()
    args = dev_server_args(port, namespace="default", db_file=db_file)
    try:
        start_dev_server(children, args)
        client = await Client.connect(f"127.0.0.1:{port}", data_converter=data_converter(Settings(payload_keys="")))
        await register_search_attributes(client)
        yield client, args, children
    finally:
        children.stop_all()


def kill(children: Children, server: subprocess.Popen[bytes]) -> None:
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    children.forget(server)


async def test_a_confirm_lost_with_a_server_restart_is_given_back_when_the_hold_expires(
    tmp_path: Path, saga_settings: Settings, saga_services: dict[str, FaultyService]
) -> None:
    async with dev_server(tmp_path / "temporal.db") as (client, args, children):
        workers = start_workers(client, saga_settings, saga_services)
        try:
            inventory = await seed(saga_services)
            handle, view = await start_checkout(client, saga_settings, inventory.request(), hold_seconds=5)
            assert view.status == CheckoutStatus.HELD, view.error
            orders = saga_services["orders"]
            orders.hang_after_confirm = True  # its confirm commits, then the task waits: the server dies now
            update = asyncio.create_task(handle.execute_update(CONFIRM, result_type=CheckoutView))
            await asyncio.wait_for(orders.confirmed.wait(), 30)

            kill(children, children.started[-1][1])
            update.cancel()  # the customer's confirm ended in an error: it never answered 200
            with pytest.raises((WorkflowUpdateRPCTimeoutOrCancelledError, asyncio.CancelledError)):
                await update
            # The task's worker goes with the server: its completion (the confirms' markers, the update's
            # acceptance) never reaches the restarted server, which knows nothing of the update either.
            orders.unblock.set()
            await stop_workers(workers)
            start_dev_server(children, args)
            workers = start_workers(client, saga_settings, saga_services)

            result = await settled(handle)
            assert result.status == CheckoutStatus.EXPIRED, (result.error, result.history)
            assert {h.service: h.status for h in result.holds} == {
                "flight": HoldStatus.RETURNED, "hotel": HoldStatus.RETURNED, "orders": HoldStatus.RETURNED,
            }
            assert CheckoutStatus.NEEDS_ATTENTION not in [change.status for change in result.history]
            assert await counters(saga_services, inventory) == {"flight": (0, 0), "hotel": (0, 0), "orders": (0, 0)}
            await assert_ledger_clean(saga_services)
        finally:
            for service in saga_services.values():
                service.clear()
            await stop_workers(workers)


async def settled(handle: WorkflowHandle[Any, CheckoutView]) -> CheckoutView:
    """The saga's view once it is final or NEEDS_ATTENTION (which, without the patch, it never leaves here)."""
    for _ in range(600):
        view = await handle.query(STATE_QUERY, result_type=CheckoutView)
        if view.status in FINAL_STATUSES or view.status == CheckoutStatus.NEEDS_ATTENTION:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"never settled: {view.status}")


Running = list[tuple[Worker, asyncio.Task[None]]]


def start_workers(client: Client, settings: Settings, services: dict[str, FaultyService]) -> Running:
    workers = build_workers(client, settings, "all", services)  # type: ignore[arg-type]
    return [(worker, asyncio.create_task(worker.run())) for worker in workers]


async def stop_workers(workers: Running) -> None:
    await asyncio.gather(*(worker.shutdown() for worker, _ in workers), return_exceptions=True)
    await asyncio.gather(*(run for _, run in workers), return_exceptions=True)
