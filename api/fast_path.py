"""The sold-out fast path: turn away a checkout the availability cache already shows as short, without a saga.

The cache is a hint (services/cache.py): only a cached row with fewer units than asked decides anything. A row
that is not cached, or a cache that does not answer within its budget, sends the checkout to the saga, where
PostgreSQL decides under the ledger's locks. The answer is built as a saga's REJECTED view, so the 409 has the
same body whichever path answered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services.cache import AvailabilityCache
from services.errors import LedgerError
from services.flight.service import resource_name as flight_resource
from services.hotel.service import resource_name as hotel_resource
from services.types import Alternative, FlightRequest, HotelRequest, ServiceName, Shortage
from workflows.models import CheckoutRequest, CheckoutStatus, CheckoutView
from workflows.summaries import request_parts

log = logging.getLogger(__name__)


def wanted_rows(request: CheckoutRequest) -> dict[ServiceName, dict[str, int]]:
    """Per service, the ledger rows the checkout would hold and how many units of each, named the way the
    ledgers name (and publish) them: 'BA117/economy', 'H1/deluxe/2026-12-01' per night, 'SKU-1'."""
    rows: dict[ServiceName, dict[str, int]] = {}
    for service, part in request_parts(request):
        if isinstance(part, FlightRequest):
            rows[service] = {flight_resource(part.flight_id, part.seat_class): part.seats}
        elif isinstance(part, HotelRequest):
            nights = part.nights()
            rows[service] = {hotel_resource(part.hotel_id, part.room_type, night): part.rooms for night in nights}
        else:
            rows[service] = {line.sku: line.quantity for line in part.items}
    return rows


async def cached_shortages(cache: AvailabilityCache, request: CheckoutRequest) -> dict[ServiceName, list[Shortage]]:
    """The rows the cache shows short, per service. Empty means "not known to be short": go to the saga."""
    wanted = wanted_rows(request)
    # One round trip per service, all at once: the whole lookup stays within one cache budget.
    found = await asyncio.gather(*(cache.available(service, list(rows)) for service, rows in wanted.items()))
    shortages: dict[ServiceName, list[Shortage]] = {}
    for (service, rows), cached in zip(wanted.items(), found, strict=True):
        if cached is None:  # the cache was unusable for this lookup: unknown, never "short"
            continue
        short = [
            Shortage(resource=resource, requested=quantity, available=cached[resource])
            for resource, quantity in rows.items()
            if resource in cached and cached[resource] < quantity
        ]
        if short:
            shortages[service] = short
    return shortages


async def alternatives(
    services: dict[ServiceName, Any], request: CheckoutRequest, short: list[ServiceName]
) -> list[Alternative]:
    """What each short service offers instead, from PostgreSQL. Best effort, as in the saga: a rejection
    is answered with or without suggestions."""
    parts = dict(request_parts(request))
    outcomes = await asyncio.gather(
        *(services[service].alternatives(parts[service]) for service in short), return_exceptions=True
    )
    found: list[Alternative] = []
    for service, outcome in zip(short, outcomes, strict=True):
        if isinstance(outcome, list):
            found += outcome
        elif isinstance(outcome, LedgerError):
            log.warning("no %s alternatives for a sold-out checkout: %s", service, outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
    return found


def rejected_view(
    checkout_id: str,
    request: CheckoutRequest,
    request_hash: str,
    shortages: dict[ServiceName, list[Shortage]],
    offered: list[Alternative],
) -> CheckoutView:
    """The checkout as a saga would have ended it: REJECTED, nothing held."""
    return CheckoutView(
        checkout_id=checkout_id,
        customer_id=request.customer_id,
        request_hash=request_hash,
        status=CheckoutStatus.REJECTED,
        unavailable=[shortage for found in shortages.values() for shortage in found],
        alternatives=offered,
    )
