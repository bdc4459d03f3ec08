"""Availability, alternatives, demo seed and the migration matching the models."""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase

from services.bookings.records import Base as BookingsBase
from services.customer_limits import Base as CustomerLimitsBase
from services.events.outbox import Base as EventsBase
from services.flight.schemas import FlightInventory, FlightRequest
from services.flight.service import FlightService
from services.hotel.schemas import HotelInventory, HotelRequest, StayQuery
from services.hotel.service import HotelService
from services.migrate import SCHEMAS
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.registry import PARTICIPANTS
from services.seed import seed_demo
from services.started_checkouts import Base as StartedCheckoutsBase
from tests.ledger.helpers import assert_ledger_clean, later, unique


async def test_flight_alternatives_nearest_departure_on_route(flight: FlightService) -> None:
    origin, destination = unique("O"), unique("D")
    base = datetime.now(UTC) + timedelta(days=3)
    full, near, far, elsewhere = (unique("FL") for _ in range(4))

    def route(start: str, end: str, departs_at: datetime, seats: dict[str, int]) -> FlightInventory:
        return FlightInventory(origin=start, destination=end, departs_at=departs_at, seats=seats)

    await flight.upsert(full, route(origin, destination, base, {"economy": 1, "business": 0}))
    await flight.upsert(near, route(origin, destination, base + timedelta(hours=2), {"economy": 5}))
    await flight.upsert(far, route(origin, destination, base + timedelta(days=2), {"economy": 5}))
    await flight.upsert(elsewhere, route(destination, origin, base, {"economy": 5}))
    offers = await flight.alternatives(FlightRequest(flight_id=full, seat_class="economy", seats=2))
    assert [o.request["flight_id"] for o in offers] == [near, far]
    assert offers[0].available == 5


async def test_hotel_alternatives_room_types_city_then_shifted(hotel: HotelService) -> None:
    city = unique("City")
    first = datetime.now(UTC).date() + timedelta(days=20)
    main, other = unique("H"), unique("H")

    def rooms(capacity: dict[str, int], nights_from: date, nights_to: date) -> HotelInventory:
        return HotelInventory(city=city, rooms=capacity, nights_from=nights_from, nights_to=nights_to)

    await hotel.upsert(main, rooms({"standard": 0, "suite": 3}, first - timedelta(days=5), first + timedelta(days=10)))
    await hotel.upsert(main, rooms({"standard": 2}, first + timedelta(days=3), first + timedelta(days=10)))
    await hotel.upsert(other, rooms({"double": 1}, first, first + timedelta(days=5)))
    wanted = HotelRequest(hotel_id=main, room_type="standard", check_in=first, check_out=first + timedelta(days=2),
                          rooms=1)
    offers = await hotel.alternatives(wanted)
    assert [(o.request["hotel_id"], o.request["room_type"], o.request["check_in"]) for o in offers] == [
        (main, "suite", first.isoformat()),
        (other, "double", first.isoformat()),
        (main, "standard", (first + timedelta(days=3)).isoformat()),
    ]
    stay = await hotel.availability(main, StayQuery(check_in=first, check_out=first + timedelta(days=2)))
    assert stay.room_types["standard"].available == 0
    assert stay.room_types["suite"].available == 3


async def test_orders_alternatives_say_what_is_left(orders: OrdersService, services) -> None:
    plenty, scarce = unique("SKU"), unique("SKU")
    await orders.upsert(plenty, ItemInventory(stock=10))
    await orders.upsert(scarce, ItemInventory(stock=1))
    offers = await orders.alternatives(
        ItemsRequest(items=[ItemLine(sku=plenty, quantity=2), ItemLine(sku=scarce, quantity=3)])
    )
    assert [(o.description, o.available) for o in offers] == [(f"{scarce}: 1 available", 1)]
    await assert_ledger_clean(services)


async def test_seed_demo_is_idempotent(services) -> None:
    today = datetime.now(UTC).date()
    await seed_demo(services, today)
    await seed_demo(services, today)
    flight, hotel, orders = services["flight"], services["hotel"], services["orders"]
    assert (await flight.availability("BA101")).seat_classes["economy"].capacity == 150
    london = await hotel.availability("H-LON-1", StayQuery(check_in=today, check_out=today + timedelta(days=2)))
    assert set(london.room_types) == {"standard", "deluxe", "suite"}
    assert (await orders.availability("SKU-MUG")).available <= 50
    assert await flight.hold(unique("wf"), FlightRequest(flight_id="BA101", seat_class="business", seats=1), later())
    await assert_ledger_clean(services)


def _differences(connection: Connection) -> list[object]:
    models = MetaData()
    # Every registered participant's ledger tables (services/<name>/models.py), and the API's own ones.
    bases: list[type[DeclarativeBase]] = [
        importlib.import_module(f"services.{p.name}.models").Base for p in PARTICIPANTS
    ]
    bases += [StartedCheckoutsBase, CustomerLimitsBase, BookingsBase, EventsBase]
    for base in bases:
        for table in base.metadata.tables.values():
            table.to_metadata(models)
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, kind, _: kind != "schema" or name in SCHEMAS,
        },
    )
    return list(compare_metadata(context, models))


async def test_migration_matches_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_dated_alternatives_count_held_and_sold_units(hotel: HotelService, services) -> None:
    """An alternative's `available` is capacity - held - sold on its scarcest night (a mutant adding sold back
    survived the tests above: none had units held or sold where an alternative was offered)."""
    city = unique("City")
    first = datetime.now(UTC).date() + timedelta(days=30)
    site = unique("H")
    await hotel.upsert(site, HotelInventory(city=city, rooms={"standard": 0, "suite": 6}, nights_from=first,
                                            nights_to=first + timedelta(days=5)))

    def suite(rooms: int) -> HotelRequest:
        return HotelRequest(hotel_id=site, room_type="suite", check_in=first, check_out=first + timedelta(days=2),
                            rooms=rooms)

    held = f"{unique('co')}:hotel"  # a saga's key shape: the saga audit reads the checkout id from it
    await hotel.hold(held, suite(1), later())
    sold = f"{unique('co')}:hotel"
    await hotel.hold(sold, suite(2), later())
    await hotel.confirm(sold)
    wanted = HotelRequest(hotel_id=site, room_type="standard", check_in=first, check_out=first + timedelta(days=2),
                          rooms=1)
    offers = await hotel.alternatives(wanted)
    assert [(o.request["room_type"], o.available) for o in offers][:1] == [("suite", 3)]
    assert offers[0].description.startswith("another room type: ") and "3 available" in offers[0].description
    await hotel.release(held)  # nothing left ACTIVE for the suites that audit every hold
    await assert_ledger_clean(services)


async def test_shifted_alternatives_nearest_first_earlier_on_a_tie(hotel: HotelService) -> None:
    """Free nights two days before and one day after a full one: one day after comes first (nearer), and a stay
    shifted into the earlier days is offered too."""
    city, site = unique("City"), unique("H")
    night = datetime.now(UTC).date() + timedelta(days=40)
    free = {night - timedelta(days=2), night + timedelta(days=1)}
    for shift in range(-3, 4):  # one night at a time, in order: a later upsert sets its own night last
        day = night + timedelta(days=shift)
        await hotel.upsert(site, HotelInventory(city=city, rooms={"standard": 1 if day in free else 0},
                                                nights_from=day, nights_to=day + timedelta(days=1)))
    wanted = HotelRequest(hotel_id=site, room_type="standard", check_in=night, check_out=night + timedelta(days=1),
                          rooms=1)
    offers = await hotel.alternatives(wanted)
    assert [o.request["check_in"] for o in offers] == [
        (night + timedelta(days=1)).isoformat(), (night - timedelta(days=2)).isoformat(),
    ]
    assert all(o.description.startswith("shifted stay: ") for o in offers)


async def test_a_stay_shifted_to_today_is_offered_but_never_into_the_past(hotel: HotelService) -> None:
    city, site = unique("City"), unique("H")
    today = datetime.now(UTC).date()
    for shift in range(-1, 3):  # yesterday and today free, tomorrow (wanted) full
        day = today + timedelta(days=shift)
        await hotel.upsert(site, HotelInventory(city=city, rooms={"standard": 1 if shift <= 0 else 0},
                                                nights_from=day, nights_to=day + timedelta(days=1)))
    wanted = HotelRequest(hotel_id=site, room_type="standard", check_in=today + timedelta(days=1),
                          check_out=today + timedelta(days=2), rooms=1)
    offers = await hotel.alternatives(wanted)
    assert [o.request["check_in"] for o in offers] == [today.isoformat()]
