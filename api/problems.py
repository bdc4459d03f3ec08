"""RFC 9457 problem+json: the one error shape every route answers with.

Routes raise `ProblemError` (checkouts/problems.py, re-exported here: the checkout calls below the API raise it
too); the handlers installed by `install_problem_handlers` turn it, FastAPI's validation errors and Starlette's
HTTP errors into `application/problem+json` responses. This module is the HTTP side only.

A dependency that is down is a 503 with Retry-After, never a 500: routes raise `service_unavailable(...,
dependency=...)`, and any database-unavailable error that still escapes a route (services/unavailable.py decides
which) or a Busy ledger error is answered the same way by a last-line handler. Every 503 problem is counted in
`booking_saga_unavailable_answers_total{dependency}`.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from sqlalchemy.exc import EmulatedDBAPIException, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.metrics import Metrics
from checkouts.problems import ProblemError, service_unavailable
from services.errors import Busy, DatabaseUnavailable, LedgerError
from services.unavailable import describe, is_database_unavailable

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Problem `type` URIs: stable identifiers a client can switch on (they need not resolve).
TYPE_BASE = "https://booking-saga.dev/problems/"
# Every kind a route answers with (the `type` enum in the OpenAPI document): a new kind is added here.
PROBLEM_KINDS = (
    "invalid-request", "unreadable-body", "unknown-resource", "idempotency-key-reused", "hold-limit",
    "checkout-not-found", "checkout-conflict", "checkout-rejected", "checkout-failed", "checkout-unreadable",
    "not-found", "method-not-allowed", "unauthorized", "forbidden", "temporarily-unavailable",
    "database-unavailable", "database-busy", "temporal-unavailable", "internal-error",
    "body-too-large", "duplicate-header", "rate-limited",
    "mixed-currencies", "unpriced-line", "nothing-to-pay", "cancel-window-closed",
)
PROBLEM_TYPES: list[JsonValue] = [TYPE_BASE + kind for kind in PROBLEM_KINDS]
PROBLEM_TYPES.append("about:blank")  # Starlette's errors this app gives no kind of its own
# FastAPI's answer to a body it cannot read at all (not UTF-8, a number past Python's digit limit).
_UNREADABLE_BODY = "There was an error parsing the body"

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """An error, as RFC 9457 describes it. Some problems add members (see the specific schemas)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="A URI that identifies the kind of problem.", examples=[TYPE_BASE + "not-found"],
        json_schema_extra={"enum": PROBLEM_TYPES},
    )
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, in words.")
    instance: str | None = Field(default=None, description="The request path.")


class FieldError(BaseModel):
    location: str = Field(description="Where the bad value is: 'body.flight.seats', 'header.Idempotency-Key'.")
    message: str


class ValidationProblem(Problem):
    """The request is malformed or breaks a rule; `errors` lists every bad field."""

    errors: list[FieldError] = Field(default_factory=list)


def problem_response(
    request: Request,
    status: int,
    kind: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extras: Any,
) -> JSONResponse:
    return _problem_json(request.url.path, status, kind, title, detail, headers, **extras)


def _problem_json(
    path: str, status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None, **extras: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind if kind != "about:blank" else kind,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": path,
        **extras,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def answer_problem(path: str, problem: ProblemError, metrics: Metrics | None) -> JSONResponse:
    """The response for `problem` raised while answering a request for `path`: what the installed handler
    answers, for code that answers before routing (api/sold_out.py)."""
    extras = dict(problem.extras)
    if problem.status == 503 and problem.dependency is not None:
        if metrics is not None:
            metrics.unavailable_answers.labels(dependency=problem.dependency).inc()
        extras.setdefault("dependency", problem.dependency)
    return _problem_json(path, problem.status, problem.kind, problem.title, problem.detail, problem.headers, **extras)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _readable(error: dict[str, Any]) -> str:
    """One validation error in words, e.g. "body.flight.seats: Input should be greater than or equal to 1"."""
    loc = error.get("loc", ())
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return f"the body is not valid JSON ({reason})"
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes messages raised in validators with "Value error, ": the rest is the readable part.
    message = message.removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "is required"
    if loc and loc[0] == "header" and error.get("type") == "string_pattern_mismatch":
        message = "must be 1 to 128 of A-Z a-z 0-9 . _ : -"
    return f"{_location(loc)}: {message}" if loc else message


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    # The app's Metrics live on its state (api/deps.py AppState); an app without them (a bare test app) counts nothing.
    metrics = getattr(getattr(request.app.state, "booking", None), "metrics", None)
    return answer_problem(request.url.path, exc, metrics if isinstance(metrics, Metrics) else None)


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    """The last line of defence for a database error that escaped its route untranslated, or a Busy ledger
    error nobody mapped: PostgreSQL is unavailable or busy, which is a 503, not a 500. Anything else of these
    types is unexpected and answered as such."""
    if is_database_unavailable(exc) or isinstance(exc, Busy):
        # An outage is expected and already visible in /readyz and the counter: one line, no traceback.
        unavailable = is_database_unavailable(exc)
        state = "unavailable" if unavailable else "busy"
        problem = (DatabaseUnavailable if unavailable else Busy).problem  # the error table: services/errors.py
        log.warning("database %s on %s %s: %s", state, request.method, request.url.path, describe(exc))
        return await _on_problem(request, service_unavailable(
            f"the database is {state}; retry the same request", dependency="database",
            kind=problem.escaped_kind or problem.kind,
        ))
    return await _on_unexpected(request, exc)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    # A missing or malformed Idempotency-Key is a 400, as the IETF Idempotency-Key draft asks;
    # everything else wrong with a request is 422.
    header_errors = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("header",)]
    shown = header_errors or errors
    status = 400 if header_errors else 422
    fields = [FieldError(location=_location(e.get("loc", ())), message=_readable(e)) for e in shown]
    detail = "; ".join(f.message for f in fields) or "the request is invalid"
    title = "Bad request header" if header_errors else "Invalid request"
    return problem_response(
        request, status, "invalid-request", title, detail,
        errors=[f.model_dump() for f in fields],
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kinds = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 400 and detail == _UNREADABLE_BODY:
        kinds[400] = "unreadable-body"
        detail = "the body cannot be read: send UTF-8 JSON (numbers of at most 4300 digits)"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"there is nothing at {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path; one resource may be served by two routes
        # (a public read and an operator's write on one path, e.g. an account): name every method the path has.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(
        request, exc.status_code, kinds.get(exc.status_code, "about:blank"),
        _title(exc.status_code), detail, headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Never expected: every known failure is mapped to a specific problem. Still answer in the same shape.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "internal-error", "Internal error", "an unexpected error occurred")


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Registered per class, not under Exception: Starlette re-raises what the Exception handler answered (the
    # server then logs it as a crash), while these are answered and done.
    for database_error in (LedgerError, SQLAlchemyError, EmulatedDBAPIException, asyncpg.PostgresError,
                           asyncpg.InterfaceError, OSError):
        app.add_exception_handler(database_error, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)


_DESCRIPTIONS = {
    400: "The request cannot be read: a body that is not UTF-8 JSON (`unreadable-body`), or on POST /v1/checkouts "
    "a missing or malformed Idempotency-Key header.",
    401: "No operator token, or the wrong one.",
    404: "No such resource.",
    409: "The checkout is not in a state that allows this.",
    422: "The body or a parameter is invalid; `errors` lists each problem.",
    413: "The request body is larger than MAX_BODY_BYTES (`body-too-large`).",
    429: "Too many requests from this caller (`rate-limited`, see Retry-After), or on POST /v1/checkouts a "
    "per-customer hold limit would be passed (`hold-limit`): nothing was held.",
    503: "A dependency (Temporal, the database) is unreachable: retry after Retry-After seconds.",
}


def problem_docs(*statuses: int, **overrides: tuple[type[Problem], str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problems a route can answer with.

    `overrides` maps "s409" style names to (schema, description) for problems with extra members.
    The media type is switched to application/problem+json for the whole document in api/openapi.py.
    """
    docs: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model: type[Problem] = ValidationProblem if status in (400, 422) else Problem
        description = _DESCRIPTIONS.get(status, "An error.")
        if f"s{status}" in overrides:
            model, description = overrides[f"s{status}"]
        entry: dict[str, Any] = {"model": model, "description": description}
        if status == 503:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
        docs[status] = entry
    return docs
