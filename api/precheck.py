"""Refuse a checkout naming a flight, hotel or sku that does not exist (422) before starting a saga.

A typo should not cost a workflow, and "unknown" is a clearer answer than a 409 with nothing available.
What the prechecks do not decide (a room type not on sale those nights, anything short) is left to the saga,
where the ledger decides under its locks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.ledger_errors import ledger_problems
from api.problems import ProblemError
from services.types import ServiceName
from workflows.models import CheckoutRequest


async def _flight(services: dict[ServiceName, Any], request: CheckoutRequest) -> None:
    if request.flight is None:
        return
    with ledger_problems("flight", unknown_status=422):
        availability = await services["flight"].availability(request.flight.flight_id)
    if request.flight.seat_class not in availability["seat_classes"]:
        known = ", ".join(availability["seat_classes"]) or "none"
        raise ProblemError(
            422, "unknown-resource", "Unknown resource",
            f"flight {request.flight.flight_id} has no seat class {request.flight.seat_class} (known: {known})",
        )


async def _hotel(services: dict[ServiceName, Any], request: CheckoutRequest) -> None:
    if request.hotel is None:
        return
    with ledger_problems("hotel", unknown_status=422):
        await services["hotel"].availability(request.hotel.hotel_id, request.hotel.check_in, request.hotel.check_out)


async def _items(services: dict[ServiceName, Any], request: CheckoutRequest) -> None:
    if request.items is None:
        return
    for line in request.items.items:
        with ledger_problems("sku", unknown_status=422):
            await services["orders"].availability(line.sku)


async def check_resources_exist(services: dict[ServiceName, Any], request: CheckoutRequest) -> None:
    if not services:  # no database configured: the saga is the only judge
        return
    await asyncio.gather(_flight(services, request), _hotel(services, request), _items(services, request))
