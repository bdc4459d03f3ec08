"""What is left to book, read straight from the ledgers (PostgreSQL), never from the cache."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import ServicesDep
from api.ledger_errors import ledger_problems
from api.problems import problem_docs, service_unavailable
from api.schemas import FlightAvailability, HotelAvailability, ItemAvailability
from services.types import Identifier, ServiceName

router = APIRouter(prefix="/v1", tags=["availability"])

ResourceId = Annotated[Identifier, Path(description="The id as the operator created it.")]


def service(services: dict[ServiceName, Any], name: ServiceName) -> Any:
    if name not in services:
        raise service_unavailable("no database is configured (DATABASE_URL)")
    return services[name]


@router.get("/flights/{flight_id}/availability", response_model=FlightAvailability,
            summary="Seats left on a flight", responses=problem_docs(404, 422, 503))
async def flight_availability(flight_id: ResourceId, services: ServicesDep) -> dict[str, Any]:
    """Capacity, held, sold and available seats per seat class."""
    with ledger_problems("flight"):
        result: dict[str, Any] = await service(services, "flight").availability(flight_id)
    return result


@router.get("/hotels/{hotel_id}/availability", response_model=HotelAvailability,
            summary="Rooms left in a hotel for a stay", responses=problem_docs(404, 422, 503))
async def hotel_availability(
    hotel_id: ResourceId,
    services: ServicesDep,
    check_in: Annotated[date, Query(description="First night, YYYY-MM-DD.")],
    check_out: Annotated[date, Query(description="Departure day, after check_in (at most 60 nights).")],
) -> dict[str, Any]:
    """Per room type: the rooms available for every night of the stay (the least over the nights), and the
    counters of each night on sale."""
    with ledger_problems("hotel"):
        result: dict[str, Any] = await service(services, "hotel").availability(hotel_id, check_in, check_out)
    return result


@router.get("/items/{sku}/availability", response_model=ItemAvailability,
            summary="Stock left of a shop item", responses=problem_docs(404, 422, 503))
async def item_availability(sku: ResourceId, services: ServicesDep) -> dict[str, Any]:
    with ledger_problems("sku"):
        result: dict[str, Any] = await service(services, "orders").availability(sku)
    return result
