"""The sold-out fast path over HTTP: a checkout the Redis cache shows short is answered 409 without a saga.

Real parts throughout: the Temporal dev server, in-process workers whose services publish to Redis, PostgreSQL,
and a redis-server (the session's, or one of the test's own when the test kills it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api import admission, sold_out
from api.guard import RequestGuard
from api.idempotency import checkout_id
from api.sold_out import SoldOutLane
from runtime.embedded import free_port, start_redis
from services.cache import DEFAULT_PREFIX
from services.registry import NAMES
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem
from tests.waiting import eventually

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
# Generous: 50 requests at once on one event loop must not turn a healthy cache read into a timeout, which
# would send it to the saga. A budget that runs out is tested in tests/cache.
HEALTHY_BUDGET_MS = 5000
AT_ONCE = 50


class Stack:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient, settings: Settings, temporal: Client) -> None:
        self.app, self.http, self.settings, self.temporal = app, http, settings, temporal

    def counter(self, name: str, **labels: str) -> float:
        value = self.app.state.booking.metrics.registry.get_sample_value(name, labels)
        return value or 0.0

    @property
    def fast_rejections(self) -> float:
        return self.counter("booking_fast_path_rejections_total")

    async def put_item(self, sku: str, stock: int) -> None:
        response = await self.http.put(f"/v1/inventory/items/{sku}", json={"stock": stock}, headers=OPERATOR)
        assert response.status_code == 200, response.text

    async def item(self, sku: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/items/{sku}/availability")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def cache_shows(self, sku: str, available: int) -> None:
        cache = self.app.state.booking.cache

        async def shown() -> bool:  # the worker's publish has landed
            return bool(await cache.available("orders", [sku]) == {sku: available})

        await eventually(shown)

    async def checkout(self, body: dict[str, Any], key: str) -> httpx.Response:
        return await self.http.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key})

    async def has_workflow(self, customer_id: str, key: str) -> bool:
        handle = self.temporal.get_workflow_handle(checkout_id(self.settings.checkout_id_secret, customer_id, key))
        try:
            await handle.describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True


@contextlib.asynccontextmanager
async def live_stack(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Stack]:
    async with saga_workers(env, settings), running_app(settings) as (app, http):
        yield Stack(app, http, settings, env.client)


@pytest.fixture(scope="module")
async def stack(dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str) -> AsyncIterator[Stack]:
    settings = live_settings(dev_server_env, api_database, redis_url, redis_budget_ms=HEALTHY_BUDGET_MS)
    async with live_stack(dev_server_env, settings) as running:
        yield running


def buyer(sku: str, quantity: int = 1, **extra: Any) -> tuple[dict[str, Any], str]:
    """A new customer's checkout body for `sku`, and a new Idempotency-Key."""
    return {"customer_id": unique("cust"), "items": [{"sku": sku, "quantity": quantity}], **extra}, unique("key")


async def bounded(calls: list[Callable[[], Awaitable[httpx.Response]]], at_once: int) -> list[httpx.Response]:
    gate = asyncio.Semaphore(at_once)

    async def run(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        async with gate:
            return await call()

    return await asyncio.gather(*(run(call) for call in calls))


async def test_sold_out_sku_answers_409_without_starting_a_saga(stack: Stack) -> None:
    sku = unique("SKU")
    await stack.put_item(sku, 0)  # the API's own upsert publishes the row: 0 available
    before = stack.fast_rejections
    buyers = [buyer(sku) for _ in range(200)]

    responses = await bounded(
        [lambda body=body, key=key: stack.checkout(body, key) for body, key in buyers], AT_ONCE
    )

    assert [r.status_code for r in responses] == [409] * 200, {r.text for r in responses if r.status_code != 409}
    first = assert_problem(responses[0], 409, "not enough inventory")
    assert first["checkout_status"] == "REJECTED"
    assert first["unavailable"] == [{"resource": sku, "requested": 1, "available": 0}]
    assert [alt["service"] for alt in first["alternatives"]] == ["orders"]
    assert stack.fast_rejections - before == 200
    started = await asyncio.gather(*(stack.has_workflow(body["customer_id"], key) for body, key in buyers))
    assert started.count(True) == 0
    assert (await stack.item(sku))["held"] == 0

    # The same request answered by a saga (no cache entry) has the same body, but for its own checkout id.
    redis = Redis.from_url(stack.settings.redis_url)
    await redis.delete(f"{DEFAULT_PREFIX}orders:{sku}")
    await redis.aclose()
    body, key = buyer(sku)
    by_saga = assert_problem(await stack.checkout(body, key), 409)
    assert await stack.has_workflow(body["customer_id"], key)
    assert stack.fast_rejections - before == 200
    assert by_saga.keys() == first.keys()
    assert {k: by_saga[k] for k in by_saga if k != "checkout_id"} == {k: first[k] for k in first if k != "checkout_id"}
    assert first["checkout_id"] == checkout_id(
        stack.settings.checkout_id_secret, buyers[0][0]["customer_id"], buyers[0][1]
    )


async def test_a_key_with_a_saga_keeps_its_answer_when_the_cache_shows_sold_out(stack: Stack) -> None:
    sku = unique("SKU")
    await stack.put_item(sku, 1)
    body, key = buyer(sku)
    held = await stack.checkout(body, key)
    assert held.status_code == 201, held.text
    before = stack.fast_rejections

    # The worker publishes the hold (after the hold's answer: a cache that shows it late only sends a few more
    # checkouts to their sagas): once the cache shows the sku sold out, this key's saga still answers.
    await stack.cache_shows(sku, 0)
    other, other_key = buyer(sku)
    assert_problem(await stack.checkout(other, other_key), 409, "not enough inventory")
    assert stack.fast_rejections - before == 1
    assert not await stack.has_workflow(other["customer_id"], other_key)

    started = stack.app.state.booking.started
    assert await started.has(held.json()["checkout_id"])
    assert not await started.has(checkout_id(stack.settings.checkout_id_secret, other["customer_id"], other_key))

    again = await stack.checkout(body, key)
    assert again.status_code == 201, again.text
    assert again.json()["checkout_id"] == held.json()["checkout_id"]
    assert_problem(await stack.checkout({**body, "hold_seconds": 60}, key), 422, "another request body")
    assert stack.fast_rejections - before == 1
    assert (await stack.item(sku))["held"] == 1


async def test_a_recorded_checkout_id_goes_to_its_saga_even_without_a_workflow_yet(stack: Stack) -> None:
    """The API records an id, then starts its saga: an API that died in between left a record and no workflow.
    The record alone must keep the fast path away; the saga path then starts the saga and answers."""
    sku = unique("SKU")
    await stack.put_item(sku, 0)
    body, key = buyer(sku)
    cid = checkout_id(stack.settings.checkout_id_secret, body["customer_id"], key)
    await stack.app.state.booking.started.record(cid)
    before = stack.fast_rejections

    answer = assert_problem(await stack.checkout(body, key), 409, "not enough inventory")

    assert answer["checkout_status"] == "REJECTED"
    assert stack.fast_rejections == before
    assert await stack.has_workflow(body["customer_id"], key)


async def test_a_released_sku_is_bookable_again_at_once(stack: Stack) -> None:
    sku = unique("SKU")
    await stack.put_item(sku, 1)
    first, first_key = buyer(sku)
    held = await stack.checkout(first, first_key)
    assert held.status_code == 201, held.text
    assert_problem(await stack.checkout(*buyer(sku)), 409)
    before = stack.fast_rejections

    cancelled = await stack.http.post(f"/v1/checkouts/{held.json()['checkout_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    second = await stack.checkout(*buyer(sku, hold_seconds=stack.settings.hold_seconds_min))
    assert second.status_code == 201, second.text

    status = ""
    for _ in range(120):  # polls until the saga's timer has fired; the bound only stops a hung test
        status = (await stack.http.get(f"/v1/checkouts/{second.json()['checkout_id']}")).json()["status"]
        if status == "EXPIRED":
            break
        await asyncio.sleep(0.5)
    assert status == "EXPIRED"
    third = await stack.checkout(*buyer(sku))
    assert third.status_code == 201, third.text
    assert stack.fast_rejections == before


async def test_garbage_in_the_cache_sends_the_checkout_to_the_saga(stack: Stack) -> None:
    sku = unique("SKU")
    await stack.put_item(sku, 2)
    redis = Redis.from_url(stack.settings.redis_url)
    try:
        await redis.hset(f"{DEFAULT_PREFIX}orders:{sku}", mapping={"version": "x", "capacity": 1, "held": 1, "sold": 0})
        errors = stack.counter("booking_saga_cache_errors_total", operation="available")
        body, key = buyer(sku)
        response = await stack.checkout(body, key)
        assert response.status_code == 201, response.text
        assert stack.counter("booking_saga_cache_errors_total", operation="available") == errors + 1
    finally:
        await redis.aclose()


async def test_redis_killed_mid_run_keeps_exact_counts_and_comes_back(
    dev_server_env: WorkflowEnvironment, api_database: str, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path, free_port(), persist=False)
    # Task queues of its own: the module's workers (on the shared Redis) must not serve this run.
    queues = {"task_queue_checkout": unique("checkout"), "task_queues": {name: unique(name) for name in NAMES}}
    settings = live_settings(dev_server_env, api_database, redis.url, redis_budget_ms=HEALTHY_BUDGET_MS, **queues)
    try:
        async with live_stack(dev_server_env, settings) as stack:
            sku = unique("SKU")
            await stack.put_item(sku, 10)
            answered = itertools.count(1)
            halfway = asyncio.Event()

            async def checkout() -> httpx.Response:
                response = await stack.checkout(*buyer(sku))
                if next(answered) == 10:
                    halfway.set()
                return response

            async def kill_redis_halfway() -> None:
                await halfway.wait()
                redis.process.kill()
                await asyncio.to_thread(redis.process.wait)

            killer = asyncio.create_task(kill_redis_halfway())
            responses = await bounded([checkout] * 40, 10)
            await killer

            codes = sorted(r.status_code for r in responses)
            assert codes == [201] * 10 + [409] * 30, {r.text for r in responses if r.status_code not in (201, 409)}
            assert (await stack.item(sku))["held"] == 10
            audit = (await stack.http.get("/v1/audit", headers=OPERATOR)).json()
            assert audit["ok"] is True, audit
            ready = await stack.http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            assert ready.json()["checks"]["redis"]["ok"] is False
            assert "degraded" in ready.json()["checks"]["redis"]["detail"]

            redis = start_redis(tmp_path, redis.port, persist=False)  # empty: every row is unknown again
            for _ in range(100):  # until the cache's client reconnects; the bound only stops a hung test
                if (await stack.http.get("/readyz")).json()["checks"]["redis"]["ok"]:
                    break
                await asyncio.sleep(0.1)
            await stack.put_item(sku, 10)  # republishes the row: 10 held, none available
            before = stack.fast_rejections
            body, key = buyer(sku)
            assert_problem(await stack.checkout(body, key), 409, "not enough inventory")
            assert stack.fast_rejections == before + 1
            assert not await stack.has_workflow(body["customer_id"], key)
    finally:
        redis.stop()


# ---- the sold-out lane (api/sold_out.py): the answer before routing, and everything it leaves to the route ----


async def test_the_lane_and_the_route_answer_a_sold_out_checkout_alike(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same request (same customer and key, so the same checkout id) to this app and to one built without
    the lane: the same 409, counted once in each."""
    sku = unique("SKU")
    await stack.put_item(sku, 0)
    body, key = buyer(sku)
    before = (stack.fast_rejections, stack.counter("booking_checkouts_total", outcome="rejected"))

    with monkeypatch.context() as patch:
        patch.setattr(admission, "admit", _unreachable)  # the lane answers: the route's admission is never reached
        by_lane = await stack.checkout(body, key)

    async with running_app(stack.settings) as (bare, http):
        bare.user_middleware = [m for m in bare.user_middleware if m.cls is not SoldOutLane]
        by_route = await http.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key})
        route_metrics = bare.state.booking.metrics.registry
        assert route_metrics.get_sample_value("booking_fast_path_rejections_total") == 1
    assert (by_lane.status_code, by_route.status_code) == (409, 409)
    assert by_lane.json() == by_route.json()
    assert by_lane.headers["content-type"] == by_route.headers["content-type"] == "application/problem+json"
    assert by_lane.json()["checkout_status"] == "REJECTED"
    assert (stack.fast_rejections, stack.counter("booking_checkouts_total", outcome="rejected")) == (
        before[0] + 1, before[1] + 1
    )
    assert not await stack.has_workflow(body["customer_id"], key)


def _unreachable(*_args: object) -> None:
    raise AssertionError("the route was reached")


async def test_what_the_route_refuses_reaches_the_route_even_when_sold_out(stack: Stack) -> None:
    sku = unique("SKU")
    await stack.put_item(sku, 0)
    before = stack.fast_rejections
    body, key = buyer(sku)

    no_key = await stack.http.post("/v1/checkouts", json=body)
    bad_key = await stack.http.post("/v1/checkouts", json=body, headers={"Idempotency-Key": "no spaces"})
    too_long = await stack.checkout({**body, "hold_seconds": stack.settings.hold_seconds_max + 1}, key)
    unknown_field = await stack.checkout({**body, "coupon": "X"}, key)
    as_text = await stack.http.post("/v1/checkouts", content=httpx.Request("POST", "/", json=body).content,
                                    headers={"Idempotency-Key": key, "Content-Type": "text/plain"})

    assert_problem(no_key, 400, "Idempotency-Key")
    assert_problem(bad_key, 400, "Idempotency-Key")
    assert_problem(too_long, 422, "hold_seconds")
    assert_problem(unknown_field, 422, "coupon")
    assert as_text.status_code == 422, as_text.text
    assert stack.fast_rejections == before
    # A JSON media type the route reads as JSON is the lane's too.
    vendor = await stack.http.post("/v1/checkouts", content=httpx.Request("POST", "/", json=body).content,
                                   headers={"Idempotency-Key": key, "Content-Type": "application/vnd.x+json"})
    assert_problem(vendor, 409, "not enough inventory")
    assert stack.fast_rejections == before + 1


async def test_a_checkout_that_is_not_sold_out_reads_the_cache_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane looked and found nothing short: the route goes straight to the saga."""
    cache = stack.app.state.booking.cache
    reads: list[list[str]] = []
    real_read = cache.available

    async def counted(service: str, resources: list[str]) -> dict[str, int] | None:
        reads.append(resources)
        return await real_read(service, resources)

    sku = unique("SKU")
    await stack.put_item(sku, 5)
    monkeypatch.setattr(cache, "available", counted)
    held = await stack.checkout(*buyer(sku))

    assert held.status_code == 201, held.text
    assert reads == [[sku]]


async def test_a_failing_lane_leaves_the_sold_out_answer_to_the_route(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sku = unique("SKU")
    await stack.put_item(sku, 0)
    before = stack.fast_rejections

    def broken(*_args: object) -> None:
        raise RuntimeError("injected: the lane fails")

    monkeypatch.setattr(sold_out, "_attempt", broken)
    body, key = buyer(sku)
    answer = assert_problem(await stack.checkout(body, key), 409, "not enough inventory")

    assert answer["checkout_status"] == "REJECTED"
    assert stack.fast_rejections == before + 1
    assert not await stack.has_workflow(body["customer_id"], key)
    assert "the sold-out lane failed" in caplog.text


async def test_the_lane_answers_in_front_of_the_middleware_stack(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an Origin header the guard and the lane answer before the framework's middlewares; with one, the
    request takes the whole stack (CORS would wrap the answer), where the lane answers it alike."""
    sku = unique("SKU")
    await stack.put_item(sku, 0)  # the stack has served requests: its middleware stack is built
    entered: list[str] = []
    inner = stack.app.middleware_stack
    assert inner is not None

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])
        await inner(scope, receive, send)

    monkeypatch.setattr(stack.app, "middleware_stack", counted)
    before = stack.fast_rejections
    in_front = await stack.checkout(*buyer(sku))
    body, key = buyer(sku)
    through = await stack.http.post("/v1/checkouts", json=body,
                                    headers={"Idempotency-Key": key, "Origin": "https://shop.example"})

    assert (in_front.status_code, through.status_code) == (409, 409)
    assert entered == ["/v1/checkouts"]  # the second only
    assert _headers(in_front) == _headers(through)
    assert _headers(in_front)["content-type"] == "application/problem+json"
    assert stack.fast_rejections == before + 2


async def test_a_checkout_the_lane_leaves_to_the_route_is_guarded_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not sold out: the front's guard let it in, the lane looked, and the stack behind them checks nothing twice."""
    guarded: list[str] = []
    real = RequestGuard._header_problem

    def counted(self: RequestGuard, counts: dict[bytes, int], lengths: list[bytes]) -> Any:
        guarded.append("checked")
        return real(self, counts, lengths)

    sku = unique("SKU")
    await stack.put_item(sku, 5)
    monkeypatch.setattr(RequestGuard, "_header_problem", counted)
    before = stack.fast_rejections
    held = await stack.checkout(*buyer(sku))

    assert held.status_code == 201, held.text
    assert guarded == ["checked"]
    assert stack.fast_rejections == before


def _headers(response: httpx.Response) -> dict[str, str]:
    """The answer's headers but the server's date and the body's own length."""
    return {name: value for name, value in response.headers.items() if name not in ("date", "content-length")}
