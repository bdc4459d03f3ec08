"""The hold in one statement (Ledger._hold_named, and Ledger._hold_at_once for a participant that names no lines),
on real PostgreSQL: a new key with room on every line is placed without the transaction, its rows named by
resource and never resolved first; everything else (a known key, a short, missing, unknown or departed row, a date
not on sale, a key claimed while the statement ran) leaves nothing of the statement behind and is the transaction's
to answer, whose resolver says why."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.errors import Busy, Declined, HoldNotActive, Unavailable, UnknownResource
from services.flight.schemas import FlightInventory, FlightRequest
from services.flight.service import FlightService
from services.hotel.schemas import HotelInventory, HotelRequest
from services.hotel.service import HotelService
from services.ledger.ledger import Ledger, LineRef
from services.ledger.transaction import LOCK_TIMEOUT, Driver
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.registry import AnyService
from services.types import HoldResult, HoldStatus
from services.wallet.schemas import WalletBody, WalletRequest
from services.wallet.service import WalletService
from tests.ledger.helpers import assert_ledger_clean, later, unique
from tests.waiting import eventually


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The hold keys the transaction answered (it still answers them)."""
    answered: list[str] = []
    in_transaction = Ledger._hold_in_transaction

    async def counted(self: Ledger, hold_key: str, *args: object) -> HoldResult:
        answered.append(hold_key)
        return await in_transaction(self, hold_key, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Ledger, "_hold_in_transaction", counted)
    yield answered


def items(*lines: tuple[str, int]) -> ItemsRequest:
    return ItemsRequest(items=[ItemLine(sku=sku, quantity=quantity) for sku, quantity in lines])


async def test_new_keys_with_room_are_placed_without_the_transaction(
    orders: OrdersService, services: dict[str, AnyService], transactions: list[str]
) -> None:
    one, two = unique("SKU-1"), unique("SKU-2")
    await orders.upsert(one, ItemInventory(stock=5, price=1_250, currency="EUR"))
    await orders.upsert(two, ItemInventory(stock=5))
    single, basket = unique("wf") + ":orders", unique("wf") + ":orders"
    held = await orders.hold(single, items((one, 2)), later())
    assert held.status is HoldStatus.ACTIVE
    assert [(line.resource, line.quantity, line.amount) for line in held.lines] == [(one, 2, 2_500)]
    held = await orders.hold(basket, items((two, 1), (one, 1)), later())
    assert sorted((line.resource, line.quantity) for line in held.lines) == sorted([(one, 1), (two, 1)])
    assert transactions == []
    assert (await orders.availability(one)).held == 3
    assert (await orders.availability(two)).held == 1
    # The duplicate of a placed key is the transaction's: it answers the recorded hold and moves nothing.
    assert (await orders.hold(single, items((one, 2)), later())).status is HoldStatus.ACTIVE
    assert transactions == [single]
    assert (await orders.availability(one)).held == 3
    await assert_ledger_clean(services)


async def test_refusals_are_the_transactions_and_recorded(
    orders: OrdersService, flight: FlightService, services: dict[str, AnyService], transactions: list[str]
) -> None:
    sku, scarce = unique("SKU"), unique("SKU-scarce")
    await orders.upsert(sku, ItemInventory(stock=1))
    await orders.upsert(scarce, ItemInventory(stock=1))
    short, basket, unknown = (unique("wf") + ":orders" for _ in range(3))
    with pytest.raises(Unavailable):
        await orders.hold(short, items((sku, 2)), later())
    with pytest.raises(Unavailable):  # a basket with one short line takes neither
        await orders.hold(basket, items((sku, 1), (scarce, 2)), later())
    with pytest.raises(UnknownResource):
        await orders.hold(unknown, items((unique("SKU-none"), 1)), later())
    flight_id = unique("FL")
    await flight.upsert(flight_id, FlightInventory(
        origin="CDG", destination="BCN", departs_at=datetime.now(UTC) - timedelta(hours=1), seats={"economy": 3}
    ))
    departed = unique("wf") + ":flight"
    with pytest.raises(Unavailable) as gone:
        await flight.hold(departed, FlightRequest(flight_id=flight_id, seat_class="economy", seats=1), later())
    assert [shortage.reason for shortage in gone.value.shortages] == ["departed"]
    assert transactions == [short, basket, unknown, departed]
    # Each refusal is recorded under its key: a duplicate is refused again, even with room now.
    await orders.upsert(sku, ItemInventory(stock=10))
    with pytest.raises(Unavailable):
        await orders.hold(short, items((sku, 2)), later())
    assert (await orders.availability(sku)).held == 0
    assert (await orders.availability(scarce)).held == 0
    await assert_ledger_clean(services)


async def test_a_wallet_task_run_again_gets_its_recorded_authorization(
    services: dict[str, AnyService], transactions: list[str]
) -> None:
    """A saga's task run again asks with the request it has not derived yet (no amount): only a known key may, and
    it answers as recorded; for a new key the same request is refused and records nothing."""
    wallet = services["wallet"]
    assert isinstance(wallet, WalletService)
    customer = unique("cust")
    await wallet.upsert(customer, WalletBody(currency="EUR", balance=10_000))
    key = unique("wf") + ":wallet"
    paid = WalletRequest(customer_id=customer, amount=4_000, currency="EUR")
    assert (await wallet.hold(key, paid, later())).status is HoldStatus.ACTIVE
    again = await wallet.hold(key, WalletRequest(), later())
    assert again.status is HoldStatus.ACTIVE
    assert [line.quantity for line in again.lines] == [4_000]
    with pytest.raises(Declined):
        await wallet.hold(unique("wf") + ":wallet", paid.model_copy(update={"amount": 10_001}), later())
    assert transactions[0] == key
    await assert_ledger_clean(services)


async def test_a_key_claimed_while_the_statement_waits_leaves_nothing_of_it(
    orders: OrdersService, engine: AsyncEngine, services: dict[str, AnyService], transactions: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The statement takes the row, then waits on the key another call is claiming (here: a release's tombstone,
    not yet committed). Once that commits, the statement fails whole (the row's take undone with it) and the
    transaction answers: released before it was held, so never held."""
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=5))
    key = unique("wf") + ":orders"
    # The statement gives up waiting after the ledger's lock_timeout, and this test must see it wait: on a loaded
    # machine the watcher can miss that window, so here the statement waits (lock_timeout 0: no bound) until the
    # release commits.
    sql = orders.ledger._sql
    bounded = f"set_config('lock_timeout', '{LOCK_TIMEOUT}', true)"
    assert bounded in sql.hold_named_line
    monkeypatch.setattr(orders.ledger, "_sql", replace(
        sql, hold_named_line=sql.hold_named_line.replace(bounded, "set_config('lock_timeout', '0', true)")
    ))
    async with engine.connect() as releasing:
        await releasing.execute(
            text("""INSERT INTO orders.holds (hold_key, status, reason) VALUES (:key, 'RELEASED', '{}')"""),
            {"key": key},
        )
        hold = asyncio.create_task(orders.hold(key, items((sku, 1)), later()))
        async with engine.connect() as watching:

            async def statement_waits() -> bool:
                waiting = await watching.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :marker"
                ), {"marker": "%set_config('lock_timeout'%orders.holds%"})
                # A transaction reads pg_stat_activity once and keeps that snapshot: end it to look again.
                await watching.rollback()
                assert not hold.done(), "the hold ended before its statement waited on the key"
                return waiting == 1

            await eventually(statement_waits, every=0.005)
        await releasing.commit()
    with pytest.raises(HoldNotActive) as refused:
        await hold
    assert refused.value.status is HoldStatus.RELEASED
    assert transactions == [key]
    assert (await orders.availability(sku)).held == 0
    await assert_ledger_clean(services)


async def test_a_basket_on_a_locked_row_is_busy_and_takes_nothing(
    orders: OrdersService, engine: AsyncEngine, services: dict[str, AnyService], transactions: list[str]
) -> None:
    """The statement's own lock_timeout bounds a basket's wait as the transaction's bounds it: Busy, nothing taken,
    and the same key holds once the row is free."""
    free, locked = unique("SKU-free"), unique("SKU-locked")
    await orders.upsert(free, ItemInventory(stock=5))
    await orders.upsert(locked, ItemInventory(stock=5))
    key = unique("wf") + ":orders"
    async with engine.connect() as blocker:
        await blocker.execute(text("SELECT 1 FROM orders.inventory WHERE sku = :sku FOR UPDATE"), {"sku": locked})
        with pytest.raises(Busy):
            await orders.hold(key, items((free, 1), (locked, 1)), later())
        await blocker.rollback()
    assert (await orders.availability(free)).held == 0
    assert transactions == []  # the statement gave up on its own lock wait: the transaction was never asked
    assert (await orders.hold(key, items((free, 1), (locked, 1)), later())).status is HoldStatus.ACTIVE
    assert [(await orders.availability(sku)).held for sku in (free, locked)] == [1, 1]
    await assert_ledger_clean(services)


class Resolver:
    """An orders resolver that counts its calls (it reads the sku's row, as OrdersService's does)."""

    def __init__(self, sku: str, quantity: int) -> None:
        self.sku, self.quantity, self.calls = sku, quantity, 0

    async def __call__(self, db: Driver) -> list[LineRef]:
        self.calls += 1
        found = await db.fetchval("SELECT id FROM orders.inventory WHERE sku = $1", self.sku)
        if found is None:
            raise UnknownResource(self.sku)
        return [LineRef(found, self.sku, self.quantity)]


async def test_named_lines_are_never_resolved_unless_the_transaction_answers(
    orders: OrdersService, services: dict[str, AnyService], transactions: list[str]
) -> None:
    """A hold by name reads nothing before its statement; one that names no lines resolves them first (today's
    participants all name theirs, a team's own may not); the transaction always resolves."""
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=3))
    named, resolved, short = (unique("wf") + ":orders" for _ in range(3))
    by_name = Resolver(sku, 2)
    held = await orders.ledger.hold(named, by_name, later(), {sku: 2})
    assert [(line.resource, line.quantity) for line in held.lines] == [(sku, 2)]
    assert by_name.calls == 0
    first = Resolver(sku, 1)
    assert (await orders.ledger.hold(resolved, first, later())).status is HoldStatus.ACTIVE
    assert first.calls == 1
    assert transactions == []
    refused = Resolver(sku, 1)
    with pytest.raises(Unavailable):
        await orders.ledger.hold(short, refused, later(), {sku: 1})
    assert refused.calls == 1 and transactions == [short]
    assert (await orders.availability(sku)).held == 3
    await assert_ledger_clean(services)


async def test_dated_nights_by_name_and_a_night_not_on_sale(
    hotel: HotelService, services: dict[str, AnyService], transactions: list[str]
) -> None:
    """Nights are named `{hotel}/{type}/{date}`: a stay whose every night is on sale is placed in one statement, one
    night or several; a night not on sale takes nothing of the stay, and the transaction refuses it as Unavailable
    naming that night."""
    hotel_id, first = unique("H"), datetime.now(UTC).date() + timedelta(days=10)
    await hotel.upsert(hotel_id, HotelInventory(
        city="Paris", rooms={"double": 3}, nights_from=first, nights_to=first + timedelta(days=1)
    ))
    one, two, gap, unknown = (unique("wf") + ":hotel" for _ in range(4))

    def stay(nights: int, room_type: str = "double") -> HotelRequest:
        return HotelRequest(hotel_id=hotel_id, room_type=room_type, check_in=first,
                            check_out=first + timedelta(days=nights), rooms=1)

    assert len((await hotel.hold(one, stay(1), later())).lines) == 1
    held = await hotel.hold(two, stay(2), later())
    assert [line.resource for line in held.lines] == [
        f"{hotel_id}/double/{(first + timedelta(days=n)).isoformat()}" for n in range(2)
    ]
    assert transactions == []
    with pytest.raises(Unavailable) as short:
        await hotel.hold(gap, stay(3), later())
    assert [(s.resource, s.available) for s in short.value.shortages] == [
        (f"{hotel_id}/double/{(first + timedelta(days=2)).isoformat()}", 0)
    ]
    with pytest.raises(UnknownResource):
        await hotel.hold(unknown, stay(1, "suite"), later())
    assert transactions == [gap, unknown]
    nights = (await hotel.dated_availability(hotel_id, first, first + timedelta(days=2)))
    assert [counters.held for counters in nights.room_types["double"].nights.values()] == [2, 1]
    await assert_ledger_clean(services)
