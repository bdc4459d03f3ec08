"""End to end over HTTP: the app, the real Temporal dev server, the saga's workers, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import metric, unique
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem
from workflows import search_attributes

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
CHECK_IN = date.today() + timedelta(days=40)
CHECK_OUT = CHECK_IN + timedelta(days=2)


@pytest.fixture(scope="module")
async def stack_settings(dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str) -> Settings:
    return live_settings(dev_server_env, api_database, redis_url)


@pytest.fixture(scope="module")
async def client(dev_server_env: WorkflowEnvironment, stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with saga_workers(dev_server_env, stack_settings), running_app(stack_settings) as (_app, http):
        yield http


class Inventory:
    """Fresh, uniquely named inventory for one test."""

    def __init__(self) -> None:
        self.flight, self.hotel, self.sku = unique("F"), unique("H"), unique("SKU")

    async def create(self, client: httpx.AsyncClient, *, seats: int = 10, rooms: dict[str, int] | None = None,
                     stock: int = 5) -> None:
        departs = (datetime.now(UTC) + timedelta(days=40)).isoformat()
        flight = {"origin": "LHR", "destination": "JFK", "departs_at": departs, "seats": {"economy": seats}}
        hotel = {"city": unique("city"), "rooms": rooms or {"deluxe": 3}, "nights_from": CHECK_IN.isoformat(),
                 "nights_to": CHECK_OUT.isoformat()}
        for path, body in [(f"flights/{self.flight}", flight), (f"hotels/{self.hotel}", hotel),
                           (f"items/{self.sku}", {"stock": stock})]:
            response = await client.put(f"/v1/inventory/{path}", json=body, headers=OPERATOR)
            assert response.status_code == 200, response.text

    def checkout(self, *, seats: int = 1, rooms: int = 1, quantity: int = 2, room_type: str = "deluxe",
                 **extra: Any) -> dict[str, Any]:
        return {
            "customer_id": unique("cust"),
            "flight": {"flight_id": self.flight, "seat_class": "economy", "seats": seats},
            "hotel": {"hotel_id": self.hotel, "room_type": room_type, "check_in": CHECK_IN.isoformat(),
                      "check_out": CHECK_OUT.isoformat(), "rooms": rooms},
            "items": [{"sku": self.sku, "quantity": quantity}],
            **extra,
        }

    async def availability(self, client: httpx.AsyncClient) -> tuple[dict, dict, dict]:
        stay = {"check_in": CHECK_IN.isoformat(), "check_out": CHECK_OUT.isoformat()}
        flight = (await client.get(f"/v1/flights/{self.flight}/availability")).json()
        hotel = (await client.get(f"/v1/hotels/{self.hotel}/availability", params=stay)).json()
        item = (await client.get(f"/v1/items/{self.sku}/availability")).json()
        return flight["seat_classes"]["economy"], hotel["room_types"], item


async def post_checkout(client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return await client.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key or unique("key")})


async def test_mixed_checkout_held_then_confirmed(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    response = await post_checkout(client, stock.checkout())
    assert response.status_code == 201, response.text
    held = response.json()
    assert held["status"] == "HELD" and held["expires_at"]
    assert sorted(h["service"] for h in held["holds"]) == ["flight", "hotel", "orders"]
    seats, rooms, item = await stock.availability(client)
    assert (seats["held"], rooms["deluxe"]["available"], item["held"]) == (1, 2, 2)

    confirmed = await client.post(f"/v1/checkouts/{held['checkout_id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "CONFIRMED"
    seats, rooms, item = await stock.availability(client)
    assert (seats["held"], seats["sold"], item["sold"], item["available"]) == (0, 1, 2, 3)
    assert all(night["sold"] == 1 for night in rooms["deluxe"]["nights"].values())

    again = await client.post(f"/v1/checkouts/{held['checkout_id']}/confirm")
    assert again.status_code == 200 and again.json()["status"] == "CONFIRMED"
    status = (await client.get(f"/v1/checkouts/{held['checkout_id']}")).json()
    assert [change["status"] for change in status["history"]][-1] == "CONFIRMED"
    # A sale is cancelled by giving it back (docs/bookings.md; tests/api/test_bookings_e2e.py for the rest).
    cancelled = await client.post(f"/v1/checkouts/{held['checkout_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED", cancelled.text
    seats, rooms, item = await stock.availability(client)
    assert (seats["sold"], item["sold"], item["available"]) == (0, 0, 5)


async def test_sold_out_hotel_rejects_and_rolls_back(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client, rooms={"deluxe": 0, "standard": 4})
    before = await stock.availability(client)
    response = await post_checkout(client, stock.checkout())
    problem = assert_problem(response, 409)
    assert problem["checkout_status"] == "REJECTED"
    assert problem["unavailable"] and problem["alternatives"]
    assert any(alt["service"] == "hotel" for alt in problem["alternatives"])
    seats, _rooms, item = await stock.availability(client)
    assert (seats, item) == (before[0], before[2])
    assert seats["held"] == 0 and item["held"] == 0


async def test_twenty_buyers_for_ten_seats(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client, seats=10)
    one_seat = {"flight": {"flight_id": stock.flight, "seat_class": "economy", "seats": 1}}
    responses = await asyncio.gather(
        *[post_checkout(client, {"customer_id": unique("cust"), **one_seat}) for _ in range(20)]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [409] * 10, [r.text for r in responses if r.status_code not in (201, 409)]
    seats, _rooms, _item = await stock.availability(client)
    assert (seats["held"], seats["available"]) == (10, 0)


async def test_same_key_ten_times_is_one_checkout(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    body, key = stock.checkout(), unique("key")
    responses = await asyncio.gather(*[post_checkout(client, body, key) for _ in range(10)])
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1
    seats, _rooms, item = await stock.availability(client)
    assert (seats["held"], item["held"]) == (1, 2)

    other_body = await post_checkout(client, {**body, "hold_seconds": 60}, key)
    assert_problem(other_body, 422, "another request body")


async def test_short_hold_expires_and_frees_the_inventory(client: httpx.AsyncClient, stack_settings: Settings) -> None:
    stock = Inventory()
    await stock.create(client)
    response = await post_checkout(client, stock.checkout(hold_seconds=stack_settings.hold_seconds_min))
    assert response.status_code == 201, response.text
    checkout_id = response.json()["checkout_id"]
    status = ""
    for _ in range(120):  # polls until the saga's timer has fired; the bound only stops a hung test
        status = (await client.get(f"/v1/checkouts/{checkout_id}")).json()["status"]
        if status == "EXPIRED":
            break
        await asyncio.sleep(0.5)
    assert status == "EXPIRED"
    seats, rooms, item = await stock.availability(client)
    assert (seats["held"], rooms["deluxe"]["available"], item["held"]) == (0, 3, 0)
    assert_problem(await client.post(f"/v1/checkouts/{checkout_id}/confirm"), 409, "EXPIRED")


async def test_metrics_count_this_tests_checkouts(client: httpx.AsyncClient) -> None:
    counted = (("booking_checkouts_total", {"outcome": "held"}), ("booking_checkouts_total", {"outcome": "rejected"}),
               ("booking_holds_total", {"outcome": "active", "service": "flight"}))
    before = [await metric(client, name, **labels) for name, labels in counted]
    stock = Inventory()
    await stock.create(client, seats=1)
    assert (await post_checkout(client, stock.checkout())).status_code == 201
    assert_problem(await post_checkout(client, stock.checkout()), 409)  # the one seat is held
    after = [await metric(client, name, **labels) for name, labels in counted]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


async def test_schemathesis_finds_no_server_error(client: httpx.AsyncClient, stack_settings: Settings) -> None:
    from tests.api.schema_fuzz import run_schemathesis

    # In a thread: the workers keep running on this event loop while schemathesis drives its own app copy.
    tested = await asyncio.to_thread(run_schemathesis, stack_settings)
    assert "POST /v1/checkouts" in tested


async def test_operators_see_the_checkout_in_temporal(
    client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment, stack_settings: Settings
) -> None:
    stock = Inventory()
    await stock.create(client)
    body = stock.checkout()
    response = await post_checkout(client, body)
    assert response.status_code == 201, response.text
    description = await dev_server_env.client.get_workflow_handle(response.json()["checkout_id"]).describe()
    summary = await description.static_summary()
    assert summary is not None
    assert body["customer_id"] in summary and stock.flight in summary and stock.sku in summary
    attributes = description.typed_search_attributes
    # Search attributes are plaintext in Temporal: the customer appears as a keyed pseudonym only.
    assert attributes.get(search_attributes.CUSTOMER_ID) == search_attributes.customer_pseudonym(
        body["customer_id"], stack_settings.checkout_id_secret)
    assert attributes.get(search_attributes.CHECKOUT_STATUS) == "HELD"
    assert f"orders:{stock.sku}" in (attributes.get(search_attributes.RESOURCES) or [])
