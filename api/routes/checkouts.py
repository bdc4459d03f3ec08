"""Checkouts: create (Update-with-Start), read, confirm, cancel, extend."""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request

from api import admission
from api.auth import is_operator
from api.deps import StateDep
from api.idempotency import CHECKOUT_ID_PATTERN, IDEMPOTENCY_KEY_PATTERN
from api.identity import CallerDep, CallerOrOperatorDep, auth_docs, check_may_change, forbidden, read_checkout
from api.ledger_errors import ledger_problems
from api.problems import ProblemError, problem_docs, service_unavailable
from api.schemas import CancelBody, Checkout, CheckoutBody, CheckoutList, CheckoutProblem, ExtendBody, HoldLimitProblem
from checkouts import bookings, saga
from checkouts.answers import conflict
from checkouts.parts import cancellable_parts
from services.bookings.records import PAGE_MAX
from services.logcontext import bind_checkout
from services.types import IDENTIFIER_PATTERN
from workflows.models import CANCEL, CONFIRM, EXTEND, CheckoutStatus, ExtendInput

log = logging.getLogger(__name__)
router = APIRouter(prefix=admission.CHECKOUTS_PATH, tags=["checkouts"])

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
    # The whole admission (attempt, sold-out answer, prechecks, claim, Update-with-Start) is api/admission.py's.
    return Checkout.from_view(await admission.admit(state, http.scope, body, idempotency_key, caller))


@router.get("", response_model=CheckoutList, summary="List checkouts, newest first", operation_id="list_checkouts",
            responses=problem_docs(403, 422, 503) | auth_docs("customer_id names another customer."))
async def list_checkouts(
    state: StateDep,
    caller: CallerOrOperatorDep,
    http: Request,
    customer_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, description="Whose checkouts. Under "
                                             "CUSTOMER_AUTH=jwt a customer's own by default; the operator may "
                                             "name anyone or no one (everyone's).")] = None,
    status: Annotated[list[CheckoutStatus] | None, Query(description="Only these statuses (repeatable).")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")] = None,
) -> CheckoutList:
    """A customer's checkouts from their booking records, newest first, a page at a time (keyset paging: a page
    costs the same however deep, and checkouts added meanwhile never shift the next page)."""
    whose = customer_id
    if caller.kind == "customer":
        if whose is not None and whose != caller.customer_id:
            raise forbidden("a customer lists its own checkouts only")
        whose = caller.customer_id
    elif caller.kind == "anyone" and whose is None and not is_operator(state, http):
        raise ProblemError(422, "invalid-request", "Invalid request",
                           "customer_id is required (the operator token lists everyone's)")
    if state.records is None:
        raise service_unavailable("checkout records need the database", dependency="database")
    with ledger_problems("checkout records"):
        page = await state.records.page(whose, [s.value for s in status or []], limit, cursor)
    return CheckoutList(
        checkouts=[Checkout.from_view(bookings.record_view(r)) for r in page.records], next_cursor=page.next_cursor
    )


@router.get("/{checkout_id}", response_model=Checkout, summary="Read a checkout", operation_id="get_checkout",
            responses=problem_docs(404, 409, 503) | auth_docs())
async def get_checkout(checkout_id: CheckoutId, state: StateDep, caller: CallerOrOperatorDep) -> Checkout:
    """The checkout now: status, holds, `expires_at` while HELD, and the history of its status changes."""
    checkout_id = _valid_id(checkout_id)
    bind_checkout(checkout_id)
    return Checkout.from_view(await read_checkout(caller, state.temporal.require(), checkout_id, state.records))


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
    await check_may_change(caller, state.temporal, checkout_id, CONFIRM, state.records)
    try:
        # A settled checkout's record answers (its workflow may be gone): CONFIRMED again, or why not.
        settled = bookings.settled_view(await bookings.load(state.records, checkout_id))
        if settled is not None:
            raise saga.RefusedUpdate(settled, "the checkout is closed")
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
    summary="Cancel a checkout, a sale, or some of its parts",
    responses=problem_docs(
        400, 404, 409, 422, 503,
        s409=(CheckoutProblem, "A part's cancellation window has closed (`cancel-window-closed`, naming the parts; "
              "nothing was cancelled), or the checkout cannot be cancelled in its state."),
    ) | auth_docs(),
)
async def cancel_checkout(
    checkout_id: CheckoutId, state: StateDep, caller: CallerOrOperatorDep, body: CancelBody | None = None
) -> Checkout:
    """Release a HELD checkout's holds, or give a CONFIRMED sale back to stock (every part, or only `parts`, named
    by their checkout-body fields). Repeatable: a cancelled checkout or part answers 200 again with the checkout.
    A sale's part past its cancellation window: 409 `cancel-window-closed`, nothing returned."""
    checkout_id = _valid_id(checkout_id)
    bind_checkout(checkout_id)
    wanted = cancellable_parts(body)
    await check_may_change(caller, state.temporal, checkout_id, CANCEL, state.records)
    try:
        view = await bookings.cancel(state.temporal.require(), state.settings, state.records, checkout_id, wanted)
    except ProblemError as problem:
        if problem.status == 409:
            state.metrics.observe_action(CANCEL, "refused")
        raise
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
    await check_may_change(caller, state.temporal, checkout_id, EXTEND, state.records)
    client = state.temporal.require()
    try:
        view = await saga.update(client, checkout_id, EXTEND, ExtendInput(seconds=body.seconds))
    except saga.RefusedUpdate as refused:
        raise conflict(refused.view, "Cannot extend",
                        f"the checkout is {refused.view.status.value}: {refused.reason}") from None
    return Checkout.from_view(view)
