"""Per-customer hold limits end to end over HTTP: the app, the real Temporal dev server, the saga's workers,
PostgreSQL and Redis (tests/api/live_stack.py) with the default limits (3 checkouts, 9 units of one row).

A refused checkout answers 429 hold-limit, holds nothing and has no saga; a settled checkout (confirmed,
cancelled, rejected, expired) frees its claim; a retried POST of a checkout already counted is not counted again.
The saga removes its claim just after it settles, so a test that expects a freed claim retries its (refused,
hence unrecorded) POST until the claim is gone; the retry bound only stops a hung test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.idempotency import checkout_id
from services.db import create_engine
from services.orders.schemas import ItemInventory
from services.registry import build_services
from services.started_checkouts import StartedCheckouts
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
ACTIVE_MAX = 3


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def stack_settings(dev_server_env: WorkflowEnvironment, migrated_database_url: str, redis_url: str) -> Settings:
    settings = live_settings(dev_server_env, migrated_database_url, redis_url)
    # The shared fixture keeps the defaults: these tests are about them.
    assert (settings.customer_active_checkouts_max, settings.customer_units_max) == (ACTIVE_MAX, 9)
    return settings


@pytest.fixture(scope="module")
async def client(dev_server_env: WorkflowEnvironment, stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with saga_workers(dev_server_env, stack_settings), running_app(stack_settings) as (_app, http):
        yield http


async def new_sku(client: httpx.AsyncClient, stock: int = 20) -> str:
    sku = unique("SKU")
    response = await client.put(f"/v1/inventory/items/{sku}", json={"stock": stock}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return sku


def order(customer: str, sku: str, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"customer_id": customer, "items": [{"sku": sku, "quantity": quantity}], **extra}


async def post(client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return await client.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key or unique("key")})


async def post_until_answered(client: httpx.AsyncClient, body: dict[str, Any], key: str) -> httpx.Response:
    """The same request again after a 503, as its problem says to (ten claims of one customer queue on its row: on
    a loaded machine one may wait past the lock timeout); any other answer is the answer."""
    for _ in range(5):
        response = await post(client, body, key)
        if response.status_code != 503:
            return response
        await asyncio.sleep(0.2)
    return response


async def held(client: httpx.AsyncClient, sku: str) -> int:
    response = await client.get(f"/v1/items/{sku}/availability")
    assert response.status_code == 200, response.text
    return int(response.json()["held"])


def assert_over_checkouts(response: httpx.Response, current: int = ACTIVE_MAX) -> None:
    problem = assert_problem(response, 429)
    assert problem["type"].endswith("/hold-limit"), problem
    assert (problem["limit"], problem["current"], problem["max"]) == ("active_checkouts", current, ACTIVE_MAX)


async def place_once_freed(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """POST (one key) until the customer's settled checkout has released its claim: a 429 records nothing."""
    key = unique("key")
    response = await post(client, body, key)
    for _ in range(120):
        if response.status_code != 429:
            break
        await asyncio.sleep(0.5)
        response = await post(client, body, key)
    assert response.status_code == 201, response.text
    return response


async def place(client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    response = await post(client, body, key)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "HELD"
    return dict(response.json())


async def wait_for_status(client: httpx.AsyncClient, checkout: str, wanted: str) -> None:
    status = ""
    for _ in range(120):  # polls until the saga's timer has fired
        status = (await client.get(f"/v1/checkouts/{checkout}")).json()["status"]
        if status == wanted:
            return
        await asyncio.sleep(0.5)
    assert status == wanted


async def test_ten_concurrent_checkouts_of_one_customer_three_held(
    client: httpx.AsyncClient, stack_settings: Settings
) -> None:
    customer, sku = unique("cust"), await new_sku(client)
    keys = [unique("key") for _ in range(10)]
    responses = await asyncio.gather(*(post_until_answered(client, order(customer, sku), key) for key in keys))
    placed = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(placed) == ACTIVE_MAX, [r.text for r in responses]
    for response in refused:
        assert_over_checkouts(response)
    assert await held(client, sku) == ACTIVE_MAX  # one unit per 201, nothing for a 429
    # A refused key has no saga: its id is unknown to the API.
    for response, key in zip(responses, keys, strict=True):
        if response.status_code == 429:
            refused_id = checkout_id(stack_settings.checkout_id_secret, customer, key)
            assert_problem(await client.get(f"/v1/checkouts/{refused_id}", headers=OPERATOR), 404)

    confirm, cancel, _kept = (r.json()["checkout_id"] for r in placed)
    confirmed = await client.post(f"/v1/checkouts/{confirm}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED", confirmed.text
    cancelled = await client.post(f"/v1/checkouts/{cancel}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED", cancelled.text
    await place_once_freed(client, order(customer, sku))
    await place_once_freed(client, order(customer, sku))
    assert_over_checkouts(await post(client, order(customer, sku)))
    assert await held(client, sku) == ACTIVE_MAX


async def test_units_of_one_row_over_the_limit_refused(client: httpx.AsyncClient) -> None:
    customer, sku = unique("cust"), await new_sku(client)
    await place(client, order(customer, sku, quantity=5))
    problem = assert_problem(await post(client, order(customer, sku, quantity=5)), 429)
    assert (problem["limit"], problem["current"], problem["max"]) == ("units_per_row", 5, 9)
    assert sku in problem["resource"], problem
    await place(client, order(customer, sku, quantity=4))
    assert await held(client, sku) == 9


async def test_retried_post_of_a_held_checkout_at_the_limit_answers_201(client: httpx.AsyncClient) -> None:
    customer, sku = unique("cust"), await new_sku(client)
    first_key = unique("key")
    first = await place(client, order(customer, sku), first_key)
    await place(client, order(customer, sku))
    await place(client, order(customer, sku))
    assert_over_checkouts(await post(client, order(customer, sku)))
    again = await post(client, order(customer, sku), first_key)
    assert again.status_code == 201, again.text
    assert (again.json()["checkout_id"], again.json()["status"]) == (first["checkout_id"], "HELD")
    assert await held(client, sku) == ACTIVE_MAX
    assert_over_checkouts(await post(client, order(customer, sku)))  # the retry was not counted a fourth time


async def test_rejected_checkout_frees_its_claim(client: httpx.AsyncClient, stack_settings: Settings) -> None:
    customer, sku, scarce = unique("cust"), await new_sku(client), await new_sku(client, stock=5)
    # Stock cut to 1 behind the cache's back (no sink): the cache still shows 5, so the checkout reaches its saga.
    engine = create_engine(stack_settings.database_url)
    try:
        await build_services(engine)["orders"].upsert(scarce, ItemInventory(stock=1))
        await place(client, order(customer, sku))
        await place(client, order(customer, sku))
        rejected = assert_problem(await post(client, order(customer, scarce, quantity=2)), 409)
        assert await StartedCheckouts(engine).has(rejected["checkout_id"])  # its saga said so, not the cache
    finally:
        await engine.dispose()
    await place_once_freed(client, order(customer, sku))  # the third
    assert_over_checkouts(await post(client, order(customer, sku)))
    assert await held(client, scarce) == 0
    # A shortage is the customer's answer (REJECTED, with what is short), not a failure.
    assert rejected["checkout_status"] == "REJECTED", rejected["detail"]
    assert rejected["unavailable"], rejected


async def test_expired_checkout_frees_its_claim(client: httpx.AsyncClient, stack_settings: Settings) -> None:
    customer, sku = unique("cust"), await new_sku(client)
    short = await place(client, order(customer, sku, hold_seconds=stack_settings.hold_seconds_min))
    await place(client, order(customer, sku))
    await place(client, order(customer, sku))
    assert_over_checkouts(await post(client, order(customer, sku)))
    await wait_for_status(client, short["checkout_id"], "EXPIRED")
    await place_once_freed(client, order(customer, sku))
    assert await held(client, sku) == ACTIVE_MAX
