"""GET /v1/events against a real PostgreSQL: auth (operator or feed token), paging, resuming, problems on bad input,
the OpenAPI document, and the feed's order while writers commit concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.embedded import free_port
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.test_api_without_servers import assert_problem
from tests.events.helpers import lifecycle, new_checkout_id, record_change, view

FEED_TOKEN = "feed-token-for-tests-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
FEED = {"Authorization": f"Bearer {FEED_TOKEN}"}


@pytest.fixture(scope="module")
async def client(migrated_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(operator_token=OPERATOR_TOKEN, feed_token=FEED_TOKEN, database_url=migrated_database_url,
                        temporal_address=f"127.0.0.1:{free_port()}")
    async with running_app(settings) as (_app, http):
        yield http


async def _head(client: httpx.AsyncClient) -> int:
    """The newest id now: read to the end of the feed."""
    after = 0
    while True:
        page = (await client.get("/v1/events", params={"after": after, "limit": 1000}, headers=OPERATOR)).json()
        if not page["events"]:
            return after
        after = page["next"]


async def test_the_feed_needs_the_operator_or_the_feed_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/events"), 401, "Bearer")
    response = await client.get("/v1/events", headers={"Authorization": "Bearer nope"})
    assert_problem(response, 401, "wrong token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    for headers in (OPERATOR, FEED):
        assert (await client.get("/v1/events", headers=headers)).status_code == 200
    # The feed token reads the feed and nothing else.
    assert_problem(await client.get("/v1/audit", headers=FEED), 401)


@pytest.mark.parametrize("params", [{"after": -1}, {"after": "x"}, {"after": 2**63}, {"limit": 0}, {"limit": 1001},
                                    {"limit": "1e3"}])
async def test_bad_parameters_are_422_problems(client: httpx.AsyncClient, params: dict[str, object]) -> None:
    assert_problem(await client.get("/v1/events", params=params, headers=OPERATOR), 422)


async def test_pages_in_order_and_resumes_from_next(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    start = await _head(client)
    cid = new_checkout_id()
    for previous, current in lifecycle(cid):
        await record_change(engine, previous, current)
    first = (await client.get("/v1/events", params={"after": start, "limit": 2}, headers=FEED)).json()
    assert [e["type"] for e in first["events"]] == ["checkout.held", "checkout.part_cancelled"]
    assert first["next"] == first["events"][-1]["id"]
    event = first["events"][1]
    assert set(event) == {"id", "type", "checkout_id", "customer_id", "occurred_at", "data", "part"}
    assert (event["checkout_id"], event["customer_id"], event["part"]) == (cid, "cust-1", "hotel")
    assert event["data"]["status"] == "HELD"
    rest = (await client.get("/v1/events", params={"after": first["next"]}, headers=FEED)).json()
    assert [e["type"] for e in rest["events"]] == ["checkout.confirmed"]
    empty = (await client.get("/v1/events", params={"after": rest["next"]}, headers=FEED)).json()
    assert empty == {"events": [], "next": rest["next"]}
    # At least once: asking again from an older id gives the same events again.
    again = (await client.get("/v1/events", params={"after": start, "limit": 2}, headers=FEED)).json()
    assert again == first


async def test_the_feed_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/events"]["get"]
    assert operation["operationId"] == "list_events"
    assert {p["name"] for p in operation["parameters"]} == {"after", "limit"}
    assert "application/problem+json" in operation["responses"]["422"]["content"]
    assert "EventPage" in document["components"]["schemas"]


@pytest.mark.slow
async def test_a_reader_of_the_feed_misses_nothing_while_writers_commit(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    start = await _head(client)
    written: list[int] = []
    done = asyncio.Event()

    async def writer() -> None:
        for _ in range(15):
            for event in await record_change(engine, None, view(new_checkout_id(), "HELD")):
                assert event.id is not None
                written.append(event.id)

    async def reader() -> list[int]:
        seen: list[int] = []
        after = start
        while True:
            finished = done.is_set()
            page = (await client.get("/v1/events", params={"after": after, "limit": 5}, headers=FEED)).json()
            seen += [e["id"] for e in page["events"]]
            after = page["next"]
            if finished and not page["events"]:
                return seen

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer() for _ in range(6)))
    done.set()
    seen = await reading
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert set(written) <= set(seen)


def test_compose_runs_the_relay_and_prometheus_scrapes_it() -> None:
    import yaml

    from tests.unit.test_deploy_files import COMPOSE, PROMETHEUS

    relay = yaml.safe_load(COMPOSE.read_text())["services"]["relay"]
    assert relay["command"] == ["relay"]
    port = relay["environment"]["RELAY_METRICS_PORT"]
    targets = {t for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
               for static in job["static_configs"] for t in static["targets"]}
    assert f"relay:{port}" in targets and port in relay["expose"]
