"""Refuse a checkout naming something that does not exist (422) before starting a saga: each participant says
what of its part is unknown (InventoryService.unknown). Refuse one whose lines are priced in two currencies, or a
paid one with an unpriced line (422), from the rows' prices.

A typo should not cost a workflow, and "unknown" is a clearer answer than a 409 with nothing available.
What the prechecks do not decide (a room type not on sale those nights, anything short) is left to the saga,
where the ledger decides under its locks. The prices a check reads may be shared with other checkouts of the same
rows for PRICE_CHECK_SECONDS (`SharedPrices`): a check that would pass is as good on prices that old, since the
saga holds (and a payment authorizes) the prices the ledger has then; one that would refuse reads them afresh
first, so an operator's new price is never refused on an old reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from api.fast_path import SharedLookups
from api.ledger_errors import ledger_problems
from api.problems import ProblemError
from services.registry import AnyParticipant, AnyService
from services.types import Frozen, Money, Price
from workflows.models import CheckoutRequest

# Prices per (participant, rows), shared by concurrent and recent checkouts of the same rows.
SharedPrices = SharedLookups[tuple[str, tuple[str, ...]], dict[str, Price | None]]


def shared_prices(seconds: float) -> SharedPrices:
    return SharedLookups(ttl_seconds=seconds)


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
    with ledger_problems(participant.noun, unknown_status=422):
        missing = await service.unknown(part)
    if missing is not None:
        detail = f"unknown {participant.noun} {missing}"
        raise ProblemError(
            422, "unknown-resource", "Unknown resource", f"body.{participant.field}: {detail}", resource=missing,
            errors=[{"location": f"body.{participant.field}", "message": detail}],
        )
    known.add(key)


def _unprocessable(kind: str, title: str, detail: str, location: str) -> ProblemError:
    return ProblemError(422, kind, title, detail, errors=[{"location": location, "message": detail}])


async def check_prices(
    services: dict[str, AnyService], request: CheckoutRequest, derived: Mapping[str, Mapping[str, int]] | None = None,
    shared: SharedPrices | None = None,
) -> Money | None:
    """One currency per checkout, and a price on every line of a paid checkout (a part whose participant
    `requires_prices`): 422 otherwise, before any saga. A single-row checkout without such a part cannot break
    either rule and costs nothing here. What changes after this look (an operator re-prices meanwhile) is the
    saga's: the hold lines record the prices the ledger had, and a payment declines a total it cannot take.
    `shared`: prices other checkouts read lately may answer (see the module); a refusal is always read afresh.

    Returns a paid checkout's quote: its lines' total at the prices read (None for any other checkout, or one
    with a line not on sale, which the ledger refuses). The saga's payment authorizes it while the inventory
    holds, and the checkout is refused if the held lines add up to anything else (CheckoutInput.quote)."""
    parts = request.parts()
    paid = [p for p, _ in parts if p.requires_prices]
    # `derived`: the rows per participant as the checkout's attempt derived them (api/admission.py); else here.
    units = [
        (p, derived.get(p.name, {}) if derived is not None else p.rows(part)) for p, part in parts if p.inventory
    ]
    wanted = [(p, sorted(rows)) for p, rows in units]
    if paid and not wanted:
        detail = f"{paid[0].field} pays for the checkout's other parts: name at least one"
        raise _unprocessable("nothing-to-pay", "Nothing to pay for", detail, f"body.{paid[0].field}")
    if not services or (not paid and sum(len(rows) for _, rows in wanted) <= 1):
        return None

    async def read(participant: AnyParticipant, rows: list[str]) -> dict[str, Price | None]:
        if shared is None:
            return await services[participant.name].prices(rows)
        return await shared.get((participant.name, tuple(rows)), lambda: services[participant.name].prices(rows))

    found = await asyncio.gather(*(read(p, rows) for p, rows in wanted))
    try:
        _check_found(wanted, found, paid)
    except ProblemError:
        if shared is None:
            raise
        # Read afresh before refusing; the fresh reading is the one shared from now on.
        forget_prices(shared, {p.name: rows for p, rows in units})
        found = await asyncio.gather(*(read(p, rows) for p, rows in wanted))
        _check_found(wanted, found, paid)
    return _quote(units, found) if paid else None


def forget_prices(shared: SharedPrices, rows: Mapping[str, Mapping[str, int]]) -> None:
    """The next check of these rows (per participant name) reads their prices afresh."""
    for name, found in rows.items():
        shared.forget((name, tuple(sorted(found))))


def _quote(
    units: Sequence[tuple[AnyParticipant, Mapping[str, int]]], found: Sequence[Mapping[str, Price | None]]
) -> Money | None:
    """The lines' total at the prices read, as the ledger will price the holds (unit price x units per row)."""
    amount, currencies = 0, set()
    for (_, rows), prices in zip(units, found, strict=True):
        for resource, quantity in rows.items():
            price = prices.get(resource)
            if price is None:
                return None
            amount += price.amount * quantity
            currencies.add(price.currency)
    if len(currencies) != 1:
        return None
    return Money(amount=amount, currency=currencies.pop())


def _check_found(
    wanted: list[tuple[AnyParticipant, list[str]]], found: list[dict[str, Price | None]], paid: list[AnyParticipant]
) -> None:
    currencies: dict[str, str] = {}
    unpriced: list[tuple[str, str]] = []
    for (participant, rows), prices in zip(wanted, found, strict=True):
        for resource in rows:
            if resource not in prices:
                continue  # not on sale: the ledger refuses it (409), not a pricing question
            price = prices[resource]
            if price is None:
                unpriced.append((participant.field, resource))
            else:
                currencies.setdefault(price.currency, f"body.{participant.field}")
    if len(currencies) > 1:
        detail = f"one checkout is paid in one currency; its lines are priced in {', '.join(sorted(currencies))}"
        raise _unprocessable("mixed-currencies", "Lines in more than one currency", detail,
                             next(iter(currencies.values())))
    if paid and unpriced:
        names = ", ".join(resource for _, resource in unpriced)
        detail = f"a checkout paid with {paid[0].field} needs a price on every line; no price: {names}"
        raise _unprocessable("unpriced-line", "Unpriced line in a paid checkout", detail, f"body.{unpriced[0][0]}")


async def check_resources_exist(
    services: dict[str, AnyService], request: CheckoutRequest, known: KnownResources
) -> None:
    if not services:  # no database configured: the saga is the only judge
        return
    await asyncio.gather(*(_part_exists(services[p.name], p, part, known) for p, part in request.parts()))
