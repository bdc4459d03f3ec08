"""`booking-saga worker` as an OS process against the real dev server and PostgreSQL: the sweeper runs inside a
service worker, SIGTERM / SIGINT stop a worker cleanly, and the checkout worker needs a database only when it runs
local participants' ledgers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from runtime.worker import swept
from services.db import create_engine
from services.errors import HoldNotActive
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.registry import NAMES, AnyService, build_services
from services.types import HoldStatus
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean, later, unique

pytestmark = [pytest.mark.devserver]

# Bounds on waiting for a child process, not expectations of speed: a loaded 2-core machine gets the whole bound.
READY_WITHIN = 30.0
STOP_WITHIN = 15.0
_POLL = 0.2


@dataclass
class WorkerProcess:
    """One `booking-saga worker` child; its stderr goes to a file (a pipe nobody reads could fill and block it)."""

    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def assert_alive(self) -> None:
        assert self.process.poll() is None, f"worker exited {self.process.returncode}:\n{self.stderr}"

    async def stop(self, signum: signal.Signals) -> int:
        """Send `signum` and return the exit code; a worker still running after STOP_WITHIN fails the test."""
        self.process.send_signal(signum)
        try:
            return await asyncio.to_thread(self.process.wait, STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker ignored {signum.name} for {STOP_WITHIN:.0f}s:\n{self.stderr}") from None


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(dev_server_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[StartWorker]:
    """Start `booking-saga worker --service <service>` on task queues of its own, pointed at the test's dev
    server. DATABASE_URL / REDIS_URL of the outer environment are dropped: each test says what the worker gets."""
    client = dev_server_env.client
    started: list[WorkerProcess] = []

    def start(service: str, *, database_url: str | None, **settings: str) -> WorkerProcess:
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        env.update({
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            **{key.upper(): value for key, value in settings.items()},
        })
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        stderr_path = tmp_path / f"worker-{len(started)}.stderr"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "booking_saga.cli", "worker", "--service", service],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        worker = WorkerProcess(process, stderr_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def own_queues() -> dict[str, str]:
    """TASK_QUEUE_CHECKOUT and TASK_QUEUES settings no other worker of the session polls."""
    suffix = unique("proc")
    participants = {name: f"{name}-{suffix}" for name in NAMES}
    return {"task_queue_checkout": f"checkout-{suffix}", "task_queues": json.dumps(participants)}


def participant_queue(queues: dict[str, str], name: str) -> str:
    parsed: dict[str, str] = json.loads(queues["task_queues"])
    return parsed[name]


async def eventually(check: Callable[[], Awaitable[bool]], worker: WorkerProcess, what: str) -> None:
    """Wait until `check()` holds, failing early (with the worker's stderr) if the worker exits meanwhile."""
    deadline = asyncio.get_running_loop().time() + READY_WITHIN
    while not await check():
        worker.assert_alive()
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {READY_WITHIN:.0f}s\n{worker.stderr}"
        await asyncio.sleep(_POLL)


async def polling(client: Client, task_queue: str, kind: TaskQueueType.ValueType) -> bool:
    """Whether a worker polls `task_queue`: it does so only once it is running (signal handlers installed)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
                                 task_queue_type=kind)
    )
    return len(response.pollers) > 0


@pytest.fixture(scope="module")
async def ledger_services(migrated_database_url: str) -> AsyncIterator[dict[str, AnyService]]:
    engine = create_engine(migrated_database_url, pool_size=2)
    yield build_services(engine)
    await engine.dispose()


def items(sku: str, quantity: int) -> ItemsRequest:
    return ItemsRequest(items=[ItemLine(sku=sku, quantity=quantity)])


async def assert_expired(orders: OrdersService, hold_key: str) -> None:
    with pytest.raises(HoldNotActive) as refused:
        await orders.confirm(hold_key)
    assert refused.value.status is HoldStatus.EXPIRED


async def test_sweeper_expires_overdue_holds_inside_an_orders_worker(
    start_worker: StartWorker, migrated_database_url: str, ledger_services: dict[str, AnyService]
) -> None:
    orders = ledger_services["orders"]
    assert isinstance(orders, OrdersService)
    sku = unique("SKU-sweep")
    await orders.upsert(sku, ItemInventory(stock=10))
    # 100 s overdue is past a 30 s grace but within the default 120 s: only a worker that read
    # SWEEPER_GRACE_SECONDS expires it.
    overdue = datetime.now(UTC) - timedelta(seconds=100)
    before_start, after_start, current = (unique("wf") + ":orders" for _ in range(3))
    await orders.hold(before_start, items(sku, 2), overdue)
    await orders.hold(current, items(sku, 3), later())

    async def held_is(expected: int) -> bool:
        return (await orders.availability(sku)).held == expected

    worker = start_worker("orders", database_url=migrated_database_url, sweeper_grace_seconds="30",
                          sweeper_every_seconds="0.5", **own_queues())
    await eventually(lambda: held_is(3), worker, "the overdue hold placed before the worker started expired")
    await assert_expired(orders, before_start)

    # A hold that becomes overdue while the worker runs: only a later round of the periodic sweep can expire it.
    await orders.hold(after_start, items(sku, 4), overdue)
    await eventually(lambda: held_is(3), worker, "the overdue hold placed while the worker ran expired")
    await assert_expired(orders, after_start)

    # The hold that is not yet due stays ACTIVE through every round.
    assert (await orders.availability(sku)).model_dump() == {
        "sku": sku, "capacity": 10, "held": 3, "sold": 0, "available": 7, "price": None
    }
    assert (await orders.release(current)).status is HoldStatus.RELEASED
    assert (await orders.availability(sku)).held == 0
    await assert_ledger_clean(ledger_services)
    assert await worker.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_flight_worker_stops_cleanly_on_signal(
    start_worker: StartWorker, dev_server_env: WorkflowEnvironment, migrated_database_url: str,
    signum: signal.Signals,
) -> None:
    queues = own_queues()
    worker = start_worker("flight", database_url=migrated_database_url, **queues)
    flight_queue = participant_queue(queues, "flight")
    await eventually(
        lambda: polling(dev_server_env.client, flight_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        worker, "the flight worker polls its task queue",
    )
    assert await worker.stop(signum) == 0, worker.stderr
    assert "Traceback" not in worker.stderr


async def test_checkout_worker_needs_a_database_only_for_local_participants(
    start_worker: StartWorker, dev_server_env: WorkflowEnvironment
) -> None:
    """With no local participant the checkout worker touches no ledger and runs without a database; with one
    (it runs that ledger's operations) it refuses to start without DATABASE_URL, saying so, without a traceback."""
    queues = own_queues()
    worker = start_worker("checkout", database_url=None, **queues)
    if swept("checkout", Settings().participant_placements):  # the child reads the same PARTICIPANT_PLACEMENTS
        code = await asyncio.to_thread(worker.process.wait, READY_WITHIN)
        assert code == 1 and "DATABASE_URL" in worker.stderr, worker.stderr
        assert "Traceback" not in worker.stderr
        return
    await eventually(
        lambda: polling(dev_server_env.client, queues["task_queue_checkout"], TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        worker, "the checkout worker polls its task queue",
    )
    assert await worker.stop(signal.SIGTERM) == 0, worker.stderr
    assert "Traceback" not in worker.stderr


async def test_checkout_worker_stops_cleanly_on_signal(
    start_worker: StartWorker, dev_server_env: WorkflowEnvironment, migrated_database_url: str
) -> None:
    queues = own_queues()
    worker = start_worker("checkout", database_url=migrated_database_url, **queues)
    await eventually(
        lambda: polling(dev_server_env.client, queues["task_queue_checkout"], TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        worker, "the checkout worker polls its task queue",
    )
    assert await worker.stop(signal.SIGTERM) == 0, worker.stderr
    assert "Traceback" not in worker.stderr
