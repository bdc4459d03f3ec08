"""The cars participant on real PostgreSQL: depot upsert and availability, rentals held all or nothing over the days
from pick-up up to (not including) drop-off, confirm / release / expiry, idempotency, tombstones, concurrency,
alternatives and input validation. Services are called directly: no Temporal needed."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cars.models import SCHEMA
from services.cars.models import Base as CarsBase
from services.cars.participant import DEMO_CARS, DEMO_DEPOTS, CarsParticipant
from services.cars.schemas import MAX_DAYS, MAX_UPSERT_DAYS, CarAvailability, CarRentalQuery, CarRequest, DepotInventory
from services.cars.service import CarsService
from services.errors import Busy, HoldNotActive, InvalidRequest, Unavailable, UnknownResource
from services.participant import NoQuery
from services.types import HoldResult, HoldStatus
from tests.ledger.helpers import assert_ledger_clean, later, unique


@pytest.fixture(scope="module")
def cars(engine: AsyncEngine) -> CarsService:
    # Built directly rather than from the registry: these tests are about the package alone.
    service = CarsParticipant().build_service(engine)
    assert isinstance(service, CarsService)
    return service


async def clean(cars: CarsService) -> None:
    await assert_ledger_clean({"cars": cars})


def soon(days: int) -> date:
    return datetime.now(UTC).date() + timedelta(days=days)


def rental(depot_id: str, car_class: str, pick_up: date, days: int, cars: int = 1) -> CarRequest:
    return CarRequest(depot_id=depot_id, car_class=car_class, pick_up=pick_up,
                      drop_off=pick_up + timedelta(days=days), cars=cars)


async def depot(
    cars: CarsService, depot_id: str, classes: dict[str, int], first: date, last: date, city: str = "London"
) -> CarAvailability:
    return await cars.upsert(depot_id, DepotInventory(city=city, cars=classes, days_from=first, days_to=last))


async def availability(cars: CarsService, depot_id: str, pick_up: date, drop_off: date) -> CarAvailability:
    return await cars.availability(depot_id, CarRentalQuery(pick_up=pick_up, drop_off=drop_off))


def held_per_day(answer: CarAvailability, car_class: str) -> dict[date, int]:
    return {day: counters.held for day, counters in answer.car_classes[car_class].days.items()}


def key() -> str:
    return unique("wf") + ":cars"


# -- upsert and availability -------------------------------------------------------------------------------------


async def test_upsert_then_availability_is_the_least_over_the_days(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    answer = await depot(cars, depot_id, {"economy": 5, "suv": 2}, first, first + timedelta(days=4))
    # The upsert answers the availability over the days it set, both ends included.
    assert len(answer.car_classes["economy"].days) == 5
    assert answer.car_classes["suv"].available == 2
    # suv is not on sale on the first day: any rental that includes it has nothing available.
    await depot(cars, depot_id, {"suv": 0}, first, first)
    await cars.hold(key(), rental(depot_id, "economy", first + timedelta(days=1), 1, cars=3), later())

    seen = await availability(cars, depot_id, first, first + timedelta(days=3))
    assert seen.depot_id == depot_id
    economy = seen.car_classes["economy"]
    assert economy.available == 2
    assert economy.days[first + timedelta(days=1)].model_dump() == {
        "capacity": 5, "held": 3, "sold": 0, "available": 2, "price": None
    }
    assert economy.days[first].available == 5
    assert seen.car_classes["suv"].available == 0

    # A day the depot has never offered is missing from `days` and makes `available` 0.
    beyond = await availability(cars, depot_id, first + timedelta(days=4), first + timedelta(days=6))
    assert beyond.car_classes["economy"].available == 0
    assert list(beyond.car_classes["economy"].days) == [first + timedelta(days=4)]
    await clean(cars)


async def test_upsert_changes_only_the_classes_and_days_named(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 5, "compact": 3}, first, first + timedelta(days=3))
    await depot(cars, depot_id, {"economy": 8}, first + timedelta(days=1), first + timedelta(days=1), city="Leeds")
    seen = await availability(cars, depot_id, first, first + timedelta(days=3))
    assert {d: c.capacity for d, c in seen.car_classes["economy"].days.items()} == {
        first: 5, first + timedelta(days=1): 8, first + timedelta(days=2): 5,
    }
    assert seen.car_classes["compact"].available == 3
    await clean(cars)


async def test_capacity_below_held_plus_sold_is_refused(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"compact": 5}, first, first + timedelta(days=2))
    sold = key()
    await cars.hold(sold, rental(depot_id, "compact", first, 2, cars=3), later())
    await cars.confirm(sold)
    await cars.hold(key(), rental(depot_id, "compact", first + timedelta(days=1), 1, cars=1), later())
    with pytest.raises(InvalidRequest):
        await depot(cars, depot_id, {"compact": 3}, first, first + timedelta(days=2))
    # The refused upsert changed nothing, not even the days where 3 would have fitted.
    unchanged = await availability(cars, depot_id, first, first + timedelta(days=3))
    assert {d: c.capacity for d, c in unchanged.car_classes["compact"].days.items()} == {
        first: 5, first + timedelta(days=1): 5, first + timedelta(days=2): 5,
    }
    # Exactly held + sold is fine.
    resized = await depot(cars, depot_id, {"compact": 4}, first + timedelta(days=1), first + timedelta(days=1))
    assert resized.car_classes["compact"].available == 0
    await clean(cars)


# -- holds -------------------------------------------------------------------------------------------------------


async def test_rental_holds_each_day_from_pick_up_up_to_drop_off(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"compact": 4}, first, first + timedelta(days=5))
    wanted = rental(depot_id, "compact", first, 3, cars=2)
    held = await cars.hold(key(), wanted, later())
    assert held.status is HoldStatus.ACTIVE and held.service == "cars"
    assert {line.resource: line.quantity for line in held.lines} == CarsParticipant().rows(wanted) == {
        f"{depot_id}/compact/{(first + timedelta(days=i)).isoformat()}": 2 for i in range(3)
    }
    seen = await availability(cars, depot_id, first, first + timedelta(days=5))
    # The drop-off day is not held: the car is back that day.
    assert held_per_day(seen, "compact") == {first + timedelta(days=i): 2 if i < 3 else 0 for i in range(5)}
    await clean(cars)


async def test_one_full_day_refuses_the_whole_rental(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"suv": 2}, first, first + timedelta(days=5))
    full_day = first + timedelta(days=1)
    await cars.hold(key(), rental(depot_id, "suv", full_day, 1, cars=2), later())
    with pytest.raises(Unavailable) as refused:
        await cars.hold(key(), rental(depot_id, "suv", first, 3), later())
    assert [(s.resource, s.requested, s.available) for s in refused.value.shortages] == [
        (f"{depot_id}/suv/{full_day.isoformat()}", 1, 0)
    ]
    seen = await availability(cars, depot_id, first, first + timedelta(days=3))
    assert held_per_day(seen, "suv") == {first: 0, full_day: 2, first + timedelta(days=2): 0}
    await clean(cars)


async def test_a_day_not_on_sale_refuses_the_rental(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 9}, first, first + timedelta(days=1))
    with pytest.raises(Unavailable) as refused:
        await cars.hold(key(), rental(depot_id, "economy", first, 3), later())
    assert [(s.resource, s.available) for s in refused.value.shortages] == [
        (f"{depot_id}/economy/{(first + timedelta(days=2)).isoformat()}", 0)
    ]
    seen = await availability(cars, depot_id, first, first + timedelta(days=2))
    assert held_per_day(seen, "economy") == {first: 0, first + timedelta(days=1): 0}
    await clean(cars)


async def test_confirm_moves_held_to_sold(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 5}, first, first + timedelta(days=2))
    hold_key = key()
    await cars.hold(hold_key, rental(depot_id, "economy", first, 2, cars=2), later())
    confirmed = await cars.confirm(hold_key)
    again = await cars.confirm(hold_key)
    assert confirmed.status is again.status is HoldStatus.CONFIRMED
    assert len(confirmed.lines) == 2
    seen = (await availability(cars, depot_id, first, first + timedelta(days=2))).car_classes["economy"]
    assert {c.model_dump()["sold"] for c in seen.days.values()} == {2}
    assert (seen.available, {c.held for c in seen.days.values()}) == (3, {0})
    with pytest.raises(HoldNotActive):
        await cars.release(hold_key)
    await clean(cars)


async def test_release_returns_every_day_once(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 5}, first, first + timedelta(days=3))
    hold_key = key()
    await cars.hold(hold_key, rental(depot_id, "economy", first, 3, cars=4), later())
    assert (await cars.release(hold_key)).status is HoldStatus.RELEASED
    assert (await cars.release(hold_key)).status is HoldStatus.RELEASED
    seen = (await availability(cars, depot_id, first, first + timedelta(days=3))).car_classes["economy"]
    assert (seen.available, {c.held for c in seen.days.values()}) == (5, {0})
    with pytest.raises(HoldNotActive):
        await cars.confirm(hold_key)
    with pytest.raises(HoldNotActive):
        await cars.extend(hold_key, later())
    await clean(cars)


async def test_extend_and_expire_overdue(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 10}, first, first + timedelta(days=2))
    now = datetime.now(UTC)
    overdue, extended = key(), key()
    await cars.hold(overdue, rental(depot_id, "economy", first, 2, cars=2), now - timedelta(seconds=300))
    await cars.hold(extended, rental(depot_id, "economy", first, 2, cars=3), now - timedelta(seconds=300))
    assert (await cars.extend(extended, now + timedelta(seconds=600))).status is HoldStatus.ACTIVE
    assert await cars.expire_overdue(now, grace_seconds=120) >= 1
    assert await cars.expire_overdue(now, grace_seconds=120) == 0
    seen = await availability(cars, depot_id, first, first + timedelta(days=2))
    assert set(held_per_day(seen, "economy").values()) == {3}
    with pytest.raises(HoldNotActive) as late:
        await cars.confirm(overdue)
    assert late.value.status is HoldStatus.EXPIRED
    with pytest.raises(HoldNotActive):
        await cars.hold(overdue, rental(depot_id, "economy", first, 2, cars=2), later())
    await clean(cars)


async def test_duplicate_hold_returns_the_recorded_outcome(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"compact": 3}, first, first + timedelta(days=2))
    wanted = rental(depot_id, "compact", first, 2, cars=2)
    hold_key = key()
    first_answer = await cars.hold(hold_key, wanted, later())
    assert await cars.hold(hold_key, wanted, later(900)) == first_answer
    seen = await availability(cars, depot_id, first, first + timedelta(days=2))
    assert set(held_per_day(seen, "compact").values()) == {2}

    refused_key = key()
    for _ in range(2):
        with pytest.raises(Unavailable) as refused:
            await cars.hold(refused_key, wanted, later())
        assert {s.available for s in refused.value.shortages} == {1}
    # Cars free up, yet the refused key keeps its one outcome.
    await cars.release(hold_key)
    with pytest.raises(Unavailable):
        await cars.hold(refused_key, wanted, later())
    seen = await availability(cars, depot_id, first, first + timedelta(days=2))
    assert set(held_per_day(seen, "compact").values()) == {0}
    await clean(cars)


async def test_release_before_hold_leaves_a_tombstone(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 4}, first, first + timedelta(days=2))
    hold_key = key()
    tombstone = await cars.release(hold_key)
    assert tombstone.status is HoldStatus.RELEASED and tombstone.lines == []
    with pytest.raises(HoldNotActive) as refused:
        await cars.hold(hold_key, rental(depot_id, "economy", first, 2), later())
    assert refused.value.status is HoldStatus.RELEASED
    seen = await availability(cars, depot_id, first, first + timedelta(days=2))
    assert set(held_per_day(seen, "economy").values()) == {0}
    await clean(cars)


async def test_unknown_depot_and_class(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 4}, first, first + timedelta(days=2))
    nowhere = rental(unique("NO"), "economy", first, 1)
    no_class = rental(depot_id, "limousine", first, 1)
    for wanted, name in ((nowhere, f"{nowhere.depot_id}/economy"), (no_class, f"{depot_id}/limousine")):
        assert await cars.unknown(wanted) == name
        with pytest.raises(UnknownResource) as refused:
            await cars.hold(key(), wanted, later())
        assert refused.value.resource == name
    # A known class on days not on sale is not unknown: the ledger refuses it as Unavailable (a 409).
    assert await cars.unknown(rental(depot_id, "economy", first + timedelta(days=30), 1)) is None
    with pytest.raises(UnknownResource):
        await availability(cars, unique("NO"), first, first + timedelta(days=1))
    assert await cars.alternatives(nowhere) == []
    await clean(cars)


async def test_wrong_query_or_body_model_is_refused(cars: CarsService) -> None:
    with pytest.raises(InvalidRequest):
        await cars.availability(unique("D"), NoQuery())
    with pytest.raises(InvalidRequest):
        await cars.upsert(unique("D"), CarRentalQuery(pick_up=soon(1), drop_off=soon(2)))


# -- concurrency -------------------------------------------------------------------------------------------------


async def hold_retrying(cars: CarsService, hold_key: str, wanted: CarRequest) -> HoldResult:
    """Retry on Busy, as the activity layer (Temporal retries) does; any other error goes to the caller."""
    while True:
        try:
            return await cars.hold(hold_key, wanted, later())
        except Busy:
            await asyncio.sleep(0.05)


async def test_twenty_concurrent_rentals_on_ten_cars(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 10, "suv": 1}, first, first + timedelta(days=4))
    wanted = rental(depot_id, "economy", first, 3)
    results = await asyncio.gather(
        *(hold_retrying(cars, key(), wanted) for _ in range(20)), return_exceptions=True
    )
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, Unavailable)]
    assert not unexpected, unexpected
    assert sum(isinstance(r, HoldResult) for r in results) == 10
    seen = (await availability(cars, depot_id, first, first + timedelta(days=4))).car_classes["economy"]
    assert {d: c.held for d, c in seen.days.items()} == {first + timedelta(days=i): 10 if i < 3 else 0
                                                          for i in range(4)}
    assert seen.available == 0
    await clean(cars)


async def test_overlapping_rentals_in_both_directions_never_deadlock(cars: CarsService) -> None:
    depot_id, first = unique("D"), soon(10)
    await depot(cars, depot_id, {"economy": 1000}, first, first + timedelta(days=6))
    early, late = rental(depot_id, "economy", first, 4), rental(depot_id, "economy", first + timedelta(days=2), 4)
    in_flight = asyncio.Semaphore(6)  # bounded: this machine is shared

    async def hold_then_maybe_release(n: int) -> None:
        async with in_flight:
            hold_key = key()
            await cars.hold(hold_key, early if n % 2 else late, later())
            if n % 3 == 0:
                await cars.release(hold_key)

    # No retry here: any Busy (a deadlock would surface as one) fails the test.
    await asyncio.gather(*(hold_then_maybe_release(n) for n in range(30)))
    kept = [n for n in range(30) if n % 3]
    seen = (await availability(cars, depot_id, first, first + timedelta(days=6))).car_classes["economy"]
    # Days 2 and 3 are in both rentals.
    assert seen.days[first + timedelta(days=2)].held == len(kept)
    assert seen.days[first].held == sum(1 for n in kept if n % 2)
    await clean(cars)


# -- alternatives ------------------------------------------------------------------------------------------------


async def test_alternatives_other_classes_then_other_depots_then_shifted(cars: CarsService) -> None:
    city, first = unique("City"), soon(20)
    main, other = unique("D"), unique("D")
    await depot(cars, main, {"economy": 0, "suv": 3}, first - timedelta(days=5), first + timedelta(days=10), city)
    await depot(cars, main, {"economy": 2}, first + timedelta(days=3), first + timedelta(days=10), city)
    await depot(cars, other, {"compact": 1}, first, first + timedelta(days=5), city)
    # Another city's depot is never offered.
    await depot(cars, unique("D"), {"economy": 9}, first, first + timedelta(days=5), unique("City"))
    wanted = rental(main, "economy", first, 2)
    with pytest.raises(Unavailable):
        await cars.hold(key(), wanted, later())
    offers = await cars.alternatives(wanted)
    assert [(o.request["depot_id"], o.request["car_class"], o.request["pick_up"]) for o in offers] == [
        (main, "suv", first.isoformat()),
        (other, "compact", first.isoformat()),
        (main, "economy", (first + timedelta(days=3)).isoformat()),
    ]
    assert [o.available for o in offers] == [3, 1, 2]
    assert {o.service for o in offers} == {"cars"}
    assert offers[1].description.startswith(f"another depot in {city}")
    # The checkout fragment merges into a new checkout as-is, and validates as the participant's request.
    assert offers[0].checkout == {"car": {
        "depot_id": main, "car_class": "suv", "pick_up": first.isoformat(),
        "drop_off": (first + timedelta(days=2)).isoformat(), "cars": 1,
    }}
    participant = CarsParticipant()
    shifted = participant.to_request(offers[2].checkout[participant.field])
    assert shifted == rental(main, "economy", first + timedelta(days=3), 2)
    assert (await cars.hold(key(), shifted, later())).status is HoldStatus.ACTIVE
    await clean(cars)


async def test_shifted_rentals_nearest_first_never_into_the_past(cars: CarsService) -> None:
    today = soon(0)
    depot_id = unique("D")
    city = unique("City")  # a city of its own: no other depot's classes come first
    await depot(cars, depot_id, {"economy": 1}, today - timedelta(days=3), today + timedelta(days=6), city)
    await depot(cars, depot_id, {"economy": 0}, today, today, city)
    offers = await cars.alternatives(rental(depot_id, "economy", today, 1))
    assert [o.request["pick_up"] for o in offers] == [(today + timedelta(days=n)).isoformat() for n in (1, 2, 3)]
    assert [o.description.split(":")[0] for o in offers] == ["shifted rental"] * 3


# -- the declaration and the demo --------------------------------------------------------------------------------


def test_declaration() -> None:
    participant = CarsParticipant()
    assert (participant.name, participant.field, participant.quantity_field) == ("cars", "car", "cars")
    assert (participant.routes.collection, participant.routes.id_name, participant.routes.noun) == (
        "cars", "depot_id", "depot"
    )
    wanted = CarRequest(depot_id="D-LHR", car_class="compact", pick_up=date(2026, 12, 1), drop_off=date(2026, 12, 3),
                        cars=1)
    assert participant.describe(wanted) == "D-LHR/compact 2026-12-01..2026-12-03 x1"
    assert participant.resources(wanted) == ["D-LHR/compact"]
    assert participant.rows(wanted) == {"D-LHR/compact/2026-12-01": 1, "D-LHR/compact/2026-12-02": 1}
    assert participant.requested(wanted, "D-LHR/compact/2026-12-02") == 1
    assert participant.to_request(participant.to_body(wanted)) == wanted


async def test_seed_demo_serves_every_demo_offer(cars: CarsService) -> None:
    today = soon(0)
    await cars.seed_demo(today)
    await cars.seed_demo(today)
    london = await availability(cars, "D-LON-2", today, today + timedelta(days=2))
    assert set(london.car_classes) == set(DEMO_CARS)
    offers = CarsParticipant().demo_offers(today)
    assert {offer.depot_id for offer in offers} == set(DEMO_DEPOTS)
    for offer in offers:
        assert await cars.unknown(offer) is None
        hold_key = key()
        assert (await cars.hold(hold_key, offer, later())).status is HoldStatus.ACTIVE
        await cars.release(hold_key)
    await clean(cars)


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={"include_schemas": True, "include_name": lambda name, kind, _: kind != "schema" or name == SCHEMA},
    )
    return list(compare_metadata(context, CarsBase.metadata))


async def test_migration_creates_exactly_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


# -- bad input ---------------------------------------------------------------------------------------------------

GOOD = {"depot_id": "D-LHR", "car_class": "compact", "pick_up": "2026-12-01", "drop_off": "2026-12-03", "cars": 1}


@pytest.mark.parametrize(
    "change",
    [
        {"drop_off": "2026-12-01"},  # drop-off on the pick-up day
        {"drop_off": "2026-11-30"},  # before it
        {"drop_off": (date(2026, 12, 1) + timedelta(days=MAX_DAYS + 1)).isoformat()},
        {"cars": True},  # a bool is not a count
        {"cars": "2"},
        {"cars": 0},
        {"cars": 1001},
        {"depot_id": "bad depot!"},
        {"car_class": ""},
        {"pick_up": "tomorrow"},
        {"extra": 1},
    ],
)
def test_bad_rental_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CarRequest.model_validate({**GOOD, **change})


def test_longest_rental_is_accepted() -> None:
    longest = CarRequest.model_validate(
        {**GOOD, "drop_off": (date(2026, 12, 1) + timedelta(days=MAX_DAYS)).isoformat()}
    )
    assert len(longest.days()) == MAX_DAYS


def test_bad_query_is_refused() -> None:
    with pytest.raises(ValidationError):
        CarRentalQuery.model_validate({"pick_up": "2026-12-03", "drop_off": "2026-12-03"})
    with pytest.raises(ValidationError):
        CarRentalQuery.model_validate({"pick_up": "2026-12-03"})


@pytest.mark.parametrize(
    "change",
    [
        {"days_to": "2026-11-30"},  # before days_from
        {"days_to": "2027-12-02"},  # 367 days, both ends included
        {"cars": {}},
        {"cars": {"suv": True}},
        {"cars": {"suv": -1}},
        {"cars": {"bad class!": 1}},
        {"city": " "},
    ],
)
def test_bad_depot_upsert_is_refused(change: dict[str, object]) -> None:
    good = {"city": "London", "cars": {"suv": 2}, "days_from": "2026-12-01", "days_to": "2026-12-31"}
    with pytest.raises(ValidationError):
        DepotInventory.model_validate({**good, **change})


def test_366_days_are_one_upsert() -> None:
    body = DepotInventory.model_validate(
        {"city": "London", "cars": {"suv": 2}, "days_from": "2026-12-01", "days_to": "2027-12-01"}
    )
    assert (body.days_to - body.days_from).days + 1 == MAX_UPSERT_DAYS
