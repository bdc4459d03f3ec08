"""The precheck looks up each resource once it has seen it exist, and every time while it is unknown."""

from __future__ import annotations

from typing import Any

import pytest

from api.precheck import KnownResources, check_resources_exist
from api.problems import ProblemError
from services.errors import UnknownResource
from services.types import FlightRequest, ItemLine, ItemsRequest
from workflows.models import CheckoutRequest


class Catalogue:
    """Stands in for the flight and orders services' availability reads, counting them."""

    def __init__(self, skus: set[str]) -> None:
        self.skus = skus
        self.reads = 0

    async def availability(self, resource: str) -> dict[str, Any]:
        self.reads += 1
        if resource.startswith("BA"):
            return {"seat_classes": {"economy": {}}}
        if resource not in self.skus:
            raise UnknownResource(resource)
        return {"sku": resource}


def checkout(*skus: str, seat_class: str = "economy") -> CheckoutRequest:
    return CheckoutRequest(
        customer_id="cust-1",
        flight=FlightRequest(flight_id="BA1", seat_class=seat_class, seats=1),
        items=ItemsRequest(items=[ItemLine(sku=sku, quantity=1) for sku in skus]),
    )


async def test_a_resource_seen_to_exist_is_not_looked_up_again() -> None:
    catalogue = Catalogue({"SKU-1", "SKU-2"})
    services: dict[str, Any] = {"flight": catalogue, "orders": catalogue}
    known = KnownResources()

    await check_resources_exist(services, checkout("SKU-1", "SKU-2"), known)  # type: ignore[arg-type]
    assert catalogue.reads == 3
    await check_resources_exist(services, checkout("SKU-2", "SKU-1"), known)  # type: ignore[arg-type]
    assert catalogue.reads == 3


async def test_an_unknown_resource_is_looked_up_every_time_until_it_exists() -> None:
    catalogue = Catalogue({"SKU-1"})
    services: dict[str, Any] = {"flight": catalogue, "orders": catalogue}
    known = KnownResources()

    for _ in range(2):
        with pytest.raises(ProblemError) as refused:
            await check_resources_exist(services, checkout("SKU-NEW"), known)  # type: ignore[arg-type]
        assert refused.value.status == 422
    catalogue.skus.add("SKU-NEW")  # an operator adds it
    await check_resources_exist(services, checkout("SKU-NEW"), known)  # type: ignore[arg-type]
    assert "SKU-NEW" in str(catalogue.skus) and ("sku", "SKU-NEW") in known


async def test_an_unknown_seat_class_of_a_known_flight_is_refused() -> None:
    catalogue = Catalogue({"SKU-1"})
    services: dict[str, Any] = {"flight": catalogue, "orders": catalogue}
    known = KnownResources()
    await check_resources_exist(services, checkout("SKU-1"), known)  # type: ignore[arg-type]

    with pytest.raises(ProblemError) as refused:
        await check_resources_exist(services, checkout("SKU-1", seat_class="first"), known)  # type: ignore[arg-type]
    assert refused.value.status == 422 and "no seat class first" in refused.value.detail
