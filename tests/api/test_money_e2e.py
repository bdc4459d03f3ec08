"""Money end to end over HTTP, on the real dev server, workers, PostgreSQL and Redis: prices that hold with the
hold, the total, and the wallet as a participant of another kind (authorize the quote beside the holds, decline
and its compensation, a price changed since the API's quote, capture then confirm, a refund when a confirm fails
after the capture, void on cancel, concurrent paid checkouts against one wallet), and bad inputs as
problem+json."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.db import create_engine
from services.registry import build_services
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem
from tests.ledger.helpers import assert_ledger_clean

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
DEPARTS = (datetime.now(UTC) + timedelta(days=20)).isoformat()


@pytest.fixture(scope="module")
async def stack_settings(dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str) -> Settings:
    # Room for the 20 concurrent checkouts of one customer below.
    return live_settings(dev_server_env, api_database, redis_url, customer_active_checkouts_max=50,
                         customer_units_max=100)


@pytest.fixture(scope="module")
async def client(dev_server_env: WorkflowEnvironment, stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with saga_workers(dev_server_env, stack_settings), running_app(stack_settings) as (_app, http):
        yield http


@pytest.fixture(scope="module")
async def services(stack_settings: Settings) -> AsyncIterator[dict[str, Any]]:
    engine = create_engine(stack_settings.database_url)
    yield build_services(engine)
    await engine.dispose()


async def flight(
    client: httpx.AsyncClient, *, fare: int | None = 10_000, currency: str = "EUR", seats: int = 50
) -> str:
    flight_id = unique("FL")
    body: dict[str, Any] = {"origin": "LHR", "destination": "JFK", "departs_at": DEPARTS, "seats": {"economy": seats}}
    if fare is not None:
        body |= {"currency": currency, "fares": {"economy": fare}}
    response = await client.put(f"/v1/inventory/flights/{flight_id}", json=body, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return flight_id


async def item(client: httpx.AsyncClient, *, price: int | None, currency: str = "EUR", stock: int = 50) -> str:
    sku = unique("SKU")
    body: dict[str, Any] = {"stock": stock} | ({"price": price, "currency": currency} if price is not None else {})
    response = await client.put(f"/v1/inventory/items/{sku}", json=body, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return sku


async def fund(client: httpx.AsyncClient, customer: str, balance: int, currency: str = "EUR") -> None:
    response = await client.put(f"/v1/wallets/{customer}", json={"currency": currency, "balance": balance},
                                headers=OPERATOR)
    assert response.status_code == 200, response.text


async def wallet(client: httpx.AsyncClient, customer: str) -> dict[str, Any]:
    response = await client.get(f"/v1/wallets/{customer}")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["balance"] == answer["available"] + answer["authorized"] + answer["captured"]
    return answer


def seats(flight_id: str, count: int = 1) -> dict[str, Any]:
    return {"flight_id": flight_id, "seat_class": "economy", "seats": count}


async def checkout(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/checkouts", json=body, headers={"Idempotency-Key": unique("key")})


async def available(client: httpx.AsyncClient, flight_id: str) -> int:
    answer = (await client.get(f"/v1/flights/{flight_id}/availability")).json()
    found: int = answer["seat_classes"]["economy"]["available"]
    return found


async def test_prices_hold_with_the_hold_and_the_view_carries_the_total(client: httpx.AsyncClient) -> None:
    flight_id = await flight(client, fare=12_500)
    sku = await item(client, price=1_999)
    shown = (await client.get(f"/v1/flights/{flight_id}/availability")).json()
    assert shown["seat_classes"]["economy"]["price"] == {"amount": 12_500, "currency": "EUR"}
    response = await checkout(client, {"customer_id": unique("cust"), "flight": seats(flight_id, 2),
                                       "items": [{"sku": sku, "quantity": 3}]})
    assert response.status_code == 201, response.text
    held = response.json()
    lines = {line["resource"]: line for hold in held["holds"] for line in hold["lines"]}
    assert (lines[f"{flight_id}/economy"]["unit_price"], lines[f"{flight_id}/economy"]["amount"]) == (12_500, 25_000)
    assert (lines[sku]["unit_price"], lines[sku]["amount"]) == (1_999, 5_997)
    assert held["total"] == {"amount": 30_997, "currency": "EUR"}
    # A price change during HELD never changes this checkout.
    repriced = {"origin": "LHR", "destination": "JFK", "departs_at": DEPARTS, "seats": {"economy": 50},
                "currency": "EUR", "fares": {"economy": 50_000}}
    assert (await client.put(f"/v1/inventory/flights/{flight_id}", json=repriced, headers=OPERATOR)).status_code == 200
    confirmed = (await client.post(f"/v1/checkouts/{held['checkout_id']}/confirm")).json()
    assert confirmed["status"] == "CONFIRMED" and confirmed["total"] == held["total"]


async def test_a_paid_checkout_authorizes_then_captures(client: httpx.AsyncClient, services) -> None:
    customer, flight_id = unique("cust"), await flight(client, fare=10_000)
    await fund(client, customer, 50_000)
    response = await checkout(client, {"customer_id": customer, "flight": seats(flight_id, 2),
                                       "payment": {"method": "wallet"}})
    assert response.status_code == 201, response.text
    held = response.json()
    assert {h["service"] for h in held["holds"]} == {"flight", "wallet"}
    assert held["total"] == {"amount": 20_000, "currency": "EUR"}
    seen = await wallet(client, customer)
    assert (seen["authorized"], seen["available"]) == (20_000, 30_000)
    confirmed = await client.post(f"/v1/checkouts/{held['checkout_id']}/confirm")
    assert confirmed.json()["status"] == "CONFIRMED", confirmed.text
    seen = await wallet(client, customer)
    assert (seen["authorized"], seen["captured"], seen["available"]) == (0, 20_000, 30_000)
    await assert_ledger_clean(services)


async def test_a_decline_releases_every_hold(client: httpx.AsyncClient, services) -> None:
    customer, flight_id = unique("cust"), await flight(client, fare=10_000, seats=5)
    await fund(client, customer, 15_000)
    response = await checkout(client, {"customer_id": customer, "flight": seats(flight_id, 2),
                                       "payment": {"method": "wallet"}})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["checkout_status"] == "REJECTED"
    assert [(s["resource"], s["requested"], s["available"]) for s in body["unavailable"]] == [
        ("payment", 20_000, 15_000)
    ]
    assert "reason" in body["unavailable"][0]
    assert await available(client, flight_id) == 5  # the seats were held, then released
    assert (await wallet(client, customer))["available"] == 15_000
    no_wallet = await checkout(client, {"customer_id": unique("cust"), "flight": seats(flight_id),
                                        "payment": {"method": "wallet"}})
    assert no_wallet.status_code == 409 and no_wallet.json()["unavailable"][0]["resource"] == "payment"
    await assert_ledger_clean(services)


async def test_a_price_changed_since_the_quote_is_refused_and_the_next_try_quoted_afresh(
    client: httpx.AsyncClient, stack_settings: Settings, services
) -> None:
    """The quote comes from the price check's reading, shared here for minutes: a re-price after it makes the held
    total differ from the quote. Off (PAYMENT_BESIDE_HOLDS=false), the payment authorizes the held total."""
    customer, flight_id = unique("cust"), await flight(client, fare=10_000)
    await fund(client, customer, 100_000)
    body = {"customer_id": customer, "flight": seats(flight_id), "payment": {"method": "wallet"}}

    async def reprice(fare: int) -> None:
        fares = {"origin": "LHR", "destination": "JFK", "departs_at": DEPARTS, "seats": {"economy": 50},
                 "currency": "EUR", "fares": {"economy": fare}}
        response = await client.put(f"/v1/inventory/flights/{flight_id}", json=fares, headers=OPERATOR)
        assert response.status_code == 200, response.text

    shared = stack_settings.model_copy(update={"price_check_seconds": 600.0})
    async with running_app(shared) as (_, quoting):
        first = await checkout(quoting, body)  # reads the price: 10 000, shared from now on
        assert first.status_code == 201 and first.json()["total"]["amount"] == 10_000, first.text
        await reprice(12_000)
        refused = await checkout(quoting, body)  # quoted 10 000 from the shared reading, held at 12 000
        assert refused.status_code == 409, refused.text
        answer = refused.json()
        assert answer["checkout_status"] == "REJECTED"
        assert [(s["resource"], s["requested"], s["available"]) for s in answer["unavailable"]] == [
            ("payment", 12_000, 10_000)]
        assert "prices changed" in answer["unavailable"][0]["reason"]
        assert await available(client, flight_id) == 49  # the refused checkout's seat is released
        assert (await wallet(client, customer))["authorized"] == 10_000  # the first checkout's alone
        again = await checkout(quoting, body)  # the refusal made the API forget its reading
        assert again.status_code == 201 and again.json()["total"]["amount"] == 12_000, again.text
        assert (await wallet(client, customer))["authorized"] == 22_000

    staged = shared.model_copy(update={"payment_beside_holds": False})
    async with running_app(staged) as (_, waiting):
        assert (await checkout(waiting, body)).status_code == 201  # reads 12 000
        await reprice(13_000)
        held = await checkout(waiting, body)  # no quote: the wallet authorizes what was held
        assert held.status_code == 201 and held.json()["total"]["amount"] == 13_000, held.text
        assert (await wallet(client, customer))["authorized"] == 22_000 + 12_000 + 13_000
    await assert_ledger_clean(services)


async def test_cancel_voids_the_authorization(client: httpx.AsyncClient, services) -> None:
    customer, flight_id = unique("cust"), await flight(client, fare=10_000)
    await fund(client, customer, 10_000)
    held = (await checkout(client, {"customer_id": customer, "flight": seats(flight_id),
                                    "payment": {"method": "wallet"}})).json()
    cancelled = await client.post(f"/v1/checkouts/{held['checkout_id']}/cancel")
    assert cancelled.json()["status"] == "CANCELLED", cancelled.text
    seen = await wallet(client, customer)
    assert (seen["authorized"], seen["captured"], seen["available"]) == (0, 0, 10_000)
    await assert_ledger_clean(services)


async def test_expiry_voids_the_authorization(client: httpx.AsyncClient, services) -> None:
    customer, flight_id = unique("cust"), await flight(client, fare=10_000)
    await fund(client, customer, 10_000)
    held = (await checkout(client, {"customer_id": customer, "flight": seats(flight_id), "hold_seconds": 5,
                                    "payment": {"method": "wallet"}})).json()
    assert held["status"] == "HELD", held
    status = ""
    for _ in range(120):  # polls until the saga's timer fired; the bound only stops a hung test
        status = (await client.get(f"/v1/checkouts/{held['checkout_id']}")).json()["status"]
        if status == "EXPIRED":
            break
        await asyncio.sleep(0.5)
    assert status == "EXPIRED"
    seen = await wallet(client, customer)
    assert (seen["authorized"], seen["captured"], seen["available"]) == (0, 0, 10_000)
    await assert_ledger_clean(services)


async def test_a_confirm_failing_after_the_capture_refunds_it(client: httpx.AsyncClient, services) -> None:
    customer, flight_id = unique("cust"), await flight(client, fare=10_000)
    await fund(client, customer, 10_000)
    held = (await checkout(client, {"customer_id": customer, "flight": seats(flight_id),
                                    "payment": {"method": "wallet"}})).json()
    # The flight's hold ends behind the saga's back (as an operator's release would): its confirm must fail.
    await services["flight"].release(f"{held['checkout_id']}:flight")
    answer = await client.post(f"/v1/checkouts/{held['checkout_id']}/confirm")
    assert answer.status_code == 409 and answer.json()["checkout_status"] == "FAILED", answer.text
    seen = await wallet(client, customer)
    assert (seen["authorized"], seen["captured"], seen["available"]) == (0, 0, 10_000)
    refunded = await services["wallet"].refund(f"{held['checkout_id']}:wallet",
                                               f"{held['checkout_id']}:wallet:refund:confirm-failed")
    assert (refunded.amount, refunded.captured) == (10_000, 0)  # the saga's refund, as recorded
    await assert_ledger_clean(services)


async def test_twenty_paid_checkouts_never_authorize_more_than_the_wallet_holds(
    client: httpx.AsyncClient, services
) -> None:
    customer, flight_id = unique("cust"), await flight(client, fare=3_000, seats=100)
    await fund(client, customer, 20_000)

    async def pay_once() -> httpx.Response:
        # One customer's concurrent claims queue on its row; a 503 (busy) is retried with the same key, as a
        # client must: the same key never becomes a second checkout.
        key = unique("key")
        body = {"customer_id": customer, "flight": seats(flight_id), "payment": {"method": "wallet"}}
        for _ in range(100):  # a bound only against a hung test
            answer = await client.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key})
            if answer.status_code != 503:
                return answer
            await asyncio.sleep(0.2)
        return answer

    answers = await asyncio.gather(*(pay_once() for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 6 and statuses.count(409) == 14, [a.text for a in answers]
    seen = await wallet(client, customer)
    assert (seen["authorized"], seen["available"]) == (18_000, 2_000)
    assert await available(client, flight_id) == 94  # every declined checkout's seat released
    await assert_ledger_clean(services)


async def test_bad_money_inputs_are_problems(client: httpx.AsyncClient) -> None:
    flight_id = unique("FL")
    base = {"origin": "LHR", "destination": "JFK", "departs_at": DEPARTS, "seats": {"economy": 5}}
    for bad in ({"currency": "EUX", "fares": {"economy": 1}}, {"currency": "EUR", "fares": {"economy": -5}},
                {"currency": "EUR", "fares": {"economy": 1.5}}, {"fares": {"economy": 100}}):
        response = await client.put(f"/v1/inventory/flights/{flight_id}", json=base | bad, headers=OPERATOR)
        assert_problem(response, 422)
    assert_problem(await client.put(f"/v1/wallets/{unique('cust')}", json={"currency": "XYZ", "balance": 1},
                                    headers=OPERATOR), 422)
    assert_problem(await client.put(f"/v1/wallets/{unique('cust')}", json={"currency": "EUR", "balance": -1},
                                    headers=OPERATOR), 422)
    assert_problem(await client.get(f"/v1/wallets/{unique('cust')}"), 404)
    euro, dollar, unpriced = await item(client, price=100), await item(client, price=100, currency="USD"), \
        await item(client, price=None)
    mixed = await checkout(client, {"customer_id": unique("cust"),
                                    "items": [{"sku": euro, "quantity": 1}, {"sku": dollar, "quantity": 1}]})
    assert_problem(mixed, 422)
    assert "one currency" in mixed.json()["detail"]
    paid = await checkout(client, {"customer_id": unique("cust"), "items": [{"sku": unpriced, "quantity": 1}],
                                   "payment": {"method": "wallet"}})
    assert_problem(paid, 422)
    assert unpriced in paid.json()["detail"]
    assert_problem(await checkout(client, {"customer_id": unique("cust"), "payment": {"method": "cash"},
                                           "items": [{"sku": euro, "quantity": 1}]}), 422)
    assert_problem(await checkout(client, {"customer_id": unique("cust"), "payment": {"method": "wallet"}}), 422)


async def test_cancelling_a_paid_sale_refunds_each_part_then_the_rest(client: httpx.AsyncClient, services) -> None:
    """A paid sale: cancelling the items refunds their amount (the flight stays sold and paid), cancelling the rest
    refunds what is left; the wallet ends where it began and the checkout is CANCELLED, the history keeping
    CONFIRMED. A payment is never a part of its own, and a paid HELD checkout is cancelled whole."""
    customer, flight_id, sku = unique("cust"), await flight(client, fare=10_000), await item(client, price=1_500)
    await fund(client, customer, 50_000)
    body = {"customer_id": customer, "flight": seats(flight_id), "items": [{"sku": sku, "quantity": 2}],
            "payment": {"method": "wallet"}}
    held = (await checkout(client, body)).json()
    checkout_id = held["checkout_id"]
    only_items = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["items"]})
    assert only_items.status_code == 409, only_items.text  # the authorization covers the whole total
    alone = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["payment"]})
    assert_problem(alone, 422)
    confirmed = await client.post(f"/v1/checkouts/{checkout_id}/confirm")
    assert confirmed.json()["status"] == "CONFIRMED", confirmed.text
    assert (await wallet(client, customer))["captured"] == 13_000

    part = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["items"]})
    assert part.status_code == 200, part.text
    assert part.json()["status"] == "CONFIRMED"
    statuses = {h["service"]: h["status"] for h in part.json()["holds"]}
    assert statuses == {"flight": "CONFIRMED", "orders": "RETURNED", "wallet": "CONFIRMED"}
    seen = await wallet(client, customer)
    assert (seen["captured"], seen["available"]) == (10_000, 40_000)
    again = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["items"]})
    assert again.status_code == 200 and (await wallet(client, customer))["captured"] == 10_000  # nothing twice

    whole = await client.post(f"/v1/checkouts/{checkout_id}/cancel")
    assert whole.status_code == 200, whole.text
    assert whole.json()["status"] == "CANCELLED"
    assert {h["status"] for h in whole.json()["holds"]} == {"RETURNED"}
    assert [c["status"] for c in whole.json()["history"]][-2:] == ["CONFIRMED", "CANCELLED"]
    seen = await wallet(client, customer)
    assert (seen["captured"], seen["authorized"], seen["available"]) == (0, 0, 50_000)
    assert await available(client, flight_id) == 50
    await assert_ledger_clean(services)
