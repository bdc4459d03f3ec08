"""Crash points of a paid checkout on real processes (see test_crash_points.py for the method): a worker SIGKILLed
right after the wallet's authorize, capture or refund committed, its result lost; the standby takes over and the
wallet moves exactly once (authorized, captured, refunded once), the inventory too, and both audits are clean."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import TaskQueueType

from checkouts import saga
from services.flight.schemas import FlightInventory, FlightRequest
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.registry import AnyService
from services.wallet.schemas import WalletBody, WalletQuery, WalletRequest
from tests.ledger.helpers import assert_ledger_clean
from tests.workflow.helpers import unique
from tests.workflow.test_crash_points import Stack, Worker, assert_one_died, ledgers, stack
from workflows.models import CONFIRM, CheckoutRequest, CheckoutStatus, CheckoutView

pytestmark = [pytest.mark.devserver, pytest.mark.slow]
__all__ = ["ledgers", "stack"]  # the fixtures, shared with test_crash_points.py

FARE, PRICE, BALANCE = 10_000, 2_000, 50_000
TOTAL = FARE + PRICE
PAID = ("flight", "orders", "wallet")


async def start_paid(stack: Stack, crash_after: str) -> list[Worker]:
    """As Stack.start_all, for the participants of a paid checkout."""
    local = stack.placement == "local"
    crashing = "checkout" if local else crash_after.split(".")[0]
    services = ["checkout"] if local else ["checkout", *PAID]
    pair = [stack.start(crashing, crash_after) for _ in range(2)]
    for service in services:
        if service != crashing:
            stack.start(service)
    for service in services:
        queue, kind = (
            (stack.settings.task_queue_checkout, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW) if service == "checkout"
            else (stack.settings.task_queue(service), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        )
        await stack.eventually(
            functools.partial(stack._pollers, queue, kind, 2 if service == crashing else 1), f"{service} polls"
        )
    return pair


async def paid_checkout(stack: Stack, ledgers: Mapping[str, AnyService]) -> tuple[str, str, CheckoutView]:
    customer, flight_id, sku = unique("cust"), unique("FL"), unique("SKU")
    await ledgers["flight"].upsert(flight_id, FlightInventory(
        origin="LHR", destination="JFK", departs_at=datetime(2031, 6, 1, 9, tzinfo=UTC), seats={"economy": 5},
        currency="EUR", fares={"economy": FARE},
    ))
    await ledgers["orders"].upsert(sku, ItemInventory(stock=5, currency="EUR", price=PRICE))
    await ledgers["wallet"].upsert(customer, WalletBody(currency="EUR", balance=BALANCE))
    request = CheckoutRequest.model_validate({
        "customer_id": customer, "flight": FlightRequest(flight_id=flight_id, seat_class="economy", seats=1),
        "items": ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), "payment": WalletRequest(),
    })
    view = await saga.submit(stack.client, stack.settings, unique("co"), request, "crash-test", 120)
    return customer, flight_id, view


async def account(ledgers: Mapping[str, Any], customer: str) -> tuple[int, int, int]:
    seen = await ledgers["wallet"].availability(customer, WalletQuery())
    return seen.authorized, seen.captured, seen.available


async def test_crash_after_the_authorize_committed(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    pair = await start_paid(stack, "wallet.hold")
    customer, _, view = await paid_checkout(stack, ledgers)
    await assert_one_died(stack, pair)
    assert view.status == CheckoutStatus.HELD, view
    assert await account(ledgers, customer) == (TOTAL, 0, BALANCE - TOTAL)  # authorized once
    confirmed = await saga.update(stack.client, view.checkout_id, CONFIRM)
    assert confirmed.status == CheckoutStatus.CONFIRMED, confirmed
    assert await account(ledgers, customer) == (0, TOTAL, BALANCE - TOTAL)
    await assert_ledger_clean(ledgers)


async def test_crash_after_the_capture_committed(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    pair = await start_paid(stack, "wallet.confirm")
    customer, flight_id, view = await paid_checkout(stack, ledgers)
    assert view.status == CheckoutStatus.HELD, view
    confirmed = await saga.update(stack.client, view.checkout_id, CONFIRM)
    await assert_one_died(stack, pair)
    assert confirmed.status == CheckoutStatus.CONFIRMED, confirmed
    assert await account(ledgers, customer) == (0, TOTAL, BALANCE - TOTAL)  # captured once
    seats = (await ledgers["flight"].availability(flight_id)).seat_classes["economy"]
    assert (seats.held, seats.sold) == (0, 1)
    await assert_ledger_clean(ledgers)


async def test_crash_after_the_refund_committed(stack: Stack, ledgers: dict[str, AnyService]) -> None:
    pair = await start_paid(stack, "wallet.refund")
    customer, _, view = await paid_checkout(stack, ledgers)
    assert view.status == CheckoutStatus.HELD, view
    await ledgers["flight"].release(f"{view.checkout_id}:flight")  # its confirm will fail after the capture
    failed = await saga.update(stack.client, view.checkout_id, CONFIRM)
    await assert_one_died(stack, pair)
    assert failed.status == CheckoutStatus.FAILED, failed
    assert await account(ledgers, customer) == (0, 0, BALANCE)  # captured, then refunded once
    await assert_ledger_clean(ledgers)
