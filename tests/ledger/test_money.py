"""Prices on the ledgers and the wallet's operations, on real PostgreSQL: a hold line keeps the price it was placed
at; authorize / capture / void / refund are idempotent by key; concurrent authorizations never pass the balance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.errors import Declined, HoldNotActive, InvalidRequest
from services.flight.schemas import FlightInventory, FlightRequest
from services.flight.service import FlightService
from services.hotel.schemas import HotelInventory, HotelRequest
from services.hotel.service import HotelService
from services.orders.schemas import ItemInventory
from services.registry import AnyService
from services.types import HoldStatus, Shortage
from services.wallet.schemas import WalletBody, WalletQuery, WalletRequest
from services.wallet.service import WalletService
from tests.ledger.helpers import assert_ledger_clean, later, unique


@pytest.fixture
def wallet(services: dict[str, AnyService]) -> WalletService:
    service = services["wallet"]
    assert isinstance(service, WalletService)
    return service


def pay(customer: str, amount: int, currency: str = "EUR") -> WalletRequest:
    return WalletRequest(customer_id=customer, amount=amount, currency=currency)


async def test_a_hold_line_keeps_its_price_when_the_operator_changes_it(flight: FlightService, services) -> None:
    flight_id = unique("FL")
    departs = datetime.now(UTC) + timedelta(days=5)

    def body(fare: int) -> FlightInventory:
        return FlightInventory(origin="AAA", destination="BBB", departs_at=departs, seats={"economy": 9},
                               currency="EUR", fares={"economy": fare})

    shown = await flight.upsert(flight_id, body(10_000))
    assert shown.seat_classes["economy"].price is not None and shown.seat_classes["economy"].price.amount == 10_000
    key = unique("wf") + ":flight"
    held = await flight.hold(key, FlightRequest(flight_id=flight_id, seat_class="economy", seats=2), later())
    line = held.lines[0]
    assert (line.unit_price, line.amount, line.currency) == (10_000, 20_000, "EUR")
    await flight.upsert(flight_id, body(15_000))  # a price change while the checkout is HELD
    again = await flight.hold(key, FlightRequest(flight_id=flight_id, seat_class="economy", seats=2), later())
    confirmed = await flight.confirm(key)
    assert again.lines[0].unit_price == confirmed.lines[0].unit_price == 10_000
    assert (await flight.availability(flight_id)).seat_classes["economy"].price.amount == 15_000  # type: ignore[union-attr]
    await assert_ledger_clean(services)


async def test_rates_per_night_and_unpriced_rows(hotel: HotelService, orders, services) -> None:
    hotel_id, first = unique("H"), datetime.now(UTC).date() + timedelta(days=30)
    await hotel.upsert(hotel_id, HotelInventory(city="Rome", rooms={"std": 3, "big": 1}, nights_from=first,
                                                nights_to=first + timedelta(days=3), currency="EUR",
                                                rates={"std": 9_000}))
    key = unique("wf") + ":hotel"
    held = await hotel.hold(key, HotelRequest(hotel_id=hotel_id, room_type="std", check_in=first,
                                               check_out=first + timedelta(days=2), rooms=2), later())
    assert [(ln.unit_price, ln.amount) for ln in held.lines] == [(9_000, 18_000), (9_000, 18_000)]
    big = await hotel.prices([f"{hotel_id}/big/{first.isoformat()}"])
    assert big == {f"{hotel_id}/big/{first.isoformat()}": None}
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=3))
    assert (await orders.availability(sku)).price is None
    await hotel.release(key)
    await assert_ledger_clean(services)


def test_bad_prices_are_refused_by_the_models() -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        ItemInventory(stock=1, price=100, currency="ZZZ")
    with pytest.raises(ValidationError):
        ItemInventory.model_validate({"stock": 1, "price": -1, "currency": "EUR"})
    with pytest.raises(ValidationError, match="go together"):
        ItemInventory(stock=1, price=100)
    with pytest.raises(ValidationError, match="ISO 4217"):
        WalletBody(currency="eur", balance=1)


async def test_authorize_capture_refund_by_key(wallet: WalletService, services) -> None:
    customer = unique("cust")
    view = await wallet.upsert(customer, WalletBody(currency="EUR", balance=10_000))
    assert (view.balance, view.available) == (10_000, 10_000)
    key = unique("wf") + ":wallet"
    held = await wallet.hold(key, pay(customer, 6_000), later())
    assert held.status is HoldStatus.ACTIVE
    assert (await wallet.hold(key, pay(customer, 6_000), later())).status is HoldStatus.ACTIVE  # a duplicate
    seen = await wallet.availability(customer, WalletQuery())
    assert (seen.authorized, seen.available) == (6_000, 4_000)
    await wallet.confirm(key)
    await wallet.confirm(key)
    seen = await wallet.availability(customer, WalletQuery(currency="EUR"))
    assert (seen.authorized, seen.captured, seen.available) == (0, 6_000, 4_000)

    part = await wallet.refund(key, key + ":refund:hotel", 2_500)  # a partial refund
    assert (part.amount, part.refunded, part.captured) == (2_500, 2_500, 3_500)
    assert await wallet.refund(key, key + ":refund:hotel", 2_500) == part  # the same key: the same refund
    with pytest.raises(InvalidRequest, match="more than is left"):
        await wallet.refund(key, key + ":refund:too-much", 4_000)
    rest = await wallet.refund(key, key + ":refund:all")  # None: all that is left
    assert (rest.amount, rest.captured) == (3_500, 0)
    seen = await wallet.availability(customer, WalletQuery())
    assert (seen.balance, seen.captured, seen.available) == (10_000, 0, 10_000)
    await assert_ledger_clean(services)


async def test_declines_and_void(wallet: WalletService, services) -> None:
    customer = unique("cust")
    await wallet.upsert(customer, WalletBody(currency="EUR", balance=1_000))
    short = unique("wf") + ":wallet"
    with pytest.raises(Declined) as first:
        await wallet.hold(short, pay(customer, 1_001), later())
    assert (first.value.shortage.resource, first.value.shortage.available) == ("payment", 1_000)
    with pytest.raises(Declined):  # recorded: a late duplicate declines the same way
        await wallet.hold(short, pay(customer, 10), later())
    with pytest.raises(Declined, match="no wallet in USD"):
        await wallet.hold(unique("wf") + ":wallet", pay(customer, 10, "USD"), later())
    key = unique("wf") + ":wallet"
    await wallet.hold(key, pay(customer, 700), later())
    released = await wallet.release(key)  # cancel or expiry: void
    assert released.status is HoldStatus.RELEASED
    with pytest.raises(HoldNotActive):
        await wallet.refund(key, key + ":refund")
    with pytest.raises(InvalidRequest, match="below held"):  # a balance below what is authorized + captured
        other = unique("wf") + ":wallet"
        await wallet.hold(other, pay(customer, 800), later())
        await wallet.upsert(customer, WalletBody(currency="EUR", balance=500))
    assert (await wallet.availability(customer, WalletQuery())).available == 200
    await assert_ledger_clean(services)


async def test_a_declined_authorization_refuses_its_key_again_for_the_same_reason(
    wallet: WalletService, services
) -> None:
    """What the saga does with an authorization it refuses after placing it (the held lines no longer match the
    quote): the amount is given back as by a release, and the key, asked to hold again (a run of the saga's task
    whose results were lost), is refused with the same refusal, not answered "already released"."""
    customer = unique("cust")
    await wallet.upsert(customer, WalletBody(currency="EUR", balance=20_000))
    repriced = Declined(Shortage(resource="payment", requested=12_000, available=11_000,
                                 reason="the prices changed while the checkout was placed"))
    key = unique("wf") + ":wallet"
    await wallet.hold(key, pay(customer, 11_000), later())
    assert (await wallet.availability(customer, WalletQuery())).authorized == 11_000
    declined = await wallet.decline(key, repriced)
    assert declined.status is HoldStatus.REJECTED and [line.quantity for line in declined.lines] == [11_000]
    seen = await wallet.availability(customer, WalletQuery())
    assert (seen.authorized, seen.available) == (0, 20_000)
    for _ in range(2):
        with pytest.raises(Declined) as again:
            await wallet.hold(key, pay(customer, 11_000), later())
        assert again.value.shortage == repriced.shortage
    # Idempotent: declined again, released, the answer is the recorded one and nothing moves twice.
    assert (await wallet.decline(key, repriced)).status is HoldStatus.REJECTED
    assert (await wallet.release(key)).status is HoldStatus.REJECTED
    assert (await wallet.availability(customer, WalletQuery())).available == 20_000
    # A key declined before its hold arrived (the hold's result lost, the decline first) refuses the late hold.
    early = unique("wf") + ":wallet"
    assert (await wallet.decline(early, repriced)).status is HoldStatus.REJECTED
    with pytest.raises(Declined) as late:
        await wallet.hold(early, pay(customer, 11_000), later())
    assert late.value.shortage == repriced.shortage
    # A released key stays released: a decline after it records nothing.
    released = unique("wf") + ":wallet"
    await wallet.hold(released, pay(customer, 500), later())
    await wallet.release(released)
    assert (await wallet.decline(released, repriced)).status is HoldStatus.RELEASED
    with pytest.raises(HoldNotActive):
        await wallet.hold(released, pay(customer, 500), later())
    # A capture is never undone by a decline.
    captured = unique("wf") + ":wallet"
    await wallet.hold(captured, pay(customer, 500), later())
    await wallet.confirm(captured)
    with pytest.raises(HoldNotActive):
        await wallet.decline(captured, repriced)
    assert (await wallet.availability(customer, WalletQuery())).available == 19_500
    await assert_ledger_clean(services)


async def test_concurrent_authorizations_never_pass_the_balance(wallet: WalletService, services) -> None:
    customer = unique("cust")
    await wallet.upsert(customer, WalletBody(currency="EUR", balance=10_000))
    keys = [unique("wf") + ":wallet" for _ in range(20)]
    outcomes = await asyncio.gather(*(wallet.hold(k, pay(customer, 1_500), later()) for k in keys),
                                    return_exceptions=True)
    authorized = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(authorized) == 6 and all(isinstance(o, Declined) for o in outcomes if isinstance(o, BaseException))
    seen = await wallet.availability(customer, WalletQuery())
    assert (seen.authorized, seen.available) == (9_000, 1_000)
    await assert_ledger_clean(services)
