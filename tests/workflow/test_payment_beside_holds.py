"""A paid checkout started with the API's quote (CheckoutInput.quote): the wallet authorizes the quote while the
inventory holds, in the same round, and the saga refuses the checkout when the held lines add up to anything else
(a price changed between the quote and the holds), releasing everything. Real workers, activities and PostgreSQL
on the time-skipping server; the staged path (no quote) is held beside it where the order is the point."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.models import activity_name
from services.errors import Declined
from services.types import HoldStatus, Money, Shortage
from services.wallet.schemas import WalletQuery, WalletRequest
from settings import Settings
from tests.ledger.helpers import assert_ledger_clean, later
from tests.workflow.helpers import PAID_TOTAL, Paid, seed_paid, start_checkout, unique
from workflows.models import CONFIRM, CheckoutStatus, CheckoutView

pytestmark = pytest.mark.usefixtures("saga_workers")

TOTAL = Money(amount=PAID_TOTAL, currency="EUR")


async def _moved(services: dict[str, Any], paid: Paid) -> dict[str, tuple[int, int]]:
    """(held, sold) of the seat and the item, (authorized, captured) of the wallet."""
    seats = (await services["flight"].availability(paid.flight_id)).seat_classes["economy"]
    item = await services["orders"].availability(paid.sku)
    account = await services["wallet"].availability(paid.customer, WalletQuery())
    return {"flight": (seats.held, seats.sold), "orders": (item.held, item.sold),
            "wallet": (account.authorized, account.captured)}


async def _scheduled_before_any_completed(handle: Any) -> set[str]:
    """The activities the saga scheduled before any activity's result reached it: one round of holds."""
    first: set[str] = set()
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            break
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            first.add(event.activity_task_scheduled_event_attributes.activity_type.name)
    return first


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "staged"])
async def test_a_quoted_payment_is_authorized_beside_the_holds_and_captured(
    saga_client: Client, saga_settings: Settings, saga_services, quoted: bool
) -> None:
    paid = await seed_paid(saga_services, balance=50_000)
    handle, view = await start_checkout(
        saga_client, saga_settings, paid.request, remote=True, quote=TOTAL if quoted else None
    )
    assert view.status == CheckoutStatus.HELD, (view.error, view.unavailable)
    wallet = next(hold for hold in view.holds if hold.service == "wallet")
    assert [(line.quantity, line.resource) for line in wallet.lines] == [(12_000, f"{paid.customer}/EUR")]
    assert await _moved(saga_services, paid) == {
        "flight": (1, 0), "orders": (1, 0), "wallet": (12_000, 0)}
    # Remote placement: each hold is an activity task, so the history shows which round scheduled the wallet's.
    holds = {activity_name(service, "hold") for service in ("flight", "orders", "wallet")}
    inventory = holds - {activity_name("wallet", "hold")}
    assert await _scheduled_before_any_completed(handle) == (holds if quoted else inventory)

    confirmed = await handle.execute_update(CONFIRM, result_type=CheckoutView)
    assert confirmed.status == CheckoutStatus.CONFIRMED, confirmed.error
    assert await _moved(saga_services, paid) == {
        "flight": (0, 1), "orders": (0, 1), "wallet": (0, 12_000)}
    await handle.result()
    await assert_ledger_clean(saga_services)


@pytest.mark.parametrize("quote", [11_000, 13_000], ids=["under", "over"])
async def test_a_price_changed_since_the_quote_refuses_the_checkout_and_gives_everything_back(
    saga_client: Client, saga_settings: Settings, saga_services, quote: int
) -> None:
    paid = await seed_paid(saga_services, balance=50_000)
    handle, view = await start_checkout(
        saga_client, saga_settings, paid.request, quote=Money(amount=quote, currency="EUR")
    )
    assert view.status == CheckoutStatus.REJECTED, (view.status, view.error)
    assert [(s.resource, s.requested, s.available) for s in view.unavailable] == [("payment", 12_000, quote)]
    assert "prices changed" in (view.unavailable[0].reason or "")
    # The inventory released; the authorization declined: given back, its key recorded REJECTED with the refusal.
    assert {hold.service: hold.status for hold in view.holds} == {
        "flight": HoldStatus.RELEASED, "orders": HoldStatus.RELEASED, "wallet": HoldStatus.REJECTED}
    assert await _moved(saga_services, paid) == {
        "flight": (0, 0), "orders": (0, 0), "wallet": (0, 0)}
    assert (await saga_services["wallet"].availability(paid.customer, WalletQuery())).available == 50_000
    with pytest.raises(Declined) as again:  # the key asked again, as a run of the task again would
        await saga_services["wallet"].hold(f"{handle.id}:wallet", _authorization(paid, quote), later())
    assert again.value.shortage == view.unavailable[0]
    result = await handle.result()
    assert result.status == CheckoutStatus.REJECTED
    await assert_ledger_clean(saga_services)


@pytest.mark.parametrize("wallet_key", ["declined", "released"])
async def test_a_repriced_refusal_whose_task_runs_again_is_rejected_for_the_recorded_reason(
    saga_client: Client, saga_settings: Settings, saga_services, wallet_key: str
) -> None:
    """The ledgers as a run of the first workflow task leaves them when its worker dies after refusing a repriced
    checkout (its results lost with it): the inventory's keys released, the wallet's declined with the refusal.
    The task runs again: every hold answers as recorded, and the checkout is REJECTED naming `payment` for the
    same reason. A wallet key merely released (what the saga did before it declined) says nothing of why: FAILED,
    though nothing is held either way."""
    paid = await seed_paid(saga_services, balance=50_000)
    quote = 11_000
    checkout_id = unique("co")
    repriced = Declined(Shortage(resource="payment", requested=PAID_TOTAL, available=quote,
                                 reason="the prices changed while the checkout was placed (held in the lost run)"))
    assert paid.request.flight is not None and paid.request.items is not None
    await saga_services["flight"].hold(f"{checkout_id}:flight", paid.request.flight, later())
    await saga_services["orders"].hold(f"{checkout_id}:orders", paid.request.items, later())
    await saga_services["wallet"].hold(f"{checkout_id}:wallet", _authorization(paid, quote), later())
    for service in ("flight", "orders"):
        await saga_services[service].release(f"{checkout_id}:{service}")
    if wallet_key == "declined":
        await saga_services["wallet"].decline(f"{checkout_id}:wallet", repriced)
    else:
        await saga_services["wallet"].release(f"{checkout_id}:wallet")

    handle, view = await start_checkout(
        saga_client, saga_settings, paid.request, quote=Money(amount=quote, currency="EUR"), checkout_id=checkout_id
    )
    if wallet_key == "declined":
        assert view.status == CheckoutStatus.REJECTED, (view.status, view.error)
        assert view.unavailable == [repriced.shortage]
    else:
        assert view.status == CheckoutStatus.FAILED, (view.status, view.unavailable)
    assert await _moved(saga_services, paid) == {
        "flight": (0, 0), "orders": (0, 0), "wallet": (0, 0)}
    await handle.result()
    await assert_ledger_clean(saga_services)


def _authorization(paid: Paid, amount: int) -> WalletRequest:
    """The wallet's request as the saga derives it from a quote of `amount`."""
    return WalletRequest(customer_id=paid.customer, amount=amount, currency="EUR")


async def test_a_quoted_payment_declined_releases_the_holds_placed_beside_it(
    saga_client: Client, saga_settings: Settings, saga_services
) -> None:
    paid = await seed_paid(saga_services, balance=5_000)
    handle, view = await start_checkout(saga_client, saga_settings, paid.request, quote=TOTAL)
    assert view.status == CheckoutStatus.REJECTED, (view.status, view.error)
    assert view.unavailable == [Shortage(
        resource="payment", requested=12_000, available=5_000,
        reason="the wallet holds 5000 EUR, the total is 12000 EUR",
    )]
    assert await _moved(saga_services, paid) == {
        "flight": (0, 0), "orders": (0, 0), "wallet": (0, 0)}
    await handle.result()
    await assert_ledger_clean(saga_services)
