"""One trace per checkout: the API's Update-with-Start, the workflow, every participant's hold (local activities
included) and the ledgers' asyncpg calls share one trace id; replaying the checkout's history adds no span.

Real dev server, real PostgreSQL; spans go to an in-memory exporter through runtime.tracing.install, as
setup_tracing would send them over OTLP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from checkouts import saga
from runtime import tracing
from runtime.worker import build_workers
from services.registry import NAMES
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.workflow.helpers import FaultyService, seed, unique
from workflows.checkout_saga import CheckoutSaga
from workflows.models import CONFIRM, CheckoutStatus

pytestmark = [pytest.mark.devserver]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    provider.shutdown()


@pytest.fixture
async def traced(
    dev_server_env: WorkflowEnvironment, spans: InMemorySpanExporter, saga_services: dict[str, FaultyService]
) -> AsyncIterator[tuple[Client, Settings]]:
    """A client with the tracing interceptor (as connect() builds it with tracing on) and workers on it."""
    suffix = unique("trace")
    settings = Settings(task_queue_checkout=f"checkout-{suffix}",
                        task_queues={name: f"{name}-{suffix}" for name in NAMES}, workflow_sandbox=True)
    interceptors = tracing.client_interceptors()
    assert interceptors, "install() turns the interceptor on"
    config = dev_server_env.client.config()
    config["interceptors"] = interceptors
    client = Client(**config)
    workers = build_workers(client, settings, "all", saga_services)  # type: ignore[arg-type]
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    yield client, settings
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*runs, return_exceptions=True)


def _names(found: list[ReadableSpan]) -> list[str]:
    return [span.name for span in found]


async def test_one_checkout_is_one_trace_and_a_replay_adds_no_span(
    traced: tuple[Client, Settings], spans: InMemorySpanExporter, saga_services: dict[str, Any]
) -> None:
    client, settings = traced
    inventory = await seed(saga_services)
    request = inventory.request()
    checkout_id = unique("co")
    spans.clear()  # the seeding's own asyncpg spans are not the checkout's

    view = await saga.submit(client, settings, checkout_id, request, "trace", 600)
    assert view.status == CheckoutStatus.HELD
    placed = list(spans.get_finished_spans())
    names = _names(placed)
    assert {span.context.trace_id for span in placed} == {placed[0].context.trace_id}, names
    assert "StartUpdateWithStartWorkflow:CheckoutSaga" in names, names
    assert "RunWorkflow:CheckoutSaga" in names, names
    for participant in ("flight", "hotel", "orders"):
        assert f"StartActivity:{participant}.hold" in names, names
        assert f"RunActivity:{participant}.hold" in names, names
    database = [span for span in placed if span.attributes and span.attributes.get("db.system") == "postgresql"]
    assert database, names

    # Confirm (another request, its own trace) so the workflow closes and its whole history can be replayed.
    confirmed = await saga.update(client, checkout_id, CONFIRM)
    assert confirmed.status == CheckoutStatus.CONFIRMED
    await client.get_workflow_handle(checkout_id).result()
    history = await client.get_workflow_handle(checkout_id).fetch_history()
    before = len(spans.get_finished_spans())

    tracer = tracing._provider.get_tracer(tracing.TRACER_NAME)  # type: ignore[union-attr]
    replayer = Replayer(workflows=[CheckoutSaga], interceptors=[TracingInterceptor(tracer)],
                        data_converter=client.data_converter)
    await replayer.replay_workflow(history)
    assert len(spans.get_finished_spans()) == before, _names(list(spans.get_finished_spans())[before:])


async def test_the_http_request_is_the_root_of_the_checkout_trace(
    traced: tuple[Client, Settings], spans: InMemorySpanExporter, saga_services: dict[str, Any],
    saga_database: str, redis_url: str,
) -> None:
    """Through the app as `booking-saga api` runs it with tracing on: the FastAPI server span is the root, the
    Update-with-Start, the workflow, the holds, PostgreSQL and Redis calls are in its trace."""
    _, workers_settings = traced
    inventory = await seed(saga_services)
    settings = workers_settings.model_copy(update={
        "operator_token": OPERATOR_TOKEN, "database_url": saga_database, "redis_url": redis_url,
        "temporal_address": traced[0].service_client.config.target_host,
    })
    body = inventory.request(customer=unique("traced")).model_dump(mode="json", exclude_none=True)
    body["items"] = body["items"]["items"]  # the HTTP body lists the lines themselves
    async with running_app(settings) as (_app, http):
        spans.clear()
        response = await http.post("/v1/checkouts", json=body, headers={"Idempotency-Key": unique("key")})
    assert response.status_code == 201, response.text
    finished = list(spans.get_finished_spans())
    (root,) = [span for span in finished if span.parent is None and span.name == "POST /v1/checkouts"]
    trace = [span for span in finished if span.context.trace_id == root.context.trace_id]
    names = _names(trace)
    assert "StartUpdateWithStartWorkflow:CheckoutSaga" in names and "RunWorkflow:CheckoutSaga" in names, names
    assert {f"RunActivity:{name}.hold" for name in ("flight", "hotel", "orders")} <= set(names), names
    systems = {span.attributes.get("db.system") for span in trace if span.attributes}
    assert {"postgresql", "redis"} <= systems, names
