"""The sold-out answer, given before routing: a checkout the availability cache shows as short is answered 409
without a saga, and without FastAPI's routing, dependencies and exception layers. An adapter: what a checkout's
attempt is and when it is sold out are api/admission.py's.

Contract:
- `SoldOutLane` (ASGI middleware, innermost of the app's middlewares; and, for a request no middleware but the
  guard would change, in front of them all: api/main.py `BookingApi`) looks at POST /v1/checkouts only. It reads
  the body, and when the request is one the route would accept (the same body model, Idempotency-Key pattern,
  caller, and the attempt built by `admission.attempt_of`) and the cache shows part of it short
  (`admission.sold_out_view`, the rule the route follows), it answers the route's 409 itself: the same problem
  body, headers, metrics and log binding. Every other request, including every one the route would refuse, goes
  on to the route unchanged (its body replayed), which answers it as before.
- A request the lane looked at and found not sold out carries its `Attempt` on to the route
  (`admission.hand_on`), and its caller (api/identity.py `request_caller`), so the route neither reads the cache
  nor identifies the caller, checks whom it places for, or derives the checkout id, hash and rows a second time;
  the route still does all that itself (in `admission.admit`) when the lane could not (the lane absent or failed).

Why a lane: in a flash sale nearly every request is a late buyer's 409, and the per-request cost of the framework
layers around a route (routing, dependency solving, exception middleware, the handler lookup) outweighed the
answer's own work (one shared cache read, one batched record lookup).
"""

from __future__ import annotations

import json
import logging
import re
import time

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api import admission
from api.deps import AppState
from api.guard import FRONT_PASSED, read_body, replaying
from api.idempotency import IDEMPOTENCY_KEY_PATTERN
from api.identity import bearer_token, request_caller
from api.problems import ProblemError, answer_problem
from api.schemas import CheckoutBody
from checkouts.answers import not_placed
from settings import Settings

log = logging.getLogger(__name__)

_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class SoldOutLane:
    """ASGI middleware: POST /v1/checkouts answered 409 from the cache before routing (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != admission.CHECKOUTS_PATH
                or FRONT_PASSED in scope):  # the front's lane looked already
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received, body = await read_body(receive)  # at most MAX_BODY_BYTES: api/guard.py runs first
        try:
            answer = await self._answer(scope, body, started)
        except Exception:  # never the client's problem: the route answers instead, as it would without the lane
            log.exception("the sold-out lane failed; the route answers")
            answer = None
        replay = replaying(received, receive)
        if answer is None:
            await self.app(scope, replay, send)
        else:
            await answer(scope, replay, send)

    async def _answer(self, scope: Scope, body: bytes, started: float) -> Response | None:
        app = scope["app"]
        state: AppState = app.state.booking
        if state.cache is None or state.started is None:
            return None
        attempt = _attempt(scope, body, app, state.settings)  # binds the checkout id to the later log lines
        if attempt is None:
            return None
        try:
            view = await admission.sold_out_view(state, attempt)
        except ProblemError as problem:
            state.metrics.observe_checkout("unavailable" if problem.status == 503 else "error",
                                           time.perf_counter() - started)
            return answer_problem(scope["path"], problem, state.metrics)
        if view is None:
            admission.hand_on(scope, attempt)
            return None
        outcome = view.status.value.lower()
        state.metrics.fast_path_rejections.inc()
        state.metrics.observe_checkout(outcome, time.perf_counter() - started, view)
        log.debug("checkout answered: %s", outcome)
        return answer_problem(scope["path"], not_placed(view), state.metrics)


def _attempt(scope: Scope, body: bytes, app: Starlette, settings: Settings) -> admission.Attempt | None:
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
        customer = request_caller(scope, bearer_token(authorization)).check_places_for(checkout.customer_id)
        return admission.attempt_of(settings, checkout, keys[0], customer)
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
