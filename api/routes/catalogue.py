"""`GET /v1/catalogue`: what a front-end can offer, from every participant's demo offers, with live availability.

Public and read-only. `available` is the least over the rows an offer would hold, read from the ledgers (never
the cache); an offer whose rows do not exist (the demo inventory is not seeded) is left out.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ReadServicesDep
from api.ledger_errors import ledger_problems
from api.problems import problem_docs
from api.routes.availability import service
from services.registry import PARTICIPANTS, AnyParticipant, AnyService
from services.types import Money, Price

router = APIRouter(prefix="/v1", tags=["availability"])


class Offer(BaseModel):
    label: str = Field(description="What it is, for people.")
    request: dict[str, object] | list[dict[str, object]] = Field(
        description="The checkout-body field's value that books it (merge it into a checkout body)."
    )
    available: int = Field(description="Units available now (the least over what it would hold).")
    price: Money | None = Field(
        default=None, description="What the offer as listed costs now (every row's unit price times its units); "
        "null when a row has no price. A checkout pays the prices its holds record when placed.",
    )


class ParticipantOffers(BaseModel):
    name: str
    field: str = Field(description="The checkout-body field this participant answers to.")
    title: str
    list_field: bool = Field(description="The field takes a list: several offers concatenate.")
    quantity_field: str = Field(description="The member of `request` (or of each list item) that counts units.")
    offers: list[Offer]


class PaymentOption(BaseModel):
    """A participant that pays for the others (a wallet): add `{field: request}` to a checkout body to pay with it."""

    name: str
    field: str = Field(description="The checkout-body field this participant answers to.")
    title: str
    request: dict[str, object] | list[dict[str, object]] = Field(description="The field's value.")
    account: str | None = Field(
        default=None, description="Where a customer reads its account (the path, with the customer id in braces)."
    )


class Catalogue(BaseModel):
    participants: list[ParticipantOffers]
    payments: list[PaymentOption] = Field(default_factory=list)


async def _offers(participant: AnyParticipant, svc: AnyService) -> ParticipantOffers:
    requests = participant.demo_offers(datetime.now(UTC).date())
    rows = [participant.rows(request) for request in requests]
    names = sorted({resource for wanted in rows for resource in wanted})
    with ledger_problems(participant.noun):
        available, prices = await asyncio.gather(svc.available(names), svc.prices(names))
    offers = [
        Offer(
            label=participant.describe(request), request=participant.to_body(request),
            available=min(available[resource] for resource in wanted), price=_price(wanted, prices),
        )
        for request, wanted in zip(requests, rows, strict=True)
        if wanted and all(resource in available for resource in wanted)
    ]
    return ParticipantOffers(
        name=participant.name, field=participant.field, title=participant.title, list_field=participant.list_field,
        quantity_field=participant.quantity_field, offers=offers,
    )


def _price(wanted: dict[str, int], prices: dict[str, Price | None]) -> Money | None:
    found = [prices.get(resource) for resource in wanted]
    priced = [price for price in found if price is not None]
    if len(priced) != len(found) or len({price.currency for price in priced}) != 1:
        return None
    amount = sum(price.amount * wanted[resource] for resource, price in zip(wanted, priced, strict=True))
    return Money(amount=amount, currency=priced[0].currency)


@router.get("/catalogue", response_model=Catalogue, summary="What can be booked (demo offers)",
            responses=problem_docs(503))
async def catalogue(services: ReadServicesDep) -> Catalogue:
    """Every participant's demo offers with what is available now: a storefront's shelf."""
    found = await asyncio.gather(*(_offers(p, service(services, p.name)) for p in PARTICIPANTS if p.inventory))
    return Catalogue(participants=list(found), payments=_payments())


def _payments() -> list[PaymentOption]:
    today = datetime.now(UTC).date()
    options = []
    for p in PARTICIPANTS:
        if not p.requires_prices:
            continue
        routes = p.routes
        owned = routes is not None and routes.read_access == "owner"
        account = "/v1" + routes.path(routes.read_path) if routes is not None and owned else None
        options += [PaymentOption(name=p.name, field=p.field, title=p.title, request=p.to_body(offer), account=account)
                    for offer in p.demo_offers(today)]
    return options
