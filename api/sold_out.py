"""The sold-out answer, given before routing: a checkout the availability cache shows as short is answered 409
without a saga, and without FastAPI's routing, dependencies and exception layers.

Contract:
- `SoldOutLane` (ASGI middleware, innermost of the app's middlewares) looks at POST /v1/checkouts only. It reads
  the body, and when the request is one the route would accept (the same body model, Idempotency-Key pattern,
  caller and hold_seconds rules, each reused from where it is defined) and the cache shows part of it short
  (`sold_out_view`, the rule the route follows), it answers the route's 409 itself: the same problem body,
  headers, metrics and log binding. Every other request, including every one the route would refuse, goes on to
  the route unchanged (its body replayed), which answers it as before.
- A request the lane looked at and found not sold out carries its `Attempt` on to the route (`looked_at`), so
  the route neither reads the cache nor derives the checkout id and hash a second time; the route still does
  both itself when the lane could not (the lane absent or failed).
- `sold_out_view` decides, for both: see its docstring for the idempotency rule.

Why a lane: in a flash sale nearly every request is a late buyer's 409, and the per-request cost of the framework
layers around a route (routing, dependency solving, exception middleware, the handler lookup) outweighed the
answer's own work (one shared cache read, one batched record lookup).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import fast_path
from api.answers import not_placed
from api.deps import AppState
from api.idempotency import IDEMPOTENCY_KEY_PATTERN, checkout_id, request_hash
from api.identity import bearer_token, caller_of
from api.problems import ProblemError, answer_problem, service_unavailable
from api.schemas import CheckoutBody
from booking_saga.settings import Settings
from services.errors import DatabaseUnavailable, LedgerError
from services.logcontext import bind_checkout
from services.types import Alternative
from workflows.models import CheckoutRequest, CheckoutView

log = logging.getLogger(__name__)

CHECKOUTS_PATH = "/v1/checkouts"
# The scope key of the Attempt the lane read the cache for and found nothing short (`looked_at`).
_LOOKED = "booking_saga.sold_out_looked"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST /v1/checkouts as the saga sees it: the validated request, its checkout id and hash."""

    request: CheckoutRequest
    checkout_id: str
    digest: str
    hold_seconds: int


def attempt_of(settings: Settings, body: CheckoutBody, idempotency_key: str) -> Attempt:
    """The attempt a valid body and key make; a hold_seconds out of the configured bounds is a 422."""
    hold_seconds = settings.hold_seconds_default if body.hold_seconds is None else body.hold_seconds
    if not settings.hold_seconds_min <= hold_seconds <= settings.hold_seconds_max:
        raise ProblemError(
            422, "invalid-request", "Invalid request",
            f"hold_seconds must be between {settings.hold_seconds_min} and {settings.hold_seconds_max}",
        )
    request = body.to_request()
    cid = checkout_id(settings.checkout_id_secret, request.customer_id, idempotency_key)
    return Attempt(request, cid, request_hash(request, hold_seconds), hold_seconds)


def looked_at(scope: Scope) -> Attempt | None:
    """The attempt the lane already found not short for this request, or None when it did not look."""
    attempt = scope.get(_LOOKED)
    return attempt if isinstance(attempt, Attempt) else None


async def sold_out_view(state: AppState, attempt: Attempt) -> CheckoutView | None:
    """The REJECTED answer when the cache shows part of the request short and no saga has this id; else None.

    Idempotency: a key that has a saga gets that saga's answer (submit joins or reads it, and refuses another
    body with 422), even when the cache now shows sold out; every saga's id is recorded before it starts
    (services/started_checkouts.py). The cache is read first and the record only on a hit: a checkout that is
    not sold out pays nothing extra, a sold-out one pays a record lookup instead of a saga. Without a saga
    nothing was ever held under this key, so REJECTED is what a saga would answer now. Nothing is recorded for
    a fast 409: a retry looks again, which can never hold twice (a fast 409 holds nothing) and may find
    inventory released since, as a new attempt should.
    """
    if state.cache is None or state.started is None or not state.services:
        return None
    request = attempt.request
    shortages = await fast_path.cached_shortages(state.cache, request, state.cache_reads)
    if not shortages:
        return None
    # The alternatives are looked up while the saga record is read: a sold-out answer waits for the slower one.
    offered = asyncio.ensure_future(
        fast_path.alternatives(state.services, request, list(shortages), state.alternatives)
    )
    offered.add_done_callback(_retrieve)
    try:
        has_saga = await state.started.has(attempt.checkout_id)
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
    return fast_path.rejected_view(attempt.checkout_id, request, attempt.digest, shortages, await offered)


def _retrieve(task: asyncio.Future[list[Alternative]]) -> None:
    """Mark an abandoned lookup's error as seen: asyncio would log it as never retrieved."""
    if not task.cancelled():
        task.exception()


class SoldOutLane:
    """ASGI middleware: POST /v1/checkouts answered 409 from the cache before routing (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != CHECKOUTS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received, body = await _read_body(receive)
        try:
            answer = await self._answer(scope, body, started)
        except Exception:  # never the client's problem: the route answers instead, as it would without the lane
            log.exception("the sold-out lane failed; the route answers")
            answer = None
        replay = _replaying(received, receive)
        if answer is None:
            await self.app(scope, replay, send)
        else:
            await answer(scope, replay, send)

    async def _answer(self, scope: Scope, body: bytes, started: float) -> Response | None:
        app = scope["app"]
        state: AppState = app.state.booking
        if state.cache is None or state.started is None:
            return None
        attempt = _attempt(scope, body, app, state.settings)
        if attempt is None:
            return None
        bind_checkout(attempt.checkout_id)  # as the route does: later log lines carry the checkout id
        try:
            view = await sold_out_view(state, attempt)
        except ProblemError as problem:
            state.metrics.observe_checkout("unavailable" if problem.status == 503 else "error",
                                           time.perf_counter() - started)
            return answer_problem(scope["path"], problem, state.metrics)
        if view is None:
            scope[_LOOKED] = attempt
            return None
        outcome = view.status.value.lower()
        state.metrics.fast_path_rejections.inc()
        state.metrics.observe_checkout(outcome, time.perf_counter() - started, view)
        log.debug("checkout answered: %s", outcome)
        return answer_problem(scope["path"], not_placed(view), state.metrics)


def _attempt(scope: Scope, body: bytes, app: Starlette, settings: Settings) -> Attempt | None:
    """The attempt, when the route would accept this request as it is; None for anything it would refuse."""
    content_type, keys, authorization = None, [], None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"idempotency-key":
            keys.append(value.decode("latin-1"))
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    if len(keys) != 1 or not _KEY.match(keys[0]) or not _json_body(content_type):
        return None
    try:
        checkout = CheckoutBody.model_validate(json.loads(body))
        caller_of(app, bearer_token(authorization)).check_places_for(checkout.customer_id)
        return attempt_of(settings, checkout, keys[0])
    # The route answers these (json.JSONDecodeError is a ValueError; RecursionError: absurdly deep JSON).
    except (ValueError, RecursionError, ValidationError, ProblemError):
        return None


def _json_body(content_type: str | None) -> bool:
    """Whether FastAPI reads this body as JSON: no content type, application/json or application/*+json."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """Every message up to the end of the body (or a disconnect), and the body."""
    received: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return received, b"".join(chunks)


def _replaying(received: list[Message], receive: Receive) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    """A `receive` that gives the messages already read again, then the client's next ones."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
