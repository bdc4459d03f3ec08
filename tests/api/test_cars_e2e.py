"""The fourth participant end to end over HTTP: car rental's routes, a mixed checkout's compensation, confirm,
expiry and bad input, on the real dev server, workers, PostgreSQL and Redis (nothing above services/ names it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem
from tests.waiting import eventually

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
PICK_UP = date.today() + timedelta(days=50)
DROP_OFF = PICK_UP + timedelta(days=3)
RENTAL = {"pick_up": PICK_UP.isoformat(), "drop_off": DROP_OFF.isoformat()}


@pytest.fixture(scope="module")
async def stack_settings(dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str) -> Settings:
    return live_settings(dev_server_env, api_database, redis_url)


@pytest.fixture(scope="module")
async def client(dev_server_env: WorkflowEnvironment, stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with saga_workers(dev_server_env, stack_settings), running_app(stack_settings) as (_app, http):
        yield http


async def depot(client: httpx.AsyncClient, *, compact: int = 2, city: str | None = None) -> str:
    depot_id = unique("D")
    body = {"city": city or unique("city"), "cars": {"compact": compact, "suv": 1},
            "days_from": PICK_UP.isoformat(), "days_to": (DROP_OFF + timedelta(days=3)).isoformat()}
    response = await client.put(f"/v1/inventory/cars/{depot_id}", json=body, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return depot_id


async def compact(client: httpx.AsyncClient, depot_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/cars/{depot_id}/availability", params=RENTAL)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["car_classes"]["compact"]
    return answer


def car(depot_id: str, cars: int = 1) -> dict[str, Any]:
    return {"depot_id": depot_id, "car_class": "compact", **RENTAL, "cars": cars}


async def post_checkout(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/checkouts", json=body, headers={"Idempotency-Key": unique("key")})


async def settled(client: httpx.AsyncClient, checkout_id: str, status: str) -> None:
    async def reached() -> bool:  # the saga's timer has fired
        return bool((await client.get(f"/v1/checkouts/{checkout_id}")).json()["status"] == status)

    await eventually(reached, every=0.5)


async def test_availability_is_the_least_over_the_days(client: httpx.AsyncClient) -> None:
    depot_id = await depot(client, compact=2)
    answer = (await client.get(f"/v1/cars/{depot_id}/availability", params=RENTAL)).json()
    assert answer["depot_id"] == depot_id
    assert answer["car_classes"]["compact"]["available"] == 2
    assert sorted(answer["car_classes"]["compact"]["days"]) == [
        (PICK_UP + timedelta(days=i)).isoformat() for i in range(3)  # drop-off day excluded
    ]


async def test_car_checkout_held_then_confirmed_sells_each_day(client: httpx.AsyncClient) -> None:
    depot_id = await depot(client)
    response = await post_checkout(client, {"customer_id": unique("cust"), "car": car(depot_id)})
    assert response.status_code == 201, response.text
    assert [hold["service"] for hold in response.json()["holds"]] == ["cars"]
    assert len(response.json()["holds"][0]["lines"]) == 3  # one line per rental day
    assert (await compact(client, depot_id))["available"] == 1
    confirmed = await client.post(f"/v1/checkouts/{response.json()['checkout_id']}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED"
    days = (await compact(client, depot_id))["days"]
    assert {day["sold"] for day in days.values()} == {1} and {day["held"] for day in days.values()} == {0}


async def test_a_short_item_rolls_back_the_car_in_a_mixed_checkout(client: httpx.AsyncClient) -> None:
    depot_id = await depot(client)
    sku = unique("SKU")
    assert (await client.put(f"/v1/inventory/items/{sku}", json={"stock": 1}, headers=OPERATOR)).status_code == 200
    body = {"customer_id": unique("cust"), "car": car(depot_id), "items": [{"sku": sku, "quantity": 2}]}
    problem = assert_problem(await post_checkout(client, body), 409)
    assert problem["checkout_status"] == "REJECTED"
    assert [shortage["resource"] for shortage in problem["unavailable"]] == [sku]
    async def released() -> bool:  # the compensation runs as the 409 is answered
        return bool((await compact(client, depot_id))["available"] == 2)

    await eventually(released)
    days = (await compact(client, depot_id))["days"]
    assert {(day["held"], day["sold"]) for day in days.values()} == {(0, 0)}


async def test_sold_out_car_offers_the_other_depot_in_the_city(client: httpx.AsyncClient) -> None:
    city = unique("city")
    full, other = await depot(client, compact=1, city=city), await depot(client, compact=2, city=city)
    assert (await post_checkout(client, {"customer_id": unique("cust"), "car": car(full)})).status_code == 201
    problem = assert_problem(await post_checkout(client, {"customer_id": unique("cust"), "car": car(full)}), 409)
    fragments = [alternative["checkout"] for alternative in problem["alternatives"]]
    assert {"car": car(other)} in fragments
    # One click away: the alternative's fragment is a checkout part as it is.
    booked = await post_checkout(client, {"customer_id": unique("cust"), **{"car": car(other)}})
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "HELD" and [h["service"] for h in booked.json()["holds"]] == ["cars"]
    assert (await compact(client, other))["available"] == 1 and (await compact(client, full))["available"] == 0


async def test_car_hold_expires_and_frees_the_days(client: httpx.AsyncClient, stack_settings: Settings) -> None:
    depot_id = await depot(client)
    body = {"customer_id": unique("cust"), "car": car(depot_id), "hold_seconds": stack_settings.hold_seconds_min}
    response = await post_checkout(client, body)
    assert response.status_code == 201, response.text
    assert (await compact(client, depot_id))["available"] == 1
    await settled(client, response.json()["checkout_id"], "EXPIRED")
    days = (await compact(client, depot_id))["days"]
    assert (await compact(client, depot_id))["available"] == 2
    assert {(day["held"], day["sold"]) for day in days.values()} == {(0, 0)}


@pytest.mark.parametrize(
    "change",
    [
        {"drop_off": PICK_UP.isoformat()},  # not after pick-up
        {"drop_off": (PICK_UP + timedelta(days=61)).isoformat()},  # too long
        {"cars": True},  # a boolean is not a count
        {"cars": 0},
        {"depot_id": "not an id!"},
    ],
)
async def test_bad_car_parts_are_422(client: httpx.AsyncClient, change: dict[str, Any]) -> None:
    body = {"customer_id": unique("cust"), "car": {**car("D-ANY"), **change}}
    assert_problem(await post_checkout(client, body), 422)


async def test_unknown_depot_is_422_in_a_checkout_and_404_in_a_path(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await post_checkout(client, {"customer_id": unique("cust"), "car": car(unique("D"))}), 422)
    assert problem["type"].endswith("unknown-resource")
    assert_problem(await client.get(f"/v1/cars/{unique('D')}/availability", params=RENTAL), 404)
    bad_query = {"pick_up": PICK_UP.isoformat(), "drop_off": PICK_UP.isoformat()}
    assert_problem(await client.get(f"/v1/cars/{unique('D')}/availability", params=bad_query), 422)
    wrong = {"city": "X", "cars": {"compact": -1}, "days_from": PICK_UP.isoformat(), "days_to": PICK_UP.isoformat()}
    assert_problem(await client.put(f"/v1/inventory/cars/{unique('D')}", json=wrong, headers=OPERATOR), 422)
