"""hold / confirm / release / extend / expire, one service at a time, counters checked after each step."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from services.errors import HoldNotActive, InvalidRequest, Unavailable, UnknownResource
from services.flight.schemas import FlightInventory, FlightRequest
from services.flight.service import FlightService
from services.hotel.schemas import HotelInventory, HotelRequest, StayQuery
from services.hotel.service import HotelService
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.types import HoldStatus, Identifier
from tests.ledger.helpers import assert_ledger_clean, later, unique


def items(**quantities: int) -> ItemsRequest:
    return ItemsRequest(items=[ItemLine(sku=sku, quantity=q) for sku, q in quantities.items()])


async def test_hold_confirm_moves_held_to_sold(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=5))
    key = unique("wf") + ":orders"
    held = await orders.hold(key, ItemsRequest(items=[ItemLine(sku=sku, quantity=2)]), later())
    assert held.status is HoldStatus.ACTIVE and held.lines[0].quantity == 2
    assert (await orders.availability(sku)).held == 2
    confirmed = await orders.confirm(key)
    again = await orders.confirm(key)
    assert confirmed.status is again.status is HoldStatus.CONFIRMED
    assert (await orders.availability(sku)).model_dump() == (
        {"sku": sku, "capacity": 5, "held": 0, "sold": 2, "available": 3, "price": None}
    )
    with pytest.raises(HoldNotActive):
        await orders.release(key)
    await assert_ledger_clean(services)


async def test_duplicate_hold_returns_recorded_outcome(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=3))
    key = unique("wf") + ":orders"
    request = ItemsRequest(items=[ItemLine(sku=sku, quantity=2)])
    first = await orders.hold(key, request, later())
    second = await orders.hold(key, request, later(900))
    assert first == second
    assert (await orders.availability(sku)).held == 2

    refused_key = unique("wf") + ":orders"
    for _ in range(2):
        with pytest.raises(Unavailable) as refused:
            await orders.hold(refused_key, request, later())
        assert refused.value.shortages[0].available == 1
    # Stock frees up, yet the refused key keeps its one outcome.
    await orders.release(key)
    with pytest.raises(Unavailable):
        await orders.hold(refused_key, request, later())
    assert (await orders.availability(sku)).held == 0
    await assert_ledger_clean(services)


async def test_release_before_hold_leaves_a_tombstone(flight: FlightService, services) -> None:
    flight_id = unique("FL")
    await flight.upsert(
        flight_id, FlightInventory(origin="LHR", destination="JFK", departs_at=later(86400), seats={"economy": 4})
    )
    key = unique("wf") + ":flight"
    tombstone = await flight.release(key)
    assert tombstone.status is HoldStatus.RELEASED and tombstone.lines == []
    with pytest.raises(HoldNotActive) as refused:
        await flight.hold(key, FlightRequest(flight_id=flight_id, seat_class="economy", seats=1), later())
    assert refused.value.status is HoldStatus.RELEASED
    assert (await flight.availability(flight_id)).seat_classes["economy"].held == 0
    assert (await flight.release(key)).status is HoldStatus.RELEASED
    await assert_ledger_clean(services)


async def test_release_returns_counters_once(flight: FlightService, services) -> None:
    flight_id = unique("FL")
    await flight.upsert(
        flight_id, FlightInventory(origin="LHR", destination="JFK", departs_at=later(86400), seats={"economy": 4})
    )
    key = unique("wf") + ":flight"
    await flight.hold(key, FlightRequest(flight_id=flight_id, seat_class="economy", seats=3), later())
    assert (await flight.release(key)).status is HoldStatus.RELEASED
    assert (await flight.release(key)).status is HoldStatus.RELEASED
    economy = (await flight.availability(flight_id)).seat_classes["economy"]
    assert (economy.held, economy.available) == (0, 4)
    with pytest.raises(HoldNotActive):
        await flight.confirm(key)
    with pytest.raises(HoldNotActive):
        await flight.extend(key, later())
    await assert_ledger_clean(services)


async def test_stay_with_one_full_night_holds_nothing(hotel: HotelService, services) -> None:
    hotel_id = unique("H")
    first = datetime.now(UTC).date() + timedelta(days=10)
    await hotel.upsert(
        hotel_id,
        HotelInventory(city="London", rooms={"deluxe": 2}, nights_from=first, nights_to=first + timedelta(days=5)),
    )
    full_night = first + timedelta(days=1)
    await hotel.hold(
        unique("wf") + ":hotel",
        HotelRequest(hotel_id=hotel_id, room_type="deluxe", check_in=full_night,
                     check_out=full_night + timedelta(days=1), rooms=2),
        later(),
    )
    stay = HotelRequest(hotel_id=hotel_id, room_type="deluxe", check_in=first,
                        check_out=first + timedelta(days=3), rooms=1)
    with pytest.raises(Unavailable) as refused:
        await hotel.hold(unique("wf") + ":hotel", stay, later())
    assert [(s.resource, s.available) for s in refused.value.shortages] == [
        (f"{hotel_id}/deluxe/{full_night.isoformat()}", 0)
    ]
    stay_query = StayQuery(check_in=first, check_out=first + timedelta(days=3))
    nights = (await hotel.availability(hotel_id, stay_query)).room_types["deluxe"].nights
    assert {night: n.held for night, n in nights.items()} == {
        first: 0, full_night: 2, first + timedelta(days=2): 0
    }
    await assert_ledger_clean(services)


async def test_unknown_resources_and_bad_input(flight: FlightService, hotel: HotelService, orders: OrdersService):
    with pytest.raises(UnknownResource):
        await flight.hold(unique("wf"), FlightRequest(flight_id=unique("NO"), seat_class="economy", seats=1), later())
    with pytest.raises(UnknownResource):
        await orders.availability(unique("NO"))
    with pytest.raises(UnknownResource):
        await hotel.availability(unique("NO"), StayQuery(check_in=date(2030, 1, 1), check_out=date(2030, 1, 2)))
    # Bad values are refused by the models the API validates with, before any service sees them.
    with pytest.raises(ValidationError):
        TypeAdapter(Identifier).validate_python("bad sku!")
    with pytest.raises(ValidationError):
        ItemInventory(stock=-1)


async def test_capacity_below_held_plus_sold_is_refused(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=5))
    key = unique("wf") + ":orders"
    await orders.hold(key, ItemsRequest(items=[ItemLine(sku=sku, quantity=3)]), later())
    await orders.confirm(key)
    await orders.hold(unique("wf"), ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), later())
    with pytest.raises(InvalidRequest):
        await orders.upsert(sku, ItemInventory(stock=3))
    assert (await orders.upsert(sku, ItemInventory(stock=4))).available == 0
    await assert_ledger_clean(services)


async def test_extend_and_sweeper(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=10))
    now = datetime.now(UTC)
    overdue, extended = unique("wf") + ":orders", unique("wf") + ":orders"
    await orders.hold(overdue, items(**{sku: 2}), now - timedelta(seconds=300))
    await orders.hold(extended, items(**{sku: 3}), now - timedelta(seconds=300))
    assert (await orders.extend(extended, now + timedelta(seconds=600))).status is HoldStatus.ACTIVE
    assert await orders.expire_overdue(now, grace_seconds=120) >= 1
    assert await orders.expire_overdue(now, grace_seconds=120) == 0
    assert (await orders.availability(sku)).held == 3
    with pytest.raises(HoldNotActive) as late:
        await orders.confirm(overdue)
    assert late.value.status is HoldStatus.EXPIRED
    with pytest.raises(HoldNotActive):
        await orders.hold(overdue, items(**{sku: 2}), later())
    await assert_ledger_clean(services)
