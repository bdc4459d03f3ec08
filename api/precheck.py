"""Refuse a checkout naming something that does not exist (422) before starting a saga: each participant says
what of its part is unknown (InventoryService.unknown).

A typo should not cost a workflow, and "unknown" is a clearer answer than a 409 with nothing available.
What the prechecks do not decide (a room type not on sale those nights, anything short) is left to the saga,
where the ledger decides under its locks.
"""

from __future__ import annotations

import asyncio

from api.ledger_errors import ledger_problems
from api.problems import ProblemError
from services.registry import AnyParticipant, AnyService
from services.types import Frozen
from workflows.models import CheckoutRequest


class KnownResources:
    """Checkout parts already seen to exist, keyed by what they name (Participant.resources).

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


async def _part_exists(
    service: AnyService, participant: AnyParticipant, part: Frozen, known: KnownResources
) -> None:
    key = (participant.name, *participant.resources(part))
    if key in known:
        return
    with ledger_problems(participant.routes.noun, unknown_status=422):
        missing = await service.unknown(part)
    if missing is not None:
        detail = f"unknown {participant.routes.noun} {missing}"
        raise ProblemError(
            422, "unknown-resource", "Unknown resource", f"body.{participant.field}: {detail}", resource=missing,
            errors=[{"location": f"body.{participant.field}", "message": detail}],
        )
    known.add(key)


async def check_resources_exist(
    services: dict[str, AnyService], request: CheckoutRequest, known: KnownResources
) -> None:
    if not services:  # no database configured: the saga is the only judge
        return
    await asyncio.gather(*(_part_exists(services[p.name], p, part, known) for p, part in request.parts()))
