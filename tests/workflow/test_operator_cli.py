"""`booking-saga checkouts list|show|retry-compensation|cancel` on the real dev server and real PostgreSQL.

Checkouts are placed as the API places them (checkouts.saga.submit: Update-with-Start, search attributes at start) on
workers of this module's own task queues; the commands are parsed by the real `booking-saga` parser.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from booking_saga import checkouts_cli
from booking_saga.cli import build_parser, main
from checkouts import saga
from runtime.worker import build_workers
from services.bookings.records import BookingRecords
from services.registry import NAMES
from settings import Settings, get_settings
from tests.workflow.helpers import FaultyService, Inventory, RefusingRelease, seed, unique
from workflows import search_attributes
from workflows.models import CONFIRM, CheckoutRequest, CheckoutStatus, CheckoutView

pytestmark = [pytest.mark.devserver]


@dataclass
class Stack:
    client: Client
    settings: Settings
    services: dict[str, Any]
    hotel: RefusingRelease
    inventory: Inventory
    records: BookingRecords | None = None

    async def place(self, request: CheckoutRequest) -> CheckoutView:
        view = await saga.submit(self.client, self.settings, unique("co"), request, "operator", 600)
        assert view.status == CheckoutStatus.HELD, view
        return view

    async def cli(self, *argv: str) -> tuple[int, str]:
        args = build_parser().parse_args(["checkouts", *argv])
        out = io.StringIO()
        code = await checkouts_cli.run(self.client, self.services, args, out, self.records, self.settings)
        return code, out.getvalue()


@pytest.fixture(scope="module")
async def stack(
    dev_server_env: WorkflowEnvironment, saga_services: dict[str, FaultyService], saga_engine: AsyncEngine
) -> AsyncIterator[Stack]:
    suffix = unique("ops")
    settings = Settings(task_queue_checkout=f"checkout-{suffix}",
                        task_queues={name: f"{name}-{suffix}" for name in NAMES}, workflow_sandbox=True)
    hotel = RefusingRelease(saga_services["hotel"])
    services: dict[str, Any] = {**saga_services, "hotel": hotel}
    records = BookingRecords(saga_engine)
    workers = build_workers(dev_server_env.client, settings, "all", services, records=records)
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    inventory = await seed(saga_services, seats=20, rooms=20, stock=50)
    yield Stack(dev_server_env.client, settings, services, hotel, inventory, records)
    hotel.refuse = False
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*runs, return_exceptions=True)


async def current_details(client: Client, checkout_id: str) -> str:
    """What the Temporal UI shows as the workflow's current details (the SDK's built-in metadata query)."""
    metadata = await client.get_workflow_handle(checkout_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return metadata.current_details


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Visibility follows the saga's search-attribute upserts a moment later: look again until it shows."""
    for _ in range(100):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never saw {what}")


async def _listed(stack: Stack, *argv: str) -> set[str]:
    code, out = await stack.cli("list", "--json", *argv)
    assert code == 0, out
    return {row["checkout_id"] for row in json.loads(out)}


async def test_list_filters_by_customer_status_and_resource(stack: Stack) -> None:
    alice, bob = unique("alice"), unique("bob")
    only_flight = stack.inventory.request(customer=alice, parts=("flight",))
    everything = stack.inventory.request(customer=alice)
    first = await stack.place(only_flight)
    second = await stack.place(everything)
    third = await stack.place(stack.inventory.request(customer=bob, parts=("orders",)))
    confirmed = await saga.update(stack.client, first.checkout_id, CONFIRM)
    assert confirmed.status == CheckoutStatus.CONFIRMED
    sku = f"orders:{stack.inventory.sku}"

    async def filters_agree() -> bool:
        return (
            await _listed(stack, "--customer", alice) == {first.checkout_id, second.checkout_id}
            and await _listed(stack, "--customer", alice, "--status", "CONFIRMED") == {first.checkout_id}
            and await _listed(stack, "--customer", alice, "--status", "HELD") == {second.checkout_id}
            and {second.checkout_id, third.checkout_id} <= await _listed(stack, "--resource", sku)
            and first.checkout_id not in await _listed(stack, "--resource", sku)
        )

    await _eventually(filters_agree, "the list filters agree with the checkouts placed")
    code, text = await stack.cli("list", "--customer", alice, "--limit", "1")
    # The list shows the customer as Temporal holds it: the CustomerId pseudonym, never the id itself.
    alias = search_attributes.customer_pseudonym(alice, stack.settings.checkout_id_secret)
    assert code == 0 and len([line for line in text.splitlines() if alias in line]) == 1, text
    assert alice not in text
    code, text = await stack.cli("list", "--customer", "nobody'; DROP")
    assert code == 1 and "not a valid value" in text


async def test_show_prints_the_saga_and_the_ledger_side_by_side(stack: Stack) -> None:
    view = await stack.place(stack.inventory.request(customer=unique("carol"), rooms=2))
    code, out = await stack.cli("show", view.checkout_id, "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["status"] == "HELD" and shown["expires_at"]
    assert {hold["service"] for hold in shown["holds"]} == {"flight", "hotel", "orders"}
    for hold in shown["holds"]:
        assert hold["saga"]["status"] == hold["ledger"]["status"] == "ACTIVE", hold
        assert hold["saga"]["lines"] == hold["ledger"]["lines"] and hold["ledger"]["lines"], hold
    assert [change["status"] for change in shown["history"]] == ["PENDING", "HELD"]

    code, text = await stack.cli("show", view.checkout_id)
    assert code == 0
    assert "status   HELD" in text and "saga: ACTIVE" in text and "ledger: ACTIVE" in text, text
    assert f"{stack.inventory.hotel_id}/deluxe" in text and " x2" in text, text

    details = await current_details(stack.client, view.checkout_id)
    assert details.startswith("**HELD**") and f"expires at {shown['expires_at'][:16]}" in details, details
    assert f"- hotel ACTIVE: {stack.inventory.hotel_id}/deluxe/" in details and " x2" in details, details
    assert "- flight ACTIVE:" in details and "- orders ACTIVE:" in details, details

    code, text = await stack.cli("show", "co-" + "0" * 32)
    assert code == 1 and "no checkout" in text


async def test_retry_compensation_resolves_a_needs_attention_checkout(stack: Stack) -> None:
    view = await stack.place(stack.inventory.request(customer=unique("dave")))
    stack.hotel.refuse = True
    try:
        code, text = await stack.cli("cancel", view.checkout_id)  # the hotel's release fails: NEEDS_ATTENTION
        assert code == 0 and "NEEDS_ATTENTION" in text, text

        async def listed() -> bool:
            return view.checkout_id in await _listed(stack, "--status", "NEEDS_ATTENTION")

        await _eventually(listed, "the checkout listed as NEEDS_ATTENTION")
        code, out = await stack.cli("show", view.checkout_id, "--json")
        shown = json.loads(out)
        assert shown["status"] == "NEEDS_ATTENTION" and "hotel" in shown["error"], shown
        sides = {hold["service"]: hold["ledger"]["status"] for hold in shown["holds"]}
        assert sides == {"flight": "RELEASED", "hotel": "ACTIVE", "orders": "RELEASED"}, shown
        details = await current_details(stack.client, view.checkout_id)
        assert details.startswith("**NEEDS_ATTENTION**") and "- hotel ACTIVE:" in details, details
        assert "- flight RELEASED:" in details and "last error: release failed: hotel" in details, details
    finally:
        stack.hotel.refuse = False  # the cause is fixed

    code, text = await stack.cli("retry-compensation", view.checkout_id)
    assert code == 0 and "NEEDS_ATTENTION" in text, text
    result = await stack.client.get_workflow_handle(view.checkout_id, result_type=CheckoutView).result()
    assert result.status == CheckoutStatus.CANCELLED and result.error is None
    code, out = await stack.cli("show", view.checkout_id, "--json")
    assert {hold["ledger"]["status"] for hold in json.loads(out)["holds"]} == {"RELEASED"}


async def test_cancel_a_held_checkout_and_a_sale_part_by_part(stack: Stack) -> None:
    held = await stack.place(stack.inventory.request(customer=unique("erin"), parts=("orders",)))
    code, text = await stack.cli("cancel", held.checkout_id)
    assert code == 0 and "CANCELLED" in text, text

    sold = await stack.place(stack.inventory.request(customer=unique("erin"), parts=("flight", "orders")))
    await saga.update(stack.client, sold.checkout_id, CONFIRM)
    code, text = await stack.cli("cancel", sold.checkout_id, "--part", "items")
    assert code == 0 and "CONFIRMED" in text and "orders RETURNED" in text, text
    code, text = await stack.cli("cancel", sold.checkout_id, "--part", "car")
    assert code == 1 and "no car part" in text, text
    code, text = await stack.cli("cancel", sold.checkout_id)
    assert code == 0 and "CANCELLED" in text and "flight RETURNED" in text, text


async def test_show_reads_the_record_once_the_workflow_is_deleted(stack: Stack) -> None:
    sold = await stack.place(stack.inventory.request(customer=unique("gina"), parts=("orders",)))
    await saga.update(stack.client, sold.checkout_id, CONFIRM)
    handle = stack.client.get_workflow_handle(sold.checkout_id)
    await handle.result()
    await stack.client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
        namespace=stack.client.namespace, workflow_execution=WorkflowExecution(workflow_id=sold.checkout_id)))

    async def deleted() -> bool:
        try:
            await handle.describe()
        except RPCError as error:
            return error.status == RPCStatusCode.NOT_FOUND
        return False

    for _ in range(600):  # the server deletes in the background
        if await deleted():
            break
        await asyncio.sleep(0.1)
    code, out = await stack.cli("show", sold.checkout_id, "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["status"] == "CONFIRMED" and shown["holds"][0]["ledger"]["status"] == "CONFIRMED", shown


async def test_the_command_line_reads_the_ledgers_of_database_url(
    stack: Stack, saga_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    view = await stack.place(stack.inventory.request(customer=unique("fred"), parts=("orders",)))
    target = stack.client.service_client.config.target_host
    for name, value in {"TEMPORAL_ADDRESS": target, "DATABASE_URL": saga_database}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        code = await asyncio.to_thread(main, ["checkouts", "show", view.checkout_id, "--json"])
    finally:
        get_settings.cache_clear()
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    (hold,) = shown["holds"]
    assert hold["ledger"]["status"] == "ACTIVE" and datetime.fromisoformat(hold["ledger"]["expires_at"])
