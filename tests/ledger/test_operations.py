"""hold / confirm / release / extend / expire, one service at a time, counters checked after each step."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.errors import HoldNotActive, InvalidRequest, Unavailable, UnknownResource
from services.flight.service import FlightService
from services.hotel.service import HotelService
from services.orders.service import OrdersService
from services.types import FlightRequest, HoldStatus, HotelRequest, ItemLine, ItemsRequest
from tests.ledger.helpers import assert_ledger_clean, later, unique


def items(**quantities: int) -> ItemsRequest:
    return ItemsRequest(items=[ItemLine(sku=sku, quantity=q) for sku, q in quantities.items()])


async def test_hold_confirm_moves_held_to_sold(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert_item(sku, 5)
    key = unique("wf") + ":orders"
    held = await orders.hold(key, ItemsRequest(items=[ItemLine(sku=sku, quantity=2)]), later())
    assert held.status is HoldStatus.ACTIVE and held.lines[0].quantity == 2
    assert (await orders.availability(sku))["held"] == 2
    confirmed = await orders.confirm(key)
    again = await orders.confirm(key)
    assert confirmed.status is again.status is HoldStatus.CONFIRMED
    assert await orders.availability(sku) == {"sku": sku, "capacity": 5, "held": 0, "sold": 2, "available": 3}
    with pytest.raises(HoldNotActive):
        await orders.release(key)
    await assert_ledger_clean(services)


async def test_duplicate_hold_returns_recorded_outcome(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert_item(sku, 3)
    key = unique("wf") + ":orders"
    request = ItemsRequest(items=[ItemLine(sku=sku, quantity=2)])
    first = await orders.hold(key, request, later())
    second = await orders.hold(key, request, later(900))
    assert first == second
    assert (await orders.availability(sku))["held"] == 2

    refused_key = unique("wf") + ":orders"
    for _ in range(2):
        with pytest.raises(Unavailable) as refused:
            await orders.hold(refused_key, request, later())
        assert refused.value.shortages[0].available == 1
    # Stock frees up, yet the refused key keeps its one outcome.
    await orders.release(key)
    with pytest.raises(Unavailable):
        await orders.hold(refused_key, request, later())
    assert (await orders.availability(sku))["held"] == 0
    await assert_ledger_clean(services)


async def test_release_before_hold_leaves_a_tombstone(flight: FlightService, services) -> None:
    flight_id = unique("FL")
    await flight.upsert_flight(flight_id, "LHR", "JFK", later(86400), {"economy": 4})
    key = unique("wf") + ":flight"
    tombstone = await flight.release(key)
    assert tombstone.status is HoldStatus.RELEASED and tombstone.lines == []
    with pytest.raises(HoldNotActive) as refused:
        await flight.hold(key, FlightRequest(flight_id=flight_id, seat_class="economy", seats=1), later())
    assert refused.value.status is HoldStatus.RELEASED
    assert (await flight.availability(flight_id))["seat_classes"]["economy"]["held"] == 0
    assert (await flight.release(key)).status is HoldStatus.RELEASED
    await assert_ledger_clean(services)


async def test_release_returns_counters_once(flight: FlightService, services) -> None:
    flight_id = unique("FL")
    await flight.upsert_flight(flight_id, "LHR", "JFK", later(86400), {"economy": 4})
    key = unique("wf") + ":flight"
    await flight.hold(key, FlightRequest(flight_id=flight_id, seat_class="economy", seats=3), later())
    assert (await flight.release(key)).status is HoldStatus.RELEASED
    assert (await flight.release(key)).status is HoldStatus.RELEASED
    economy = (await flight.availability(flight_id))["seat_classes"]["economy"]
    assert (economy["held"], economy["available"]) == (0, 4)
    with pytest.raises(HoldNotActive):
        await flight.confirm(key)
    with pytest.raises(HoldNotActive):
        await flight.extend(key, later())
    await assert_ledger_clean(services)


async def test_stay_with_one_full_night_holds_nothing(hotel: HotelService, services) -> None:
    hotel_id = unique("H")
    first = datetime.now(UTC).date() + timedelta(days=10)
    await hotel.upsert_hotel(hotel_id, "London", {"deluxe": 2}, first, first + timedelta(days=5))
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
    nights = (await hotel.availability(hotel_id, first, first + timedelta(days=3)))["room_types"]["deluxe"]["nights"]
    assert {night: n["held"] for night, n in nights.items()} == {
        first.isoformat(): 0, full_night.isoformat(): 2, (first + timedelta(days=2)).isoformat(): 0
    }
    await assert_ledger_clean(services)


async def test_unknown_resources_and_bad_input(flight: FlightService, hotel: HotelService, orders: OrdersService):
    with pytest.raises(UnknownResource):
        await flight.hold(unique("wf"), FlightRequest(flight_id=unique("NO"), seat_class="economy", seats=1), later())
    with pytest.raises(UnknownResource):
        await orders.availability(unique("NO"))
    with pytest.raises(UnknownResource):
        await hotel.availability(unique("NO"), date(2030, 1, 1), date(2030, 1, 2))
    with pytest.raises(InvalidRequest):
        await orders.hold(unique("wf"), FlightRequest(flight_id="F", seat_class="e", seats=1), later())
    with pytest.raises(InvalidRequest):
        await orders.upsert_item("bad sku!", 1)


async def test_capacity_below_held_plus_sold_is_refused(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert_item(sku, 5)
    key = unique("wf") + ":orders"
    await orders.hold(key, ItemsRequest(items=[ItemLine(sku=sku, quantity=3)]), later())
    await orders.confirm(key)
    await orders.hold(unique("wf"), ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), later())
    with pytest.raises(InvalidRequest):
        await orders.upsert_item(sku, 3)
    assert (await orders.upsert_item(sku, 4))["available"] == 0
    await assert_ledger_clean(services)


async def test_extend_and_sweeper(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert_item(sku, 10)
    now = datetime.now(UTC)
    overdue, extended = unique("wf") + ":orders", unique("wf") + ":orders"
    await orders.hold(overdue, items(**{sku: 2}), now - timedelta(seconds=300))
    await orders.hold(extended, items(**{sku: 3}), now - timedelta(seconds=300))
    assert (await orders.extend(extended, now + timedelta(seconds=600))).status is HoldStatus.ACTIVE
    assert await orders.expire_overdue(now, grace_seconds=120) >= 1
    assert await orders.expire_overdue(now, grace_seconds=120) == 0
    assert (await orders.availability(sku))["held"] == 3
    with pytest.raises(HoldNotActive) as late:
        await orders.confirm(overdue)
    assert late.value.status is HoldStatus.EXPIRED
    with pytest.raises(HoldNotActive):
        await orders.hold(overdue, items(**{sku: 2}), later())
    await assert_ledger_clean(services)
