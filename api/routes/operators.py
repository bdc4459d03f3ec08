"""Operator routes: inventory upserts and the ledger audit, behind the operator bearer token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api.auth import require_operator
from api.deps import ServicesDep
from api.ledger_errors import ledger_problems
from api.problems import problem_docs
from api.routes.availability import ResourceId, service
from api.schemas import (
    AuditReport,
    FlightAvailability,
    FlightInventory,
    HotelAvailability,
    HotelInventory,
    ItemAvailability,
    ItemInventory,
)
from services.types import Violation

router = APIRouter(prefix="/v1", tags=["operators"], dependencies=[Depends(require_operator)])


@router.put("/inventory/flights/{flight_id}", response_model=FlightAvailability,
            summary="Create or change a flight", responses=problem_docs(401, 422, 503))
async def put_flight(flight_id: ResourceId, body: FlightInventory, services: ServicesDep) -> dict[str, Any]:
    """Sets the route, departure and the capacity of each seat class named (others stay as they are).
    A capacity below what is already held + sold is refused (422). Answers the flight's availability."""
    with ledger_problems("flight"):
        result: dict[str, Any] = await service(services, "flight").upsert_flight(
            flight_id, body.origin, body.destination, body.departs_at, body.seats
        )
    return result


@router.put("/inventory/hotels/{hotel_id}", response_model=HotelAvailability,
            summary="Create or change a hotel", responses=problem_docs(401, 422, 503))
async def put_hotel(hotel_id: ResourceId, body: HotelInventory, services: ServicesDep) -> dict[str, Any]:
    """Sets the city and, for every night from `nights_from` to `nights_to` (both included), the capacity of
    each room type named. Answers the availability over those nights."""
    with ledger_problems("hotel"):
        result: dict[str, Any] = await service(services, "hotel").upsert_hotel(
            hotel_id, body.city, body.rooms, body.nights_from, body.nights_to
        )
    return result


@router.put("/inventory/items/{sku}", response_model=ItemAvailability,
            summary="Create or restock a shop item", responses=problem_docs(401, 422, 503))
async def put_item(sku: ResourceId, body: ItemInventory, services: ServicesDep) -> dict[str, Any]:
    with ledger_problems("sku"):
        result: dict[str, Any] = await service(services, "orders").upsert_item(sku, body.stock)
    return result


@router.get("/audit", response_model=AuditReport, summary="Check the ledger invariant",
            responses=problem_docs(401, 503))
async def audit(services: ServicesDep) -> AuditReport:
    """For every inventory row: held = the sum of its ACTIVE hold lines, sold = the sum of its CONFIRMED
    ones, and 0 <= held + sold <= capacity. `ok` is true when nothing breaks it."""
    violations: list[Violation] = []
    for name in ("flight", "hotel", "orders"):
        with ledger_problems(name):
            violations += await service(services, name).audit()
    return AuditReport(ok=not violations, violations=violations)
