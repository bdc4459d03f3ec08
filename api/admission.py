"""A checkout's admission (POST /v1/checkouts), in one place: from a valid request to the saga's answer.

What it owns, each done once per checkout:

- the `Attempt`: the request validated against the configured bounds (hold_seconds, start dates), the customer it
  is placed for (the caller identified once, api/identity.py, and `Caller.check_places_for` once), its checkout
  id (the workflow id), its hash and its ledger rows (`Participant.rows`), bound to the request's log lines;
- the sold-out answer (`sold_out_view`): REJECTED from the availability cache when no saga has this id;
- the claim (`claim`): the checkout counted against its customer's limits and its id recorded as started, the
  one write of the started record (services/customer_limits.py records it in the claim's transaction;
  services/started_checkouts.py alone when no limits are configured);
- the Update-with-Start call (`admit`, through checkouts/saga.py `submit`) and what its answer means over HTTP.

Two adapters call it: the sold-out lane (api/sold_out.py, ASGI, before routing), which builds the attempt and
answers a sold-out checkout itself, handing the attempt on (`hand_on`) when nothing is short; and the route
(api/routes/checkouts.py), which calls `admit` with the attempt handed on, or builds it when the lane did not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.types import Scope

from api import fast_path
from api.idempotency import checkout_id, request_hash
from api.precheck import check_prices, check_resources_exist, forget_prices
from api.problems import ProblemError, service_unavailable
from api.schemas import CheckoutBody
from checkouts import bookings, saga
from checkouts.answers import not_placed
from services.customer_limits import LimitExceeded
from services.errors import DatabaseUnavailable, InvalidRequest, LedgerError
from services.logcontext import bind_checkout
from services.types import Alternative
from settings import Settings
from workflows.models import CheckoutRequest, CheckoutStatus, CheckoutView

if TYPE_CHECKING:
    from api.deps import AppState
    from api.identity import Caller

log = logging.getLogger(__name__)

CHECKOUTS_PATH = "/v1/checkouts"
# The saga answers `submit` with one of these once its holds are placed: the checkout exists (201).
PLACED = {CheckoutStatus.HELD, CheckoutStatus.CONFIRMED, CheckoutStatus.CANCELLED, CheckoutStatus.EXPIRED}
# The scope key of the Attempt the lane built and found not sold out (`hand_on`).
_HANDED_ON = "booking_saga.checkout_attempt"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST /v1/checkouts as the saga sees it: the validated request, its checkout id, hash and rows."""

    request: CheckoutRequest
    checkout_id: str
    digest: str
    hold_seconds: int
    # Per participant, the ledger rows the checkout would hold and how many units of each, named the way the
    # ledgers name (and publish) them (Participant.rows); participants with no rows are left out.
    rows: dict[str, dict[str, int]]

    def claimed_rows(self) -> dict[tuple[str, str], int]:
        """Units per (participant, ledger row): what the customer's limits count."""
        return {(service, resource): units for service, rows in self.rows.items() for resource, units in rows.items()}


def attempt_of(settings: Settings, body: CheckoutBody, idempotency_key: str, customer_id: str | None = None) -> Attempt:
    """The attempt a valid body and key make for `customer_id` (Caller.check_places_for; the body's when None); a
    hold_seconds out of the configured bounds, or a part that starts before today, is a 422. Every later log line
    of the request carries its checkout id."""
    hold_seconds = settings.hold_seconds_default if body.hold_seconds is None else body.hold_seconds
    if not settings.hold_seconds_min <= hold_seconds <= settings.hold_seconds_max:
        raise ProblemError(
            422, InvalidRequest.problem.kind, InvalidRequest.problem.title,
            f"hold_seconds must be between {settings.hold_seconds_min} and {settings.hold_seconds_max}",
        )
    request = body.to_request(customer_id)
    today = datetime.now(UTC).date()
    for participant, part in request.parts():
        starts = participant.starts_on(part)
        if starts is not None and starts < today:
            raise ProblemError(422, InvalidRequest.problem.kind, InvalidRequest.problem.title,
                               f"{participant.field} starts on {starts.isoformat()}, before today "
                               f"({today.isoformat()})")
    cid = checkout_id(settings.checkout_id_secret, request.customer_id, idempotency_key)
    rows = {p.name: found for p, part in request.parts() if (found := p.rows(part))}
    bind_checkout(cid)
    return Attempt(request, cid, request_hash(request, hold_seconds), hold_seconds, rows)


def hand_on(scope: Scope, attempt: Attempt) -> None:
    """The lane looked at this request's attempt and found nothing short: the route goes on from it."""
    scope[_HANDED_ON] = attempt


def handed_on(scope: Scope) -> Attempt | None:
    """The attempt the lane already found not short for this request, or None when it did not look."""
    attempt = scope.get(_HANDED_ON)
    return attempt if isinstance(attempt, Attempt) else None


async def sold_out_view(state: AppState, attempt: Attempt) -> CheckoutView | None:
    """The REJECTED answer when the cache shows part of the request short and no saga has this id; else None.

    Idempotency: a key that has a saga gets that saga's answer (submit joins or reads it, and refuses another
    body with 422), even when the cache now shows sold out; every saga's id is recorded before it starts
    (`claim`). The cache is read first and the record only on a hit: a checkout that is not sold out pays nothing
    extra, a sold-out one pays a record lookup instead of a saga. Without a saga nothing was ever held under this
    key, so REJECTED is what a saga would answer now. Nothing is recorded for a fast 409: a retry looks again,
    which can never hold twice (a fast 409 holds nothing) and may find inventory released since, as a new attempt
    should.
    """
    if state.cache is None or state.started is None or not state.services:
        return None
    request = attempt.request
    shortages = await fast_path.cached_shortages(state.cache, attempt.rows, state.cache_reads)
    if not shortages:
        return None
    short = list(shortages)
    # Alternatives the late buyers just before this one looked up are answered from at once, without a task;
    # else they are looked up while the saga record is read, and a sold-out answer waits for the slower one.
    offered = fast_path.settled_alternatives(request, short, state.alternatives)
    looking: asyncio.Future[list[Alternative]] | None = None
    if offered is None:
        looking = asyncio.ensure_future(fast_path.alternatives(state.services, request, short, state.alternatives))
        looking.add_done_callback(_retrieve)
    try:
        has_saga = await state.started.has(attempt.checkout_id)
    except DatabaseUnavailable as error:  # the saga path must record the id in the same database: 503 at once
        _abandon(looking)
        log.warning("sold-out fast path: the checkout cannot be looked up: %s", error)
        # The checkout's record, not a ledger: any database error reads as the table's base problem.
        raise service_unavailable("the checkout cannot be looked up; retry the same request",
                                  dependency="database", kind=LedgerError.problem.kind) from error
    except LedgerError as error:  # unknown: the saga decides
        log.warning("sold-out fast path skipped, no saga record: %s", error)
        has_saga = True
    except BaseException:
        _abandon(looking)
        raise
    if has_saga:
        _abandon(looking)
        return None
    if looking is not None:
        offered = await looking
    assert offered is not None
    return fast_path.rejected_view(attempt.checkout_id, request, attempt.digest, shortages, offered)


def _abandon(looking: asyncio.Future[list[Alternative]] | None) -> None:
    if looking is not None:
        looking.cancel()


def _retrieve(task: asyncio.Future[list[Alternative]]) -> None:
    """Mark an abandoned lookup's error as seen: asyncio would log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def not_recorded(error: LedgerError) -> ProblemError:
    """The 503 for a checkout whose record failed; the database's own words go to the log only."""
    log.warning("a checkout could not be recorded: %s", error)
    return service_unavailable("the checkout could not be recorded; retry the same request", dependency="database",
                               kind=LedgerError.problem.kind)


async def claim(state: AppState, attempt: Attempt) -> bool:
    """Count the checkout against its customer's limits (429 when over one) and record its id as started, in one
    transaction, before its saga can exist: from then on the sold-out answer leaves this key to its saga. Without
    limits, the id is recorded alone. True when the id is new; False for a checkout started before (its record
    may answer)."""
    try:
        if state.limits is not None:
            return await state.limits.claim(attempt.checkout_id, attempt.request.customer_id, attempt.claimed_rows())
        if state.started is not None:
            return await state.started.record(attempt.checkout_id)
        return True
    except LimitExceeded as over:
        raise ProblemError(
            over.problem.status, over.problem.kind, over.problem.title,
            f"{over}: confirm, cancel or let one expire first",
            limit=over.limit, current=over.current, max=over.max, resource=over.resource,
        ) from None
    except LedgerError as error:
        raise not_recorded(error) from error


async def admit(
    state: AppState, scope: Scope, body: CheckoutBody, idempotency_key: str, caller: Caller
) -> CheckoutView:
    """The route's whole answer: the placed checkout (HELD, or where it has moved on since), or a ProblemError
    (409 not placed, 422 invalid or the key reused with another body, 429 over a limit, 503 a dependency down).
    Counted in the checkout metrics, whichever way it ends."""
    handed = handed_on(scope)
    # The lane built the attempt for this caller already (api/sold_out.py): the caller is checked once.
    customer = caller.check_places_for(body.customer_id) if handed is None else None
    started = time.perf_counter()
    outcome = "error"
    view: CheckoutView | None = None
    try:
        try:
            attempt = handed or attempt_of(state.settings, body, idempotency_key, customer)
        except ProblemError:
            outcome = "invalid"
            raise
        request, cid, digest = attempt.request, attempt.checkout_id, attempt.digest
        # Sold-out answers are normally given before routing by the lane; this is for when it could not look.
        if handed is None and (view := await sold_out_view(state, attempt)) is not None:
            outcome = view.status.value.lower()
            state.metrics.fast_path_rejections.inc()
            raise not_placed(view)
        await check_resources_exist(state.services, request, state.known_resources)
        quote = await check_prices(state.services, request, attempt.rows, state.prices)
        if not state.settings.payment_beside_holds:
            quote = None
        client = state.temporal.require()
        fresh = await claim(state, attempt)
        # A key used before whose checkout has settled answers from its record, the checkout's last answer: never
        # a second saga, however long ago its workflow was deleted.
        view = None if fresh else bookings.settled_view(await bookings.load(state.records, cid))
        if view is None:
            view = await saga.submit(client, state.settings, cid, request, digest, attempt.hold_seconds, quote)
        if view.request_hash != digest:
            outcome = "key_reused"
            raise ProblemError(
                422, "idempotency-key-reused", "Idempotency-Key reused",
                "this Idempotency-Key was already used with another request body; use a new key for a new checkout",
                checkout_id=cid,
            )
        outcome = view.status.value.lower()
        if view.status not in PLACED:
            if quote is not None and state.prices is not None and view.status == CheckoutStatus.REJECTED:
                # Perhaps refused for a price changed since the shared reading: the customer's next try quotes
                # the prices the ledger has now.
                forget_prices(state.prices, attempt.rows)
            raise not_placed(view)
        return view
    except ProblemError as problem:
        if outcome == "error":
            outcome = {503: "unavailable", 422: "invalid"}.get(problem.status, outcome)
        raise
    finally:
        state.metrics.observe_checkout(outcome, time.perf_counter() - started, view)
        log.debug("checkout answered: %s", outcome)  # with the checkout id once it is known (bind_checkout)
