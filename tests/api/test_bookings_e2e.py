"""Bookings that last (docs/bookings.md), end to end over HTTP on the real servers: the record after `temporal
workflow delete`, the same Idempotency-Key after it, cancelling a sale (whole, in parts, twenty at once, past its
window), cancelling parts while HELD, the customer's list and its paging, bad inputs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem
from tests.api.test_checkouts_e2e import Inventory, post_checkout

pytestmark = [pytest.mark.devserver, pytest.mark.slow]


@pytest.fixture(scope="module")
async def client(
    dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = live_settings(dev_server_env, api_database, redis_url)
    async with saga_workers(dev_server_env, settings), running_app(settings) as (_app, http):
        yield http

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def held(client: httpx.AsyncClient, stock: Inventory, **body: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    key = unique("key")
    request = stock.checkout(**body)
    response = await post_checkout(client, request, key)
    assert response.status_code == 201, response.text
    return response.json(), request, key


async def sold(client: httpx.AsyncClient, stock: Inventory, **body: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    checkout, request, key = await held(client, stock, **body)
    confirmed = await client.post(f"/v1/checkouts/{checkout['checkout_id']}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED", confirmed.text
    return confirmed.json(), request, key


def statuses(checkout: dict[str, Any]) -> dict[str, str]:
    return {hold["service"]: hold["status"] for hold in checkout["holds"]}


async def closed(env: WorkflowEnvironment, workflow_id: str) -> None:
    """Until the workflow has completed (its last record write is in by then)."""
    handle = env.client.get_workflow_handle(workflow_id)
    for _ in range(200):
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} did not complete")


async def delete_workflow(env: WorkflowEnvironment, workflow_id: str) -> None:
    """What `temporal workflow delete` does, then wait until Temporal no longer knows the workflow."""
    await env.client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
        namespace=env.client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id),
    ))
    for _ in range(600):
        if not await exists(env, workflow_id):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} was not deleted")


async def exists(env: WorkflowEnvironment, workflow_id: str) -> bool:
    try:
        await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def audit_ok(client: httpx.AsyncClient) -> None:
    report = await client.get("/v1/audit", headers=OPERATOR)
    assert report.status_code == 200 and report.json()["ok"], report.text


async def test_record_outlives_the_deleted_workflow(client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment,
                                                    api_database: str) -> None:
    stock = Inventory()
    await stock.create(client)
    checkout, request, key = await sold(client, stock)
    checkout_id = checkout["checkout_id"]
    await closed(dev_server_env, checkout_id)
    before = await client.get(f"/v1/checkouts/{checkout_id}")
    await delete_workflow(dev_server_env, checkout_id)

    after = await client.get(f"/v1/checkouts/{checkout_id}")
    assert after.status_code == 200 and after.json() == before.json()
    # The same key and body: the checkout's last answer from the record, never a second saga.
    again = await post_checkout(client, request, key)
    assert again.status_code == 201 and again.json() == before.json()
    assert not await exists(dev_server_env, checkout_id)
    confirmed = await client.post(f"/v1/checkouts/{checkout_id}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED"

    # The sale is still cancellable: its cancellation reads the record.
    cancelled = await client.post(f"/v1/checkouts/{checkout_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "CANCELLED"
    assert [c["status"] for c in body["history"]] == ["PENDING", "HELD", "CONFIRMED", "CANCELLED"]
    assert set(statuses(body).values()) == {"RETURNED"}
    seats, rooms, item = await stock.availability(client)
    assert (seats["sold"], seats["available"], item["sold"], item["available"]) == (0, 10, 0, 5)
    assert all(night["sold"] == 0 for night in rooms["deluxe"]["nights"].values())
    assert (await client.get(f"/v1/checkouts/{checkout_id}")).json() == body
    again = await post_checkout(client, request, key)
    assert again.status_code == 201 and again.json()["status"] == "CANCELLED"
    assert not await exists(dev_server_env, checkout_id)
    # Neither the cancelled sale nor the retried POST claimed anything against the customer's limits.
    connection = await asyncpg.connect(api_database)
    try:
        assert await connection.fetchval("SELECT count(*) FROM checkout.claims WHERE checkout_id = $1",
                                         checkout_id) == 0
    finally:
        await connection.close()
    await audit_ok(client)


async def test_twenty_cancels_of_one_sale_return_it_once(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client, seats=4, stock=5)
    checkout, _, _ = await sold(client, stock, seats=2, quantity=3)
    checkout_id = checkout["checkout_id"]
    answers = await asyncio.gather(*(client.post(f"/v1/checkouts/{checkout_id}/cancel") for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
    assert {a.json()["status"] for a in answers} == {"CANCELLED"}
    seats, _rooms, item = await stock.availability(client)
    assert (seats["sold"], seats["available"], item["sold"], item["available"]) == (0, 4, 0, 5)
    history = (await client.get(f"/v1/checkouts/{checkout_id}")).json()["history"]
    assert [c["status"] for c in history] == ["PENDING", "HELD", "CONFIRMED", "CANCELLED"]
    await audit_ok(client)


async def test_parts_cancelled_while_held_then_after_the_sale(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    checkout, _, _ = await held(client, stock)
    checkout_id = checkout["checkout_id"]
    first = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["hotel"]})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "HELD"
    assert statuses(first.json()) == {"flight": "ACTIVE", "hotel": "RELEASED", "orders": "ACTIVE"}
    again = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["hotel"]})
    assert again.status_code == 200 and statuses(again.json()) == statuses(first.json())
    _seats, rooms, _item = await stock.availability(client)
    assert rooms["deluxe"]["available"] == 3
    extended = await client.post(f"/v1/checkouts/{checkout_id}/extend", json={"seconds": 30})
    assert extended.status_code == 200 and statuses(extended.json())["hotel"] == "RELEASED", extended.text

    confirmed = await client.post(f"/v1/checkouts/{checkout_id}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED", confirmed.text
    assert statuses(confirmed.json()) == {"flight": "CONFIRMED", "hotel": "RELEASED", "orders": "CONFIRMED"}

    items = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["items"]})
    assert items.status_code == 200, items.text
    assert items.json()["status"] == "CONFIRMED"
    assert statuses(items.json()) == {"flight": "CONFIRMED", "hotel": "RELEASED", "orders": "RETURNED"}
    repeat = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["items"]})
    assert repeat.status_code == 200 and repeat.json() == items.json()
    seats, _rooms, item = await stock.availability(client)
    assert (seats["sold"], item["sold"], item["available"]) == (1, 0, 5)

    rest = await client.post(f"/v1/checkouts/{checkout_id}/cancel")
    assert rest.status_code == 200 and rest.json()["status"] == "CANCELLED", rest.text
    assert statuses(rest.json()) == {"flight": "RETURNED", "hotel": "RELEASED", "orders": "RETURNED"}
    seats, _rooms, _item = await stock.availability(client)
    assert seats["sold"] == 0
    await audit_ok(client)


async def test_cancelling_the_last_held_part_cancels_the_checkout(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    checkout, _, _ = await held(client, stock)
    parts = await client.post(f"/v1/checkouts/{checkout['checkout_id']}/cancel",
                              json={"parts": ["flight", "hotel", "items"]})
    assert parts.status_code == 200 and parts.json()["status"] == "CANCELLED", parts.text
    seats, _rooms, item = await stock.availability(client)
    assert (seats["held"], item["held"]) == (0, 0)


async def test_past_its_window_a_part_is_not_cancelled(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    soon = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    upsert = await client.put(f"/v1/inventory/flights/{stock.flight}", headers=OPERATOR, json={
        "origin": "LHR", "destination": "JFK", "departs_at": soon, "seats": {"economy": 10}})
    assert upsert.status_code == 200, upsert.text
    checkout, _, _ = await sold(client, stock)
    checkout_id = checkout["checkout_id"]
    refused = assert_problem(await client.post(f"/v1/checkouts/{checkout_id}/cancel"), 409)
    assert refused["type"].endswith("/cancel-window-closed") and "flight" in refused["detail"]
    assert [p["part"] for p in refused["parts"]] == ["flight"]
    seats, _rooms, item = await stock.availability(client)
    assert (seats["sold"], item["sold"]) == (1, 2)
    # Another part's window is open: that part alone can go.
    items = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["items"]})
    assert items.status_code == 200 and statuses(items.json())["orders"] == "RETURNED", items.text
    await audit_ok(client)


async def test_bad_cancels_are_problems(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    checkout, _, _ = await held(client, stock)
    path = f"/v1/checkouts/{checkout['checkout_id']}/cancel"
    for body in [{"parts": []}, {"parts": ["boat"]}, {"parts": "hotel"}, {"parts": ["hotel"], "extra": 1}]:
        assert_problem(await client.post(path, json=body), 422)
    assert_problem(await client.post(path, json={"parts": ["car"]}), 422, "no car part")
    # A checkout refused from the cache (the sold-out fast path) never existed: there is nothing to cancel.
    short = Inventory()
    await short.create(client, rooms={"deluxe": 0})
    rejected = assert_problem(await post_checkout(client, short.checkout()), 409)
    assert_problem(await client.post(f"/v1/checkouts/{rejected['checkout_id']}/cancel",
                                     json={"parts": ["hotel"]}), 404)


async def test_a_customers_list_pages_newest_first_while_checkouts_are_added(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client, seats=50, rooms={"deluxe": 50}, stock=50)
    customer = unique("cust")

    async def book() -> str:
        checkout, _, _ = await sold(client, stock, customer_id=customer, quantity=1)
        return str(checkout["checkout_id"])

    existing = [await book() for _ in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    await wait_listed(client, customer, len(existing))
    while True:
        params: dict[str, Any] = {"customer_id": customer, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/checkouts", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [c["checkout_id"] for c in body["checkouts"]]
        # Checkouts added while paging never shift the pages: nothing twice, nothing that existed skipped.
        await book()
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(existing) <= set(seen)
    assert [s for s in seen if s in existing] == existing[::-1]  # newest first

    confirmed = await client.get("/v1/checkouts", params={"customer_id": customer, "status": "CONFIRMED"})
    assert {c["status"] for c in confirmed.json()["checkouts"]} == {"CONFIRMED"}
    assert (await client.get("/v1/checkouts", params={"customer_id": customer, "status": "EXPIRED"})).json() == {
        "checkouts": [], "next_cursor": None}
    everyone = await client.get("/v1/checkouts", params={"limit": 1}, headers=OPERATOR)
    assert everyone.status_code == 200 and len(everyone.json()["checkouts"]) == 1

    for params in [{"customer_id": customer, "limit": 0}, {"customer_id": customer, "limit": 101},
                   {"customer_id": customer, "cursor": "not-a-cursor"}, {"customer_id": customer, "status": "NOPE"},
                   {}]:
        assert_problem(await client.get("/v1/checkouts", params=params), 422)


async def wait_listed(client: httpx.AsyncClient, customer: str, count: int) -> None:
    """The records are written just after each answer: until the list shows them all."""
    for _ in range(200):
        page = await client.get("/v1/checkouts", params={"customer_id": customer, "limit": 100})
        if len(page.json()["checkouts"]) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the records did not appear")


async def test_a_departed_flight_is_not_held(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    gone = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    upsert = await client.put(f"/v1/inventory/flights/{stock.flight}", headers=OPERATOR, json={
        "origin": "LHR", "destination": "JFK", "departs_at": gone, "seats": {"economy": 10}})
    assert upsert.status_code == 200, upsert.text
    later = unique("F")
    departs = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    upsert = await client.put(f"/v1/inventory/flights/{later}", headers=OPERATOR, json={
        "origin": "LHR", "destination": "JFK", "departs_at": departs, "seats": {"economy": 10}})
    assert upsert.status_code == 200, upsert.text
    problem = assert_problem(await post_checkout(client, stock.checkout()), 409)
    assert problem["checkout_status"] == "REJECTED"
    assert problem["unavailable"] == [{"resource": f"{stock.flight}/economy", "requested": 1, "available": 0,
                                       "reason": "departed"}]
    assert any(a["service"] == "flight" for a in problem["alternatives"])
    seats, _rooms, item = await stock.availability(client)
    assert (seats["held"], item["held"]) == (0, 0)


async def test_a_stay_that_started_yesterday_is_a_422(client: httpx.AsyncClient) -> None:
    stock = Inventory()
    await stock.create(client)
    body = stock.checkout()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    body["hotel"] |= {"check_in": yesterday.isoformat(), "check_out": (yesterday + timedelta(days=2)).isoformat()}
    assert_problem(await post_checkout(client, body), 422, "before today")


async def test_the_saga_audit_holds_records_against_sagas_and_ledgers(
    client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment, api_database: str
) -> None:
    stock = Inventory()
    await stock.create(client, rooms={"deluxe": 5}, stock=10)
    kept, _, _ = await sold(client, stock)
    returned, _, _ = await sold(client, stock)
    parts, _, _ = await sold(client, stock)
    for checkout in (kept, returned, parts):
        await closed(dev_server_env, checkout["checkout_id"])
    assert (await client.post(f"/v1/checkouts/{returned['checkout_id']}/cancel")).status_code == 200
    assert (await client.post(f"/v1/checkouts/{parts['checkout_id']}/cancel",
                              json={"parts": ["hotel"]})).status_code == 200

    def mine(report: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        ids = {kept["checkout_id"], returned["checkout_id"], parts["checkout_id"]}
        return sorted((v["kind"], v["checkout_id"], v["service"]) for v in report["sagas"]["violations"]
                      if v["checkout_id"] in ids)

    report = (await client.get("/v1/audit", params={"sagas": "true"}, headers=OPERATOR)).json()
    assert mine(report) == []
    # A record that disagrees with the ledger, and one that is missing, are violations.
    connection = await asyncpg.connect(api_database)
    try:
        await connection.execute(
            """UPDATE checkout.bookings SET view = jsonb_set(view, '{holds,0,status}', '"RETURNED"')
               WHERE checkout_id = $1""", kept["checkout_id"])
        await connection.execute("DELETE FROM checkout.bookings WHERE checkout_id = $1", returned["checkout_id"])
    finally:
        await connection.close()
    report = (await client.get("/v1/audit", params={"sagas": "true"}, headers=OPERATOR)).json()
    found = mine(report)
    assert ("record_disagrees", kept["checkout_id"], "flight") in found
    assert ("record_missing", returned["checkout_id"], None) in found


async def test_a_cancel_racing_a_confirm_ends_with_nothing_sold(client: httpx.AsyncClient) -> None:
    """Confirm and cancel sent at once, whichever the saga takes first: the cancel answers 200 CANCELLED (a held
    checkout released, or a sale given back), the stock is whole again, the ledger clean."""
    stock = Inventory()
    await stock.create(client, seats=10, rooms={"deluxe": 10}, stock=20)
    for _ in range(4):
        checkout, _, _ = await held(client, stock, quantity=1)
        path = f"/v1/checkouts/{checkout['checkout_id']}"
        confirm, cancel = await asyncio.gather(client.post(f"{path}/confirm"), client.post(f"{path}/cancel"))
        assert confirm.status_code in (200, 409), confirm.text
        assert cancel.status_code == 200 and cancel.json()["status"] == "CANCELLED", cancel.text
        final = (await client.get(path)).json()
        assert final["status"] == "CANCELLED"
        assert set(statuses(final).values()) <= {"RELEASED", "RETURNED"}, final
    seats, rooms, item = await stock.availability(client)
    assert (seats["held"], seats["sold"], item["held"], item["sold"]) == (0, 0, 0, 0)
    assert all(night["held"] == night["sold"] == 0 for night in rooms["deluxe"]["nights"].values())
    await audit_ok(client)


async def test_a_part_cancel_racing_the_expiry_ends_with_nothing_held(client: httpx.AsyncClient) -> None:
    """A part's cancel sent as the hold runs out: released by one or the other, never twice, nothing held."""
    stock = Inventory()
    await stock.create(client)
    checkout, _, _ = await held(client, stock, hold_seconds=5)
    expires_at = datetime.fromisoformat(checkout["expires_at"])
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds() - 0.05))
    path = f"/v1/checkouts/{checkout['checkout_id']}"
    cancel = await client.post(f"{path}/cancel", json={"parts": ["hotel"]})
    assert cancel.status_code in (200, 409), cancel.text
    for _ in range(200):
        final = (await client.get(path)).json()
        if final["status"] == "EXPIRED":
            break
        await asyncio.sleep(0.1)
    assert final["status"] == "EXPIRED", final
    assert set(statuses(final).values()) == {"RELEASED"}, final
    seats, rooms, item = await stock.availability(client)
    assert (seats["held"], item["held"]) == (0, 0)
    assert all(night["held"] == 0 for night in rooms["deluxe"]["nights"].values())
    await audit_ok(client)


async def test_parts_of_a_rejected_checkout_are_a_422(client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment,
                                                      api_database: str) -> None:
    """Through the saga (an app without the cache, so no sold-out fast path answers first): REJECTED, and its
    parts cannot be cancelled; cancelling the whole of it answers its status again."""
    stock = Inventory()
    await stock.create(client, rooms={"deluxe": 0})
    no_cache = live_settings(dev_server_env, api_database, "")
    async with running_app(no_cache) as (_app, direct):
        rejected = assert_problem(await post_checkout(direct, stock.checkout()), 409)
        assert rejected["checkout_status"] == "REJECTED"
        path = f"/v1/checkouts/{rejected['checkout_id']}/cancel"
        assert_problem(await direct.post(path, json={"parts": ["hotel"]}), 422, "REJECTED")
        whole = await direct.post(path)
        assert whole.status_code == 200 and whole.json()["status"] == "REJECTED", whole.text
