"""`GET /v1/catalogue`: what a front-end can offer, from every participant's demo offers, with live availability.

Public and read-only. `available` is the least over the rows an offer would hold, read from the ledgers (never
the cache); an offer whose rows do not exist (the demo inventory is not seeded) is left out.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.ledger_errors import ledger_problems
from api.problems import problem_docs
from api.routes.availability import service
from services.registry import PARTICIPANTS, AnyParticipant, AnyService

router = APIRouter(prefix="/v1", tags=["availability"])


class Offer(BaseModel):
    label: str = Field(description="What it is, for people.")
    request: dict[str, object] | list[dict[str, object]] = Field(
        description="The checkout-body field's value that books it (merge it into a checkout body)."
    )
    available: int = Field(description="Units available now (the least over what it would hold).")


class ParticipantOffers(BaseModel):
    name: str
    field: str = Field(description="The checkout-body field this participant answers to.")
    title: str
    list_field: bool = Field(description="The field takes a list: several offers concatenate.")
    quantity_field: str = Field(description="The member of `request` (or of each list item) that counts units.")
    offers: list[Offer]


class Catalogue(BaseModel):
    participants: list[ParticipantOffers]


async def _offers(participant: AnyParticipant, svc: AnyService) -> ParticipantOffers:
    requests = participant.demo_offers(datetime.now(UTC).date())
    rows = [participant.rows(request) for request in requests]
    with ledger_problems(participant.routes.noun):
        available = await svc.available(sorted({resource for wanted in rows for resource in wanted}))
    offers = [
        Offer(
            label=participant.describe(request), request=participant.to_body(request),
            available=min(available[resource] for resource in wanted),
        )
        for request, wanted in zip(requests, rows, strict=True)
        if wanted and all(resource in available for resource in wanted)
    ]
    return ParticipantOffers(
        name=participant.name, field=participant.field, title=participant.title, list_field=participant.list_field,
        quantity_field=participant.quantity_field, offers=offers,
    )


@router.get("/catalogue", response_model=Catalogue, summary="What can be booked (demo offers)",
            responses=problem_docs(503))
async def catalogue(services: ServicesDep) -> Catalogue:
    """Every participant's demo offers with what is available now: a storefront's shelf."""
    found = await asyncio.gather(*(_offers(p, service(services, p.name)) for p in PARTICIPANTS))
    return Catalogue(participants=list(found))
