"""The sold-out fast path: turn away a checkout the availability cache already shows as short, without a saga.

The cache is a hint (services/cache.py): only a cached row with fewer units than asked decides anything. A row
that is not cached, or a cache that does not answer within its budget, sends the checkout to the saga, where
PostgreSQL decides under the ledger's locks. The answer is built as a saga's REJECTED view, so the 409 has the
same body whichever path answered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from services.cache import AvailabilityCache
from services.errors import LedgerError
from services.registry import AnyService
from services.types import Alternative, Shortage
from workflows.models import CheckoutRequest, CheckoutStatus, CheckoutView

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


async def cached_shortages(
    cache: AvailabilityCache,
    wanted: dict[str, dict[str, int]],
    reads: SharedLookups[tuple[str, tuple[str, ...]], dict[str, int] | None],
) -> dict[str, list[Shortage]]:
    """The rows the cache shows short, per service. Empty means "not known to be short": go to the saga.
    `wanted`: per service, the units asked of each ledger row (api/admission.py Attempt.rows).

    Concurrent checkouts asking for the same rows share one Redis read (`reads`): in a flash sale every buyer
    asks for the same sku at once, and a read per buyer queues them all behind each other on the event loop
    until reads overrun the cache's time budget and send buyers to the (far costlier) saga.
    """
    def read(service: str, rows: dict[str, int]) -> Awaitable[dict[str, int] | None]:
        return reads.get((service, tuple(rows)), lambda: cache.available(service, list(rows)))

    if len(wanted) == 1:  # the usual checkout: awaited in place, as gather would wrap it in a task of its own
        ((service, rows),) = wanted.items()
        found = [await read(service, rows)]
    else:  # one round trip per service, all at once: the whole lookup stays within one cache budget
        found = await asyncio.gather(*(read(service, rows) for service, rows in wanted.items()))
    shortages: dict[str, list[Shortage]] = {}
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


class SharedLookups(Generic[K, V]):
    """Concurrent askers of the same key share one lookup, whose answer is then kept for `ttl_seconds` (0: only
    while it runs). Callers must not mutate the shared answer.

    The lookup's task is shielded from any one caller's cancellation; a lookup that fails is not kept, so the next
    request asks again.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 1024) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, asyncio.Task[V]]] = {}

    def settled(self, key: K) -> asyncio.Task[V] | None:
        """The kept lookup of `key` when it has finished well and is still fresh: its result is the answer `get`
        would give, read without awaiting (so without a task or a shield per asker). None otherwise."""
        entry = self._entries.get(key)
        if entry is None or not entry[1].done() or entry[0] <= time.monotonic():
            return None
        task = entry[1]
        # A failed lookup is dropped by a callback the loop runs later: until then it is still an entry here.
        return None if task.cancelled() or task.exception() is not None else task

    async def get(self, key: K, lookup: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[1].done() and entry[0] > now:
            return entry[1].result()  # kept and fresh: nothing to wait for, nor to shield
        if entry is None or (entry[1].done() and entry[0] <= now):
            if len(self._entries) >= self.max_entries:
                self._entries = {k: e for k, e in self._entries.items() if e[0] > now or not e[1].done()}
                if len(self._entries) >= self.max_entries:  # a burst of distinct keys: start over
                    self._entries.clear()

            async def run() -> V:
                return await lookup()

            entry = (now + self.ttl_seconds, asyncio.ensure_future(run()))
            entry[1].add_done_callback(functools.partial(self._settled, key))
            self._entries[key] = entry
        return await asyncio.shield(entry[1])

    def forget(self, key: K) -> None:
        """The next asker of `key` looks it up afresh (askers of the lookup under way still share it)."""
        self._entries.pop(key, None)

    def _settled(self, key: K, task: asyncio.Task[V]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if (failed or self.ttl_seconds <= 0) and (entry := self._entries.get(key)) is not None and entry[1] is task:
            del self._entries[key]


def shared_alternatives() -> SharedLookups[tuple[str, str], list[Alternative]]:
    """Alternatives per (service, request part), shared for a second by every request asking the same.

    A sold-out item draws the same request from every late buyer at once; each would otherwise run the same
    alternatives queries on PostgreSQL. Alternatives are best-effort suggestions (the customer books them
    with a new checkout, which the ledger decides), so an answer a second old is as good as a fresh one.
    """
    return SharedLookups(ttl_seconds=1.0)


def shared_reads() -> SharedLookups[tuple[str, tuple[str, ...]], dict[str, int] | None]:
    """Cache reads shared only while they run: a sold-out answer never rests on a reading older than its request."""
    return SharedLookups(ttl_seconds=0)


async def alternatives(
    services: dict[str, AnyService],
    request: CheckoutRequest,
    short: list[str],
    cache: SharedLookups[tuple[str, str], list[Alternative]] | None = None,
) -> list[Alternative]:
    """What each short service offers instead, from PostgreSQL (or `cache`). Best effort, as in the saga:
    a rejection is answered with or without suggestions."""
    parts = {p.name: part for p, part in request.parts()}

    def lookup(service: str) -> Awaitable[list[Alternative]]:
        if cache is None:
            return services[service].alternatives(parts[service])
        key = (service, parts[service].model_dump_json())
        return cache.get(key, lambda: services[service].alternatives(parts[service]))

    outcomes = await asyncio.gather(*(lookup(service) for service in short), return_exceptions=True)
    found: list[Alternative] = []
    for service, outcome in zip(short, outcomes, strict=True):
        if isinstance(outcome, list):
            found += outcome
        elif isinstance(outcome, LedgerError):
            log.warning("no %s alternatives for a sold-out checkout: %s", service, outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
    return found


def settled_alternatives(
    request: CheckoutRequest,
    short: list[str],
    cache: SharedLookups[tuple[str, str], list[Alternative]],
) -> list[Alternative] | None:
    """`alternatives`' answer when `cache` holds every short service's lookup, finished and fresh; None when one
    must still be looked up (or is being looked up). A late buyer of a sold-out item is answered from what the
    buyers just before asked, without a task of its own."""
    parts = {p.name: part for p, part in request.parts()}
    found: list[Alternative] = []
    for service in short:
        kept = cache.settled((service, parts[service].model_dump_json()))
        if kept is None:
            return None
        found += kept.result()
    return found


def rejected_view(
    checkout_id: str,
    request: CheckoutRequest,
    request_hash: str,
    shortages: dict[str, list[Shortage]],
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
