"""A worker process killed with SIGKILL mid-saga on the real dev server: a new worker finishes the saga,
and the ledgers moved exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from runtime.replay import replay_query
from services.registry import NAMES
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import counters, seed, start_checkout, unique
from workflows.models import CONFIRM, CheckoutStatus, CheckoutView

pytestmark = [pytest.mark.devserver, pytest.mark.slow]


class WorkerProcess:
    """`booking-saga worker --service all` in a child process, pointed at the dev server and the test database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "booking_saga.cli", "worker", "--service", "all"], env=self.env,
            stdin=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def crash_settings() -> Settings:
    suffix = unique("crash")
    return Settings(
        task_queue_checkout=f"checkout-{suffix}", task_queues={name: f"{name}-{suffix}" for name in NAMES}
    )


@pytest.fixture
def worker_process(
    dev_server_env: WorkflowEnvironment, saga_database: str, crash_settings: Settings
) -> Iterator[WorkerProcess]:
    env = dict(os.environ)
    env.update({
        "TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": dev_server_env.client.namespace,
        "DATABASE_URL": saga_database,
        "TASK_QUEUE_CHECKOUT": crash_settings.task_queue_checkout,
        "TASK_QUEUES": json.dumps(crash_settings.task_queues),
    })
    worker = WorkerProcess(env)
    worker.start()
    yield worker
    worker.stop()


async def test_worker_killed_mid_saga_finishes_once(
    dev_server_env: WorkflowEnvironment, crash_settings: Settings, saga_services, worker_process: WorkerProcess
) -> None:
    client = dev_server_env.client
    inventory = await seed(saga_services)
    handle, view = await start_checkout(client, crash_settings, inventory.request(seats=2, rooms=1, quantity=3))
    assert view.status == CheckoutStatus.HELD

    worker_process.kill()  # while HELD: the workflow's state lives only in its history now
    worker_process.start()
    # Confirm, and kill again as soon as the confirm is accepted: the confirm activities may be in flight.
    update = await handle.start_update(CONFIRM, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=CheckoutView)
    worker_process.kill()
    worker_process.start()

    assert (await update.result()).status == CheckoutStatus.CONFIRMED
    assert (await handle.result()).status == CheckoutStatus.CONFIRMED
    assert await counters(saga_services, inventory) == {"flight": (0, 2), "hotel": (0, 1), "orders": (0, 3)}
    await assert_ledger_clean(saga_services)
    # The history written across two crashes replays cleanly against the current code.
    server = crash_settings.model_copy(update={
        "temporal_address": client.service_client.config.target_host, "temporal_namespace": client.namespace,
    })
    assert await replay_query(server, f"WorkflowId = '{handle.id}'") == 0
