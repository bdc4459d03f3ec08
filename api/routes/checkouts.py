"""Checkouts: create (Update-with-Start), read, confirm, cancel, extend."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Annotated

from fastapi import APIRouter, Header, Path

from api import fast_path, saga
from api.deps import AppState, StateDep
from api.idempotency import CHECKOUT_ID_PATTERN, IDEMPOTENCY_KEY_PATTERN, checkout_id, request_hash
from api.identity import CallerDep, CallerOrOperatorDep, auth_docs, check_may_change, read_checkout
from api.precheck import check_resources_exist
from api.problems import ProblemError, problem_docs, service_unavailable
from api.schemas import Checkout, CheckoutBody, CheckoutProblem, ExtendBody, HoldLimitProblem
from services.customer_limits import LimitExceeded
from services.errors import DatabaseUnavailable, LedgerError
from services.logcontext import bind_checkout
from services.types import Alternative
from workflows.models import CANCEL, CONFIRM, EXTEND, CheckoutRequest, CheckoutStatus, CheckoutView, ExtendInput

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/checkouts", tags=["checkouts"])

# The saga answers `submit` with one of these once its holds are placed: the checkout exists (201).
PLACED = {CheckoutStatus.HELD, CheckoutStatus.CONFIRMED, CheckoutStatus.CANCELLED, CheckoutStatus.EXPIRED}
# Cancel is a no-op success for a checkout that holds nothing any more.
NOTHING_HELD = {CheckoutStatus.CANCELLED, CheckoutStatus.EXPIRED, CheckoutStatus.REJECTED, CheckoutStatus.FAILED}

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Chosen by the client, one per checkout attempt: the same key and body again give the same "
        "answer and never a second checkout.",
    ),
]
CheckoutId = Annotated[str, Path(description="The checkout id from the 201 answer.", examples=["co-" + "0" * 32])]


def _conflict(view: CheckoutView, title: str, detail: str, kind: str = "checkout-conflict") -> ProblemError:
    return ProblemError(
        409, kind, title, detail,
        checkout_id=view.checkout_id,
        checkout_status=view.status.value,
        unavailable=[s.model_dump(mode="json") for s in view.unavailable],
        alternatives=[a.model_dump(mode="json") for a in view.alternatives],
    )


def _not_placed(view: CheckoutView) -> ProblemError:
    if view.status == CheckoutStatus.REJECTED:
        short = "; ".join(f"{s.resource}: requested {s.requested}, available {s.available}" for s in view.unavailable)
        return _conflict(view, "Not available", f"not enough inventory ({short or 'sold out'}); nothing is held, "
                         "see `alternatives`", kind="checkout-rejected")
    if view.status == CheckoutStatus.PENDING:
        raise service_unavailable("the checkout is still being placed; retry the same request", dependency="temporal")
    if view.status == CheckoutStatus.NEEDS_ATTENTION:
        # Placing failed and releasing what was held is still being retried (operators are alerted): not placed,
        # and whatever is still held will be released, never sold.
        return _conflict(view, "Checkout failed", "the checkout could not be placed; its holds are being released "
                         "(an operator is alerted). Retry with a new Idempotency-Key", kind="checkout-failed")
    return _conflict(view, "Checkout failed", f"the checkout ended {view.status.value}: {view.error or 'see status'}; "
                     "nothing is held. Retry with a new Idempotency-Key", kind="checkout-failed")


async def _sold_out_in_cache(
    state: AppState, checkout_id_: str, request: CheckoutRequest, digest: str
) -> CheckoutView | None:
    """The REJECTED answer when the cache shows part of the request short and no saga has this id; else None.

    Idempotency: a key that has a saga gets that saga's answer (submit joins or reads it, and refuses another
    body with 422), even when the cache now shows sold out; every saga's id is recorded before it starts
    (services/started_checkouts.py). The cache is read first and the record only on a hit: a checkout that is
    not sold out pays nothing extra, a sold-out one pays a primary-key read instead of a saga. Without a saga
    nothing was ever held under this key, so REJECTED is what a saga would answer now. Nothing is recorded for
    a fast 409: a retry looks again, which can never hold twice (a fast 409 holds nothing) and may find
    inventory released since, as a new attempt should.
    """
    if state.cache is None or state.started is None or not state.services:
        return None
    shortages = await fast_path.cached_shortages(state.cache, request, state.cache_reads)
    if not shortages:
        return None
    # The alternatives are looked up while the saga record is read: a sold-out answer waits for the slower one.
    offered = asyncio.ensure_future(
        fast_path.alternatives(state.services, request, list(shortages), state.alternatives)
    )
    offered.add_done_callback(_retrieve)
    try:
        has_saga = await state.started.has(checkout_id_)
    except DatabaseUnavailable as error:  # the saga path must record the id in the same database: 503 at once
        offered.cancel()
        raise service_unavailable(f"the checkout cannot be looked up ({error}); retry the same request",
                                  dependency="database") from error
    except LedgerError as error:  # unknown: the saga decides
        log.warning("sold-out fast path skipped, no saga record: %s", error)
        has_saga = True
    except BaseException:
        offered.cancel()
        raise
    if has_saga:
        offered.cancel()
        return None
    return fast_path.rejected_view(checkout_id_, request, digest, shortages, await offered)


async def _record_started(state: AppState, checkout_id_: str) -> None:
    """Record the id before its saga can exist: from then on the fast path leaves this key to its saga."""
    if state.started is None:
        return
    try:
        await state.started.record(checkout_id_)
    except LedgerError as error:
        raise service_unavailable(f"the checkout could not be recorded ({error}); retry the same request",
                                  dependency="database") from error


async def _claim(state: AppState, checkout_id_: str, request: CheckoutRequest) -> None:
    """Count the checkout against its customer's limits (429 when over one) and record its id as started, in
    one transaction, before its saga can exist (services/customer_limits.py)."""
    if state.limits is None:
        return await _record_started(state, checkout_id_)
    rows = {(p.name, resource): units for p, part in request.parts() for resource, units in p.rows(part).items()}
    try:
        await state.limits.claim(checkout_id_, request.customer_id, rows)
    except LimitExceeded as over:
        raise ProblemError(
            429, "hold-limit", "Hold limit reached", f"{over}: confirm, cancel or let one expire first",
            limit=over.limit, current=over.current, max=over.max, resource=over.resource,
        ) from None
    except LedgerError as error:
        raise service_unavailable(f"the checkout could not be recorded ({error}); retry the same request",
                                  dependency="database") from error


def _retrieve(task: asyncio.Future[list[Alternative]]) -> None:
    """Mark an abandoned lookup's error as seen: asyncio would log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _valid_id(checkout_id_: str) -> str:
    # Ids are HMACs: anything else cannot exist, and need not reach Temporal.
    if not re.fullmatch(CHECKOUT_ID_PATTERN, checkout_id_):
        raise saga.unknown_checkout(checkout_id_)
    return checkout_id_


@router.post(
    "",
    operation_id="create_checkout",
    status_code=201,
    response_model=Checkout,
    summary="Place a checkout's holds",
    responses=problem_docs(
        400, 409, 422, 429, 503,
        s409=(CheckoutProblem, "Not available (`checkout_status` REJECTED, with `unavailable` and `alternatives`) "
              "or failed; nothing is held."),
        s429=(HoldLimitProblem, "A per-customer hold limit would be passed; nothing is held."),
    ) | auth_docs("customer_id is not the token's customer, or the operator token was sent."),
)
async def create_checkout(
    body: CheckoutBody, idempotency_key: IdempotencyKey, state: StateDep, caller: CallerDep
) -> Checkout:
    """Hold everything the checkout asks for, or nothing: 201 once every hold is placed (status HELD, until
    `expires_at`), 409 when something is short (the holds already placed are rolled back).

    The same Idempotency-Key with the same body answers the same, even while the first request runs, and even
    after the checkout has moved on (then with its current status). The same key with another body is a 422.
    """
    caller.check_places_for(body.customer_id)
    started = time.perf_counter()
    outcome = "error"
    view: CheckoutView | None = None
    try:
        settings = state.settings
        hold_seconds = settings.hold_seconds_default if body.hold_seconds is None else body.hold_seconds
        if not settings.hold_seconds_min <= hold_seconds <= settings.hold_seconds_max:
            outcome = "invalid"
            raise ProblemError(
                422, "invalid-request", "Invalid request",
                f"hold_seconds must be between {settings.hold_seconds_min} and {settings.hold_seconds_max}",
            )
        request = body.to_request()
        cid = checkout_id(settings.checkout_id_secret, request.customer_id, idempotency_key)
        bind_checkout(cid)  # every later log line of this request carries the checkout id (booking_saga.logs)
        digest = request_hash(request, hold_seconds)
        view = await _sold_out_in_cache(state, cid, request, digest)
        if view is not None:
            outcome = view.status.value.lower()
            state.metrics.fast_path_rejections.inc()
            raise _not_placed(view)
        await check_resources_exist(state.services, request, state.known_resources)
        client = state.temporal.require()
        await _claim(state, cid, request)
        view = await saga.submit(client, settings, cid, request, digest, hold_seconds)
        if view.request_hash != digest:
            outcome = "key_reused"
            raise ProblemError(
                422, "idempotency-key-reused", "Idempotency-Key reused",
                "this Idempotency-Key was already used with another request body; use a new key for a new checkout",
                checkout_id=cid,
            )
        outcome = view.status.value.lower()
        if view.status not in PLACED:
            raise _not_placed(view)
        return Checkout.from_view(view)
    except ProblemError as problem:
        if outcome == "error":
            outcome = {503: "unavailable", 422: "invalid"}.get(problem.status, outcome)
        raise
    finally:
        state.metrics.observe_checkout(outcome, time.perf_counter() - started, view)
        log.debug("checkout answered: %s", outcome)  # with the checkout id once it is known (bind_checkout)


@router.get("/{checkout_id}", response_model=Checkout, summary="Read a checkout", operation_id="get_checkout",
            responses=problem_docs(404, 409, 503) | auth_docs())
async def get_checkout(checkout_id: CheckoutId, state: StateDep, caller: CallerOrOperatorDep) -> Checkout:
    """The checkout now: status, holds, `expires_at` while HELD, and the history of its status changes."""
    checkout_id = _valid_id(checkout_id)
    bind_checkout(checkout_id)
    return Checkout.from_view(await read_checkout(caller, state.temporal.require(), checkout_id))


@router.post(
    "/{checkout_id}/confirm",
    operation_id="confirm_checkout",
    response_model=Checkout,
    summary="Confirm a held checkout",
    responses=problem_docs(404, 409, 503, s409=(CheckoutProblem, "The checkout is not HELD (expired, cancelled, "
                                                                 "rejected): `checkout_status` says which."))
    | auth_docs("The operator token was sent: only the customer confirms."),
)
async def confirm_checkout(checkout_id: CheckoutId, state: StateDep, caller: CallerDep) -> Checkout:
    """Turn the holds into sales. Repeatable: confirming a CONFIRMED checkout answers 200 again."""
    checkout_id = _valid_id(checkout_id)
    bind_checkout(checkout_id)
    await check_may_change(caller, state.temporal, checkout_id, CONFIRM)
    try:
        view = await saga.update(state.temporal.require(), checkout_id, CONFIRM)
    except saga.RefusedUpdate as refused:
        view = refused.view
        if view.status != CheckoutStatus.CONFIRMED:
            state.metrics.observe_action(CONFIRM, "refused")
            raise _conflict(view, "Cannot confirm", f"the checkout is {view.status.value}: {refused.reason}") from None
    state.metrics.observe_action(CONFIRM, view.status.value.lower())
    if view.status != CheckoutStatus.CONFIRMED:
        raise _conflict(view, "Cannot confirm", f"the checkout is {view.status.value}")
    return Checkout.from_view(view)


@router.post(
    "/{checkout_id}/cancel",
    operation_id="cancel_checkout",
    response_model=Checkout,
    summary="Cancel a checkout",
    responses=problem_docs(404, 409, 503, s409=(CheckoutProblem, "The checkout is already CONFIRMED.")) | auth_docs(),
)
async def cancel_checkout(checkout_id: CheckoutId, state: StateDep, caller: CallerOrOperatorDep) -> Checkout:
    """Release the holds. Repeatable; a checkout that holds nothing any more (cancelled, expired, rejected)
    answers 200 with its status. Only a CONFIRMED checkout cannot be cancelled (409)."""
    checkout_id = _valid_id(checkout_id)
    bind_checkout(checkout_id)
    await check_may_change(caller, state.temporal, checkout_id, CANCEL)
    try:
        view = await saga.update(state.temporal.require(), checkout_id, CANCEL)
    except saga.RefusedUpdate as refused:
        view = refused.view
        if view.status not in NOTHING_HELD:
            state.metrics.observe_action(CANCEL, "refused")
            raise _conflict(view, "Cannot cancel", f"the checkout is {view.status.value}: {refused.reason}") from None
    state.metrics.observe_action(CANCEL, view.status.value.lower())
    return Checkout.from_view(view)


@router.post(
    "/{checkout_id}/extend",
    operation_id="extend_checkout",
    response_model=Checkout,
    summary="Extend a checkout's holds",
    responses=problem_docs(400, 404, 409, 422, 503, s409=(CheckoutProblem, "The checkout is not HELD, or the new "
                                                                      "expiry would pass the maximum hold lifetime."))
    | auth_docs("The operator token was sent: only the customer extends."),
)
async def extend_checkout(checkout_id: CheckoutId, body: ExtendBody, state: StateDep, caller: CallerDep) -> Checkout:
    """Push `expires_at` out by `seconds`, within the configured maximum hold lifetime."""
    settings = state.settings
    if body.seconds > settings.hold_seconds_max:
        raise ProblemError(422, "invalid-request", "Invalid request",
                           f"seconds must be between 1 and {settings.hold_seconds_max}")
    checkout_id = _valid_id(checkout_id)
    bind_checkout(checkout_id)
    await check_may_change(caller, state.temporal, checkout_id, EXTEND)
    client = state.temporal.require()
    try:
        view = await saga.update(client, checkout_id, EXTEND, ExtendInput(seconds=body.seconds))
    except saga.RefusedUpdate as refused:
        raise _conflict(refused.view, "Cannot extend",
                        f"the checkout is {refused.view.status.value}: {refused.reason}") from None
    return Checkout.from_view(view)
