"""What every request passes before anything routes it or reads its body: `RequestGuard`, an ASGI middleware
outside the sold-out lane (api/sold_out.py) and the routes, inside CORS (so a browser can read its refusals).

Contract, in this order, each refusal a problem+json:
- Two `Authorization` or two `Idempotency-Key` headers: 400 (`duplicate-header`). Code that reads a header
  reads its first or its last copy; with one copy allowed, every reader sees the same value.
- A `Content-Length` over MAX_BODY_BYTES: 413 (`body-too-large`) at once, nothing of the body read; a
  malformed one: 400.
- Over the caller's rate limit (api/rate_limit.py): 429 (`rate-limited`) with Retry-After. /healthz is never
  limited (a liveness probe must not fail because its address is busy).
- A body sent without a length (chunked): read up to MAX_BODY_BYTES, then 413 as soon as it passes that, before
  the rest is read; a body within the limit is handed on unchanged (`replaying`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AppState
from api.identity import InvalidToken, request_caller
from api.problems import ProblemError, answer_problem
from api.rate_limit import Network, caller_key, parse_networks
from runtime.codec import CODEC_PREFIX
from settings import Settings

UNLIMITED_PATHS = frozenset({"/healthz"})
# The codec server (api/routes/codec.py): the Temporal UI sends one decode per history event it shows, and every
# call there needs the operator token or the UI's path key, so an operator's page is never refused half-decoded.
UNLIMITED_PREFIXES = (CODEC_PREFIX + "/",)
_SINGLE = {b"authorization": "Authorization", b"idempotency-key": "Idempotency-Key"}
# Set on a request the app's front (api/main.py `BookingApi`) already guarded and showed the sold-out lane: the
# guard and the lane in the middleware stack behind it let it through, so nothing is checked or counted twice.
FRONT_PASSED = "booking_saga.front_passed"


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int | None = None) -> tuple[list[Message], bytes]:
    """Every message up to the end of the body (or a disconnect), and the body; BodyTooLarge as soon as the body
    passes `limit` bytes."""
    received: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return received, b"".join(chunks)


def replaying(received: list[Message], receive: Receive) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    """A `receive` that gives the messages already read again, then the client's next ones."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def too_large(limit: int) -> ProblemError:
    return ProblemError(413, "body-too-large", "Request body too large",
                        f"the request body may be at most {limit} bytes", max_bytes=limit)


def bad_header(detail: str) -> ProblemError:
    return ProblemError(400, "duplicate-header", "Bad request header", detail)


class RequestGuard:
    """ASGI middleware: duplicate headers, body size and rate limits (see the module)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.operator_token = settings.operator_token
        self.proxies: tuple[Network, ...] = parse_networks(settings.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or FRONT_PASSED in scope:
            await self.app(scope, receive, send)
            return
        state: AppState = scope["app"].state.booking
        counts: dict[bytes, int] = {}
        authorization: str | None = None
        lengths: list[bytes] = []
        forwarded: list[str] = []
        chunked = False
        for name, value in scope["headers"]:
            if name in _SINGLE:
                counts[name] = counts.get(name, 0) + 1
                if name == b"authorization":
                    authorization = value.decode("latin-1")
            elif name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        problem = self._header_problem(counts, lengths)
        limited = scope["path"] not in UNLIMITED_PATHS and not scope["path"].startswith(UNLIMITED_PREFIXES)
        if problem is None and limited:
            problem = await self._rate_problem(scope, state, authorization, forwarded)
        if problem is not None:
            await answer_problem(scope["path"], problem, state.metrics)(scope, receive, send)
            return
        if chunked:
            try:
                received, _body = await read_body(receive, self.max_body)
            except BodyTooLarge:
                await answer_problem(scope["path"], too_large(self.max_body), state.metrics)(scope, receive, send)
                return
            receive = replaying(received, receive)
        await self.app(scope, receive, send)

    def _header_problem(self, counts: dict[bytes, int], lengths: list[bytes]) -> ProblemError | None:
        for name, count in counts.items():
            if count > 1:
                return bad_header(f"send one {_SINGLE[name]} header, not {count}")
        if lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                return ProblemError(400, "invalid-request", "Bad request header",
                                    "Content-Length must be one non-negative integer")
            if int(lengths[0]) > self.max_body:
                return too_large(self.max_body)
        return None

    async def _rate_problem(self, scope: Scope, state: AppState, authorization: str | None,
                            forwarded: list[str]) -> ProblemError | None:
        limiter = state.rate_limiter
        if limiter is None:
            return None
        client = scope.get("client")
        kind, key = caller_key(
            authorization, client[0] if client else "", forwarded, operator_token=self.operator_token,
            customer_of=None if scope["app"].state.customer_tokens is None else functools.partial(_customer_of, scope),
            proxies=self.proxies,
        )
        verdict = await limiter.check(key)
        if verdict.allowed:
            return None
        state.metrics.rate_limited.labels(caller=kind).inc()
        return ProblemError(
            429, "rate-limited", "Too many requests",
            f"more than {limiter.rate:g} requests per second (bursts of {limiter.item.amount}); retry after "
            f"{verdict.retry_after} s", headers={"Retry-After": str(verdict.retry_after)},
        )


def _customer_of(scope: Scope, token: str) -> str:
    """The customer a token names, identified once for the whole request (api/identity.py `request_caller`: the
    sold-out lane and the route reuse it); InvalidToken when it is refused."""
    try:
        caller = request_caller(scope, token)
    except ProblemError as refused:
        raise InvalidToken(refused.detail) from None
    return caller.customer_id
