"""checkouts/saga.py's edges on the real dev server: a closed saga answered (REJECT_DUPLICATE, and the saga closing
between the start and the update), Temporal not answering in time (503), and /extend past its bounds."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowUpdateWithStartInput
from temporalio.client import WorkflowUpdateHandle as UpdateHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.idempotency import request_hash
from api.problems import ProblemError
from checkouts import saga
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem
from workflows.models import CheckoutRequest, CheckoutStatus

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture(scope="module")
async def stack_settings(dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str) -> Settings:
    return live_settings(dev_server_env, api_database, redis_url)


@pytest.fixture(scope="module")
async def client(dev_server_env: WorkflowEnvironment, stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with saga_workers(dev_server_env, stack_settings), running_app(stack_settings) as (_app, http):
        yield http


async def item(client: httpx.AsyncClient, stock: int) -> str:
    sku = unique("SKU")
    response = await client.put(f"/v1/inventory/items/{sku}", json={"stock": stock}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return sku


async def held(client: httpx.AsyncClient, sku: str) -> tuple[int, int]:
    body = (await client.get(f"/v1/items/{sku}/availability")).json()
    return body["held"], body["sold"]


def items_request(sku: str, quantity: int) -> CheckoutRequest:
    return CheckoutRequest.model_validate({"customer_id": unique("cust"), "items": {"items": [
        {"sku": sku, "quantity": quantity}]}})


async def test_a_closed_saga_is_answered_not_started_again(
    client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment, stack_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sku = await item(client, 1)
    request, checkout_id = items_request(sku, 2), unique("co")
    temporal = dev_server_env.client
    first = await saga.submit(temporal, stack_settings, checkout_id, request, request_hash(request, 600), 600)
    assert first.status == CheckoutStatus.REJECTED
    handle = temporal.get_workflow_handle(checkout_id)
    await handle.result()
    run_id = (await handle.describe()).run_id

    with caplog.at_level(logging.INFO, logger="checkouts.saga"):
        again = await saga.submit(temporal, stack_settings, checkout_id, request, request_hash(request, 600), 600)
    assert again.status == CheckoutStatus.REJECTED and again.checkout_id == checkout_id
    assert (await handle.describe()).run_id == run_id  # REJECT_DUPLICATE: no second saga
    assert "closed while joining" not in caplog.text
    assert await held(client, sku) == (0, 0)


class ClosedMeanwhile(Interceptor):
    """Lets the Update-with-Start reach the server, then answers NOT_FOUND as the server does when the saga closed
    between the start and the update (the race checkouts.saga.submit handles; no timing reproduces it on demand)."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _ClosedMeanwhileOutbound(next)


class _ClosedMeanwhileOutbound(OutboundInterceptor):
    async def start_update_with_start_workflow(self, input: StartWorkflowUpdateWithStartInput) -> UpdateHandle[Any]:
        try:
            await super().start_update_with_start_workflow(input)
        except Exception as server_said:  # whatever the server said, the race's answer is NOT_FOUND
            del server_said
        raise RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")


async def test_the_saga_closing_while_joining_answers_its_outcome(
    client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment, stack_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sku = await item(client, 1)
    request, checkout_id = items_request(sku, 2), unique("co")
    temporal = dev_server_env.client
    assert (await saga.submit(temporal, stack_settings, checkout_id, request, request_hash(request, 600), 600)).status \
        == CheckoutStatus.REJECTED
    await temporal.get_workflow_handle(checkout_id).result()

    racing = Client(**{**temporal.config(), "interceptors": [ClosedMeanwhile()]})
    with caplog.at_level(logging.INFO, logger="checkouts.saga"):
        view = await saga.submit(racing, stack_settings, checkout_id, request, request_hash(request, 600), 600)
    assert view.status == CheckoutStatus.REJECTED and view.checkout_id == checkout_id
    assert f"saga {checkout_id} closed while joining it" in caplog.text
    assert await held(client, sku) == (0, 0)


async def test_temporal_not_answering_in_time_is_503(
    dev_server_env: WorkflowEnvironment, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker polls the saga's queue: the submit never answers, and the caller is told to retry."""
    monkeypatch.setattr(saga, "ANSWER_TIMEOUT_SECONDS", 1.0)
    nobody = stack_settings.model_copy(update={"task_queue_checkout": unique("nobody")})
    request, checkout_id = items_request(unique("SKU"), 1), unique("co")
    temporal = dev_server_env.client
    try:
        with pytest.raises(ProblemError) as unavailable:
            await saga.submit(temporal, nobody, checkout_id, request, request_hash(request, 600), 600)
        problem = unavailable.value
        assert problem.status == 503 and "Retry-After" in problem.headers and problem.dependency == "temporal"
        assert "retry the same request" in problem.detail
    finally:
        await temporal.get_workflow_handle(checkout_id).terminate("test over")


async def test_extend_past_the_maximum_or_the_lifetime_is_refused(
    client: httpx.AsyncClient, stack_settings: Settings
) -> None:
    sku = await item(client, 3)
    response = await client.post("/v1/checkouts", headers={"Idempotency-Key": unique("key")}, json={
        "customer_id": unique("cust"), "items": [{"sku": sku, "quantity": 1}], "hold_seconds": 600})
    assert response.status_code == 201, response.text
    checkout = response.json()
    path = f"/v1/checkouts/{checkout['checkout_id']}/extend"

    over = assert_problem(await client.post(path, json={"seconds": stack_settings.hold_seconds_max + 1}), 422)
    assert str(stack_settings.hold_seconds_max) in over["detail"]
    # Within one call's maximum, twice: the second would pass the lifetime from the checkout's start.
    first = await client.post(path, json={"seconds": stack_settings.hold_seconds_max})
    assert first.status_code == 200, first.text
    lifetime = stack_settings.hold_lifetime_max_seconds
    assert 600 + 2 * stack_settings.hold_seconds_max > lifetime, "the settings make the second extend too far"
    refused = await client.post(path, json={"seconds": stack_settings.hold_seconds_max})
    problem = assert_problem(refused, 409)
    assert problem["checkout_status"] == "HELD" and str(lifetime) in problem["detail"]

    now = (await client.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
    assert now["expires_at"] == first.json()["expires_at"]  # the refusal moved nothing
    assert {hold["expires_at"] for hold in now["holds"]} == {first.json()["expires_at"]}
    assert await held(client, sku) == (1, 0)
    cancelled = await client.post(f"/v1/checkouts/{checkout['checkout_id']}/cancel")
    assert cancelled.status_code == 200 and await held(client, sku) == (0, 0)
