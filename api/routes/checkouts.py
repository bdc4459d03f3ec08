"""Checkouts: create (Update-with-Start), read, confirm, cancel, extend."""

from __future__ import annotations

import logging
import re
import time
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request

from api import saga
from api.answers import conflict, not_placed
from api.deps import AppState, StateDep
from api.idempotency import CHECKOUT_ID_PATTERN, IDEMPOTENCY_KEY_PATTERN
from api.identity import CallerDep, CallerOrOperatorDep, auth_docs, check_may_change, read_checkout
from api.precheck import check_resources_exist
from api.problems import ProblemError, problem_docs, service_unavailable
from api.schemas import Checkout, CheckoutBody, CheckoutProblem, ExtendBody, HoldLimitProblem
from api.sold_out import CHECKOUTS_PATH, attempt_of, looked_at, sold_out_view
from services.customer_limits import LimitExceeded
from services.errors import LedgerError
from services.logcontext import bind_checkout
from workflows.models import CANCEL, CONFIRM, EXTEND, CheckoutRequest, CheckoutStatus, CheckoutView, ExtendInput

log = logging.getLogger(__name__)
router = APIRouter(prefix=CHECKOUTS_PATH, tags=["checkouts"])

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
    body: CheckoutBody, idempotency_key: IdempotencyKey, state: StateDep, caller: CallerDep, http: Request
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
        # Sold-out answers are normally given before routing (api/sold_out.py), which hands on the attempt it
        # looked at; the rest is for when the lane could not look.
        looked = looked_at(http.scope)
        try:
            attempt = looked or attempt_of(state.settings, body, idempotency_key)
        except ProblemError:
            outcome = "invalid"
            raise
        bind_checkout(attempt.checkout_id)  # every later log line of this request carries the checkout id
        request, cid, digest = attempt.request, attempt.checkout_id, attempt.digest
        if looked is None and (view := await sold_out_view(state, attempt)) is not None:
            outcome = view.status.value.lower()
            state.metrics.fast_path_rejections.inc()
            raise not_placed(view)
        await check_resources_exist(state.services, request, state.known_resources)
        client = state.temporal.require()
        await _claim(state, cid, request)
        view = await saga.submit(client, state.settings, cid, request, digest, attempt.hold_seconds)
        if view.request_hash != digest:
            outcome = "key_reused"
            raise ProblemError(
                422, "idempotency-key-reused", "Idempotency-Key reused",
                "this Idempotency-Key was already used with another request body; use a new key for a new checkout",
                checkout_id=cid,
            )
        outcome = view.status.value.lower()
        if view.status not in PLACED:
            raise not_placed(view)
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
            raise conflict(view, "Cannot confirm", f"the checkout is {view.status.value}: {refused.reason}") from None
    state.metrics.observe_action(CONFIRM, view.status.value.lower())
    if view.status != CheckoutStatus.CONFIRMED:
        raise conflict(view, "Cannot confirm", f"the checkout is {view.status.value}")
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
            raise conflict(view, "Cannot cancel", f"the checkout is {view.status.value}: {refused.reason}") from None
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
        raise conflict(refused.view, "Cannot extend",
                        f"the checkout is {refused.view.status.value}: {refused.reason}") from None
    return Checkout.from_view(view)
