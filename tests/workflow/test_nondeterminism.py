"""A workflow code change that breaks replay (no `workflow.patched`) under a running saga.

Without WORKFLOW_FAIL_ON_NONDETERMINISM the worker fails the workflow task and the server retries it: the saga
stays RUNNING, and a test waiting on its result would hang. With it (every test worker sets it, tests/conftest.py)
the saga fails at once with the non-determinism error as its cause.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from runtime.worker import build_workers, workflow_failure_types
from settings import Settings
from tests.workflow.helpers import counters, eventually, own_queues, running, seed, start_checkout
from workflows.models import RETRY_COMPENSATION_SIGNAL, WORKFLOW_NAME, CheckoutStatus


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class ChangedSaga:
    """A 'deployment' of the saga whose first command is an activity where the recorded one placed holds.

    Not a timer, as it once was: when the replay breaks at a patch marker (the saga's first command, unless the
    update was accepted first), the SDK fails the saga with the new code's command still in the same completion,
    and the server refused a timer whose id (1) the history already holds: the task was retried, the saga never
    failed (2 of 8 runs under load). No activity task of the saga has id 1 (its first ids are its local holds)."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> None:
        await workflow.execute_activity("changed", start_to_close_timeout=timedelta(seconds=10))


@pytest.fixture
def own_settings() -> Settings:
    """Queues of this test's own: its workers must be the only ones that see the saga."""
    return own_queues(Settings(), sticky_timeout_seconds=0.5)


def changed_worker(client: Client, settings: Settings) -> Worker:
    return Worker(
        client, task_queue=settings.task_queue_checkout, workflows=[ChangedSaga],
        workflow_runner=UnsandboxedWorkflowRunner(), max_cached_workflows=0,
        workflow_failure_exception_types=workflow_failure_types(settings),
    )


async def task_failures(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        event.workflow_task_failed_event_attributes.failure.message for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def _any(found: Awaitable[list[str]]) -> bool:
    return bool(await found)


async def test_the_checkout_worker_fails_on_nondeterminism_only_when_told() -> None:
    assert workflow_failure_types(Settings(workflow_fail_on_nondeterminism=False)) == []
    assert workflow_failure_types(Settings(workflow_fail_on_nondeterminism=True)) == [workflow.NondeterminismError]
    assert Settings().workflow_fail_on_nondeterminism, "tests/conftest.py turns it on for every test worker"


@pytest.mark.devserver
async def test_a_nondeterministic_change_fails_the_saga_instead_of_retrying_forever(
    dev_server_env: WorkflowEnvironment, own_settings: Settings, saga_services
) -> None:
    # The dev server: the time-skipping one never hands a dead worker's sticky workflow task to another worker.
    saga_client = dev_server_env.client
    inventory = await seed(saga_services)
    async with running(build_workers(saga_client, own_settings, "all", saga_services)):
        handle, view = await start_checkout(saga_client, own_settings, inventory.request())
    assert view.status == CheckoutStatus.HELD

    # Retried: the worker without the setting fails the workflow task, the saga stays RUNNING.
    lenient = own_settings.model_copy(update={"workflow_fail_on_nondeterminism": False})
    async with running([changed_worker(saga_client, lenient)]):
        await handle.signal(RETRY_COMPENSATION_SIGNAL)  # any new event: a workflow task, replayed from scratch
        await eventually(lambda: _any(task_failures(handle)))
    assert "nondetermin" in " ".join(await task_failures(handle)).lower()
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    # Failed: with the setting the next attempt of the same task fails the saga, with the error as the cause.
    async with running([changed_worker(saga_client, own_settings)]):
        await handle.signal(RETRY_COMPENSATION_SIGNAL)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "nondetermin" in str(failed.value.cause).lower(), failed.value.cause
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED

    # The failed saga released nothing (the sweeper's job in production); release here to leave the ledgers tidy.
    for name in ("flight", "hotel", "orders"):
        await saga_services[name].real.release(f"{handle.id}:{name}")
    assert await counters(saga_services, inventory) == {"flight": (0, 0), "hotel": (0, 0), "orders": (0, 0)}
