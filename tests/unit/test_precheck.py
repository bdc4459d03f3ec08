"""The precheck looks up each checkout part once it has seen it exist, and every time while it is unknown."""

from __future__ import annotations

from typing import Any

import pytest

from api.precheck import KnownResources, check_resources_exist
from api.problems import ProblemError
from services.flight.schemas import FlightRequest
from services.orders.schemas import ItemLine, ItemsRequest
from services.registry import participant
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
