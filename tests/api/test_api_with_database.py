"""Operator routes, availability and the checkout prechecks against a real PostgreSQL (Temporal unreachable)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from runtime.embedded import free_port
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.test_api_without_servers import assert_problem

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
NIGHT = date.today() + timedelta(days=30)


@pytest.fixture(scope="module")
async def client(api_database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(operator_token=OPERATOR_TOKEN, database_url=api_database,
                        temporal_address=f"127.0.0.1:{free_port()}")
    async with running_app(settings) as (_app, http):
        yield http


async def put_flight(client: httpx.AsyncClient, flight_id: str, seats: dict[str, int]) -> httpx.Response:
    body = {"origin": "LHR", "destination": "JFK", "seats": seats,
            "departs_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}
    return await client.put(f"/v1/inventory/flights/{flight_id}", json=body, headers=OPERATOR)


async def test_operator_routes_need_the_token(client: httpx.AsyncClient) -> None:
    flight_id = unique("F")
    body = {"origin": "LHR", "destination": "JFK", "departs_at": "2030-01-01T10:00:00Z", "seats": {"y": 1}}
    assert_problem(await client.put(f"/v1/inventory/flights/{flight_id}", json=body), 401, "Bearer")
    wrong = {"Authorization": "Bearer nope"}
    response = await client.put(f"/v1/inventory/flights/{flight_id}", json=body, headers=wrong)
    assert_problem(response, 401, "wrong operator token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_problem(await client.get("/v1/audit"), 401)


async def test_upserts_then_availability(client: httpx.AsyncClient) -> None:
    flight_id, hotel_id, sku = unique("F"), unique("H"), unique("SKU")
    response = await put_flight(client, flight_id, {"economy": 10, "business": 2})
    assert response.status_code == 200, response.text
    assert response.json()["seat_classes"]["economy"] == {
        "capacity": 10, "held": 0, "sold": 0, "available": 10, "price": None
    }

    hotel = {"city": "Paris", "rooms": {"deluxe": 3}, "nights_from": NIGHT.isoformat(),
             "nights_to": (NIGHT + timedelta(days=1)).isoformat()}
    response = await client.put(f"/v1/inventory/hotels/{hotel_id}", json=hotel, headers=OPERATOR)
    assert response.status_code == 200, response.text
    response = await client.put(f"/v1/inventory/items/{sku}", json={"stock": 5}, headers=OPERATOR)
    assert response.status_code == 200, response.text

    flight = (await client.get(f"/v1/flights/{flight_id}/availability")).json()
    assert flight == {"flight_id": flight_id, "seat_classes": {
        "business": {"capacity": 2, "held": 0, "sold": 0, "available": 2, "price": None},
        "economy": {"capacity": 10, "held": 0, "sold": 0, "available": 10, "price": None},
    }}
    stay = {"check_in": NIGHT.isoformat(), "check_out": (NIGHT + timedelta(days=2)).isoformat()}
    rooms = (await client.get(f"/v1/hotels/{hotel_id}/availability", params=stay)).json()
    assert rooms["room_types"]["deluxe"]["available"] == 3
    assert len(rooms["room_types"]["deluxe"]["nights"]) == 2
    item = (await client.get(f"/v1/items/{sku}/availability")).json()
    assert item == {"sku": sku, "capacity": 5, "held": 0, "sold": 0, "available": 5, "price": None}

    audit = await client.get("/v1/audit", headers=OPERATOR)
    assert audit.status_code == 200 and audit.json()["ok"] is True


async def test_unknown_resources_in_paths_are_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/flights/NOPE-1/availability"), 404, "unknown flight NOPE-1")
    assert_problem(await client.get("/v1/items/NOPE-2/availability"), 404, "unknown sku NOPE-2")
    stay = {"check_in": NIGHT.isoformat(), "check_out": (NIGHT + timedelta(days=1)).isoformat()}
    assert_problem(await client.get("/v1/hotels/NOPE-3/availability", params=stay), 404, "unknown hotel NOPE-3")


async def test_bad_stays_and_capacities_are_422(client: httpx.AsyncClient) -> None:
    flight_id = unique("F")
    stay = {"check_in": NIGHT.isoformat(), "check_out": NIGHT.isoformat()}
    assert_problem(await client.get(f"/v1/hotels/{unique('H')}/availability", params=stay), 422, "check_out")
    assert_problem(await put_flight(client, flight_id, {"economy": -1}), 422, "seats.economy")
    assert_problem(await put_flight(client, flight_id, {}), 422, "seats")


async def test_checkout_naming_unknown_resources_is_422_before_any_saga(client: httpx.AsyncClient) -> None:
    flight_id, hotel_id = unique("F"), unique("H")
    await put_flight(client, flight_id, {"economy": 10})
    hotel = {"city": "Paris", "rooms": {"deluxe": 3}, "nights_from": NIGHT.isoformat(),
             "nights_to": (NIGHT + timedelta(days=1)).isoformat()}
    assert (await client.put(f"/v1/inventory/hotels/{hotel_id}", json=hotel, headers=OPERATOR)).status_code == 200
    stay = {"check_in": NIGHT.isoformat(), "check_out": (NIGHT + timedelta(days=1)).isoformat(), "rooms": 1}
    cases = [
        ({"flight": {"flight_id": unique("F"), "seat_class": "economy", "seats": 1}}, "unknown flight"),
        ({"flight": {"flight_id": flight_id, "seat_class": "first", "seats": 1}}, f"unknown flight {flight_id}/first"),
        ({"hotel": {"hotel_id": unique("H"), "room_type": "d", **stay}}, "unknown hotel"),
        # A room type the hotel does not have is as unknown as the hotel.
        ({"hotel": {"hotel_id": hotel_id, "room_type": "suite", **stay}}, f"unknown hotel {hotel_id}/suite"),
        ({"items": [{"sku": unique("SKU"), "quantity": 1}]}, "unknown sku"),
    ]
    for part, words in cases:
        response = await client.post("/v1/checkouts", json={"customer_id": "c1", **part},
                                     headers={"Idempotency-Key": unique("k")})
        assert assert_problem(response, 422, words)["type"].endswith("unknown-resource")
    # Temporal is unreachable here: a known flight reaches the saga call and gets 503, the unknown ones did not.
    known = {"customer_id": "c1", "flight": {"flight_id": flight_id, "seat_class": "economy", "seats": 1}}
    response = await client.post("/v1/checkouts", json=known, headers={"Idempotency-Key": unique("k")})
    assert_problem(response, 503)


async def test_readyz_with_database_up_and_temporal_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True and checks["temporal"]["ok"] is False
