"""The checkout workers' business metrics on their SDK Prometheus endpoint (WORKER_METRICS_PORT): status changes
counted once per checkout by the workflow's replay-safe metric meter (booking_checkout_status_total), release
attempts by the activities (booking_compensation_attempts_total). Real dev server, real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from checkouts import saga
from runtime.embedded import free_port
from runtime.temporal import metrics_runtime
from runtime.worker import build_workers
from services.registry import NAMES
from settings import Settings
from tests.workflow.helpers import FaultyService, RefusingRelease, seed, unique
from workflows.models import CANCEL, CONFIRM, CheckoutStatus, CheckoutView

pytestmark = [pytest.mark.devserver]


@dataclass
class MetricsStack:
    client: Client
    settings: Settings
    url: str
    hotel: RefusingRelease


@pytest.fixture(scope="module")
async def stack(
    dev_server_env: WorkflowEnvironment, saga_services: dict[str, FaultyService]
) -> AsyncIterator[MetricsStack]:
    port = free_port()
    target = dev_server_env.client.service_client.config.target_host
    client = await Client.connect(target, namespace=dev_server_env.client.namespace,
                                  data_converter=dev_server_env.client.data_converter,
                                  runtime=metrics_runtime("127.0.0.1", port))
    suffix = unique("metrics")
    settings = Settings(task_queue_checkout=f"checkout-{suffix}",
                        task_queues={name: f"{name}-{suffix}" for name in NAMES}, workflow_sandbox=True)
    hotel = RefusingRelease(saga_services["hotel"])
    workers = build_workers(client, settings, "all", {**saga_services, "hotel": hotel})  # type: ignore[dict-item]
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    yield MetricsStack(client, settings, f"http://127.0.0.1:{port}/metrics", hotel)
    hotel.refuse = False
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*runs, return_exceptions=True)


def _value(body: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    total = 0.0
    for line in body.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            total += float(match.group(2))
    return total


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.get(url)
    assert response.status_code == 200
    return response.text


async def test_status_changes_and_compensation_attempts_are_counted(
    stack: MetricsStack, saga_services: dict[str, FaultyService]
) -> None:
    inventory = await seed(saga_services)
    before = await _scrape(stack.url)

    async def place(hold_seconds: int = 600) -> CheckoutView:
        view = await saga.submit(stack.client, stack.settings, unique("co"), inventory.request(), "metrics",
                                 hold_seconds)
        assert view.status == CheckoutStatus.HELD
        return view

    confirmed = await place()
    await saga.update(stack.client, confirmed.checkout_id, CONFIRM)
    expiring = await place(hold_seconds=1)
    expired = await stack.client.get_workflow_handle(expiring.checkout_id, result_type=CheckoutView).result()
    assert expired.status == CheckoutStatus.EXPIRED
    stuck = await place()
    stack.hotel.refuse = True
    try:
        assert (await saga.update(stack.client, stuck.checkout_id, CANCEL)).status == CheckoutStatus.NEEDS_ATTENTION
    finally:
        stack.hotel.refuse = False

    after = await _scrape(stack.url)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("booking_checkout_status_total", status="HELD", previous="PENDING") == 3, after
    assert grew("booking_checkout_status_total", status="CONFIRMED") == 1
    assert grew("booking_checkout_status_total", status="EXPIRED") == 1
    assert grew("booking_checkout_status_total", status="NEEDS_ATTENTION") == 1
    # The expiry released three holds, the stuck cancel two (and one refused hotel release, not retried).
    assert grew("booking_compensation_attempts_total", outcome="released") == 5
    assert grew("booking_compensation_attempts_total", participant="hotel", outcome="failed") == 1
