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


class KnownResources:
    """Resources already seen to exist: a flight's seat class, a hotel, a sku.

    Nothing removes them (operators only upsert inventory), so one seen once stays valid and is not looked up
    again: the precheck then costs a checkout nothing for what it already knows. An unknown one is looked up
    every time, so a resource an operator has just added is bookable at once.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: set[tuple[str, ...]] = set()

    def __contains__(self, key: tuple[str, ...]) -> bool:
        return key in self._seen

    def add(self, key: tuple[str, ...]) -> None:
        if len(self._seen) >= self.max_entries:  # a bound on memory, not an expiry: start over
            self._seen.clear()
        self._seen.add(key)


async def _flight(services: dict[ServiceName, Any], request: CheckoutRequest, known: KnownResources) -> None:
    if request.flight is None:
        return
    key = ("flight", request.flight.flight_id, request.flight.seat_class)
    if key in known:
        return
    with ledger_problems("flight", unknown_status=422):
        availability = await services["flight"].availability(request.flight.flight_id)
    if request.flight.seat_class not in availability["seat_classes"]:
        known_classes = ", ".join(availability["seat_classes"]) or "none"
        raise ProblemError(
            422, "unknown-resource", "Unknown resource",
            f"flight {request.flight.flight_id} has no seat class {request.flight.seat_class} (known: {known_classes})",
        )
    known.add(key)


async def _hotel(services: dict[ServiceName, Any], request: CheckoutRequest, known: KnownResources) -> None:
    if request.hotel is None:
        return
    key = ("hotel", request.hotel.hotel_id)
    if key in known:
        return
    with ledger_problems("hotel", unknown_status=422):
        await services["hotel"].availability(request.hotel.hotel_id, request.hotel.check_in, request.hotel.check_out)
    known.add(key)


async def _items(services: dict[ServiceName, Any], request: CheckoutRequest, known: KnownResources) -> None:
    if request.items is None:
        return
    for line in request.items.items:
        key = ("sku", line.sku)
        if key in known:
            continue
        with ledger_problems("sku", unknown_status=422):
            await services["orders"].availability(line.sku)
        known.add(key)


async def check_resources_exist(
    services: dict[ServiceName, Any], request: CheckoutRequest, known: KnownResources
) -> None:
    if not services:  # no database configured: the saga is the only judge
        return
    await asyncio.gather(_flight(services, request, known), _hotel(services, request, known),
                         _items(services, request, known))
