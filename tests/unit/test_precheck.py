"""The precheck looks up each checkout part once it has seen it exist, and every time while it is unknown; the
price check shares a reading between checkouts of the same rows, and reads afresh before it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from api.precheck import KnownResources, check_prices, check_resources_exist, forget_prices, shared_prices
from api.problems import ProblemError
from services.flight.schemas import FlightRequest
from services.orders.schemas import ItemLine, ItemsRequest
from services.registry import participant
from services.types import Money, Price
from workflows.models import CheckoutRequest


class Catalogue:
    """Stands in for the flight and orders services' `unknown` lookups, counting them."""

    def __init__(self, skus: set[str]) -> None:
        self.skus = skus
        self.reads = 0

    async def unknown(self, request: FlightRequest | ItemsRequest) -> str | None:
        self.reads += 1
        if isinstance(request, FlightRequest):
            return None if request.seat_class == "economy" else f"{request.flight_id}/{request.seat_class}"
        return next((line.sku for line in request.items if line.sku not in self.skus), None)


def checkout(*skus: str, seat_class: str = "economy") -> CheckoutRequest:
    # As the API builds it: the items part through the participant (lines sorted by sku).
    items = participant("orders").to_request([ItemLine(sku=sku, quantity=1).model_dump() for sku in skus])
    assert isinstance(items, ItemsRequest)
    flight = FlightRequest(flight_id="BA1", seat_class=seat_class, seats=1)
    # The part fields come from the registry at run time: validate a mapping (mypy sees only the base model).
    return CheckoutRequest.model_validate({"customer_id": "cust-1", "flight": flight, "items": items})


async def test_a_part_seen_to_exist_is_not_looked_up_again() -> None:
    catalogue = Catalogue({"SKU-1", "SKU-2"})
    services: dict[str, Any] = {"flight": catalogue, "orders": catalogue}
    known = KnownResources()

    await check_resources_exist(services, checkout("SKU-1", "SKU-2"), known)
    assert catalogue.reads == 2
    await check_resources_exist(services, checkout("SKU-2", "SKU-1"), known)
    assert catalogue.reads == 2


async def test_an_unknown_resource_is_looked_up_every_time_until_it_exists() -> None:
    catalogue = Catalogue({"SKU-1"})
    services: dict[str, Any] = {"flight": catalogue, "orders": catalogue}
    known = KnownResources()

    for _ in range(2):
        with pytest.raises(ProblemError) as refused:
            await check_resources_exist(services, checkout("SKU-NEW"), known)
        assert refused.value.status == 422 and "SKU-NEW" in refused.value.detail
    reads = catalogue.reads
    catalogue.skus.add("SKU-NEW")  # an operator adds it
    await check_resources_exist(services, checkout("SKU-NEW"), known)
    assert catalogue.reads > reads and ("orders", "SKU-NEW") in known


async def test_an_unknown_seat_class_of_a_known_flight_is_refused() -> None:
    catalogue = Catalogue({"SKU-1"})
    services: dict[str, Any] = {"flight": catalogue, "orders": catalogue}
    known = KnownResources()
    await check_resources_exist(services, checkout("SKU-1"), known)

    with pytest.raises(ProblemError) as refused:
        await check_resources_exist(services, checkout("SKU-1", seat_class="first"), known)
    assert refused.value.status == 422 and "BA1/first" in refused.value.detail


class PriceList:
    """Stands in for the orders service's `prices` lookup, counting reads; `prices` is what the ledger has now."""

    def __init__(self, prices: dict[str, Price | None]) -> None:
        self.prices = prices
        self.reads = 0

    async def prices_of(self, resources: list[str]) -> dict[str, Price | None]:
        self.reads += 1
        return {resource: self.prices[resource] for resource in resources if resource in self.prices}


def paid_items(*skus: str) -> CheckoutRequest:
    items = participant("orders").to_request([ItemLine(sku=sku, quantity=1).model_dump() for sku in skus])
    return CheckoutRequest.model_validate({"customer_id": "cust-1", "items": items, "payment": {"method": "wallet"}})


EUR = Price(amount=100, currency="EUR")


def price_list(prices: dict[str, Price | None]) -> tuple[PriceList, dict[str, Any]]:
    found = PriceList(prices)
    service = type("Orders", (), {"prices": staticmethod(found.prices_of)})()
    return found, {"orders": service}


async def test_checkouts_of_the_same_rows_share_one_price_reading() -> None:
    found, services = price_list({"SKU-1": EUR, "SKU-2": EUR})
    request = paid_items("SKU-1", "SKU-2")
    shared = shared_prices(60.0)
    for _ in range(3):
        await check_prices(services, request, shared=shared)
    assert found.reads == 1
    for _ in range(2):  # without sharing (PRICE_CHECK_SECONDS=0): a reading per checkout
        await check_prices(services, request)
    assert found.reads == 3


async def test_a_refusal_is_read_afresh_so_a_line_priced_meanwhile_passes() -> None:
    found, services = price_list({"SKU-1": EUR, "SKU-2": None})
    request = paid_items("SKU-1", "SKU-2")
    shared = shared_prices(60.0)
    with pytest.raises(ProblemError) as refused:
        await check_prices(services, request, shared=shared)
    assert refused.value.kind == "unpriced-line" and "SKU-2" in refused.value.detail
    assert found.reads == 2  # the shared reading refused, so it was read again: still unpriced

    found.prices["SKU-2"] = EUR  # the operator prices the line; the shared reading still says unpriced
    await check_prices(services, request, shared=shared)
    assert found.reads == 3

    found.prices["SKU-2"] = Price(amount=100, currency="USD")
    await check_prices(services, request, shared=shared)  # an older reading that passes is used as it is
    assert found.reads == 3
    with pytest.raises(ProblemError) as mixed:  # read for this checkout alone: refused at once
        await check_prices(services, request)
    assert mixed.value.kind == "mixed-currencies"


async def test_a_paid_checkout_is_quoted_its_lines_total_at_the_prices_read() -> None:
    _, services = price_list({"SKU-1": EUR, "SKU-2": Price(amount=250, currency="EUR")})
    items = participant("orders").to_request([{"sku": "SKU-1", "quantity": 3}, {"sku": "SKU-2", "quantity": 1}])
    request = CheckoutRequest.model_validate({"customer_id": "c", "items": items, "payment": {"method": "wallet"}})
    assert await check_prices(services, request) == Money(amount=3 * 100 + 250, currency="EUR")
    # Without a payment nothing is quoted (the checks still run on several rows).
    assert await check_prices(services, checkout("SKU-1", "SKU-2").model_copy(update={"flight": None})) is None
    # A line not on sale is the ledger's refusal, not a quote.
    assert await check_prices(services, paid_items("SKU-1", "SKU-GONE")) is None


async def test_a_forgotten_reading_quotes_the_new_price() -> None:
    found, services = price_list({"SKU-1": EUR})
    request = paid_items("SKU-1")
    shared = shared_prices(60.0)
    assert await check_prices(services, request, shared=shared) == Money(amount=100, currency="EUR")
    found.prices["SKU-1"] = Price(amount=120, currency="EUR")  # an operator re-prices
    assert await check_prices(services, request, shared=shared) == Money(amount=100, currency="EUR")
    forget_prices(shared, {"orders": {"SKU-1": 1}})  # what the API does when a quoted checkout is refused
    assert await check_prices(services, request, shared=shared) == Money(amount=120, currency="EUR")
    assert found.reads == 2
