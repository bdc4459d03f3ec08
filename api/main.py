"""The app factory: `uvicorn --factory api.main:create_app`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.admission import CHECKOUTS_PATH
from api.deps import AppState
from api.guard import FRONT_PASSED, RequestGuard
from api.identity import install_identity
from api.metrics import Metrics
from api.openapi import DESCRIPTION, TAGS, install_openapi
from api.precheck import shared_prices
from api.problems import install_problem_handlers
from api.rate_limit import RateLimiter
from api.routes import availability, catalogue, checkouts, codec, demo, events, health, operators
from api.sold_out import SoldOutLane
from api.temporal_link import TemporalLink
from runtime.tracing import instrument_app
from services.cache import AvailabilityCache
from settings import Settings, get_settings, start_checks

log = logging.getLogger(__name__)

# uvicorn's settings for the API process (`booking-saga api`): the C HTTP parser and event loop, no access log.
# The bench's bare ASGI floor (bench/scenarios/http_floor.py) runs under the very same ones.
SERVER_OPTIONS: dict[str, Any] = {"log_level": "warning", "http": "httptools", "loop": "uvloop", "log_config": None}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.booking
    settings = state.settings
    await state.temporal.start()
    state.rate_limiter = RateLimiter.from_settings(settings, state.metrics.rate_limit_unchecked)
    if settings.redis_url:
        # Building it does not connect: an unreachable Redis only means "no fast path" until it answers.
        state.cache = AvailabilityCache.from_settings(settings, registry=state.metrics.registry)
    if settings.database_url:
        from services.bookings.records import BookingRecords
        from services.customer_limits import CustomerLimits, claim_lifetime
        from services.db import Engines
        from services.started_checkouts import StartedCheckouts

        state.engines = Engines(settings.database_url, settings.participant_database_urls)
        state.engine = state.engines.default
        # Anonymous reads on a pool of their own: a flood of them queues there, not for a checkout's connection.
        state.read_engines = Engines(settings.database_url, settings.participant_database_urls,
                                     pool_size=settings.read_pool_size)
        state.read_services = state.read_engines.services()
        # The cache as sink: the API's own capacity upserts publish their rows, as the workers' holds do.
        state.services = state.engines.services(sink=state.cache)
        state.started = StartedCheckouts(state.engine)
        state.records = BookingRecords(state.engine, settings.booking_records_keep_days)
        state.limits = CustomerLimits(
            state.engine, settings.customer_active_checkouts_max, settings.customer_units_max,
            claim_lifetime(settings.hold_lifetime_max_seconds, settings.sweeper_grace_seconds),
        )
    # What startup built (modules, models, clients, pools) lives as long as the process: kept out of the cyclic
    # collector's passes, which would otherwise walk all of it again and again under a flood of small requests.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        await state.temporal.close()
        if state.cache is not None:
            await state.cache.aclose()
        if state.rate_limiter is not None:
            await state.rate_limiter.aclose()
        if state.engines is not None:
            await state.engines.dispose()
        if state.read_engines is not None:
            await state.read_engines.dispose()


# The middlewares that leave a POST /v1/checkouts without an Origin header as it is, and its answer too: with only
# these in the stack, the guard and the sold-out lane may answer it in front of them all.
_FRONT_SAFE = frozenset({SoldOutLane, RequestGuard, codec.CodecCors})


class BookingApi(FastAPI):
    """FastAPI with the sold-out lane in front: a POST /v1/checkouts passes the request guard and the lane before
    the framework's own layers (its error, telemetry and body-limit middlewares) and the other middlewares.

    Why: in a flash sale nearly every request is a late buyer's 409, and each layer a request and its answer pass
    through costs every one of them. The front is the stack's own order for such a request, minus layers that
    would not change it: it is used only when every middleware is one that lets it through untouched (the shop's
    CORS adds `Vary: Origin` even without an Origin, so with CORS configured there is no front), without a root
    path, FastAPI's own body limit or telemetry, or the tracing instrumentation; an unexpected error still gets the
    app's 500. A request the lane does not answer goes on through the whole stack, its guard and lane letting it
    through.
    """

    _front: ASGIApp | None = None
    _front_built = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == CHECKOUTS_PATH and scope["method"] == "POST"
                and (front := self._front_for(scope)) is not None):
            scope["app"] = self
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _front_for(self, scope: Scope) -> ASGIApp | None:
        if not self._front_built:  # built on the first request, as the middleware stack is
            self._front, self._front_built = self._build_front(), True
        if self._front is None or self.root_path or self._native_telemetry.enabled():
            return None
        if any(name == b"origin" for name, _ in scope["headers"]):
            return None
        return self._front

    def _build_front(self) -> ASGIApp | None:
        kinds = {m.cls for m in self.user_middleware}
        if not kinds <= _FRONT_SAFE or SoldOutLane not in kinds or RequestGuard not in kinds:
            return None
        if getattr(self, "_is_instrumented_by_opentelemetry", False):  # runtime/tracing.py: every request a span
            return None
        if self.max_body_size is not None:  # FastAPI's own body limit would read every body: the guard's is ours
            return None
        error_handler = None
        for key, value in self.exception_handlers.items():  # the one Starlette gives its own error middleware
            if key in (500, Exception):
                error_handler = value
        lane = SoldOutLane(self._behind_front)
        # The stack's guard is built from the app's settings (create_app) too.
        state: AppState = self.state.booking
        return ServerErrorMiddleware(RequestGuard(lane, settings=state.settings), handler=error_handler,
                                     debug=self.debug)

    async def _behind_front(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[FRONT_PASSED] = True
        await super().__call__(scope, receive, send)


NO_FRAMEWORK_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    start_checks(settings, "api")  # UnsafeSettings (a RuntimeError) names what is unsafe, unless ALLOW_INSECURE
    app = BookingApi(
        title="booking-saga",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Tracing is runtime/tracing.py's (OTEL_EXPORTER_OTLP_ENDPOINT, the instrumentation's server span). FastAPI's
        # own telemetry stays off: on, it asks OpenTelemetry's global providers on every request whether one is
        # set, some of every sold-out answer's CPU, and with tracing on it would make spans of its own beside those.
        telemetry=NO_FRAMEWORK_TELEMETRY,
    )
    app.state.booking = AppState(
        settings=settings, metrics=Metrics(), temporal=TemporalLink(settings),
        prices=shared_prices(settings.price_check_seconds) if settings.price_check_seconds > 0 else None,
    )
    install_identity(app, settings)
    install_problem_handlers(app)
    install_openapi(app)
    # Added first, so it is the innermost middleware: CORS and tracing wrap its answers like the routes'. Where
    # nothing would wrap them, it also answers in front of the stack (BookingApi).
    app.add_middleware(SoldOutLane)
    # Outside the lane (which reads the body) and the routes: sizes, duplicate headers and rate limits first.
    app.add_middleware(RequestGuard, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Nothing rides on cookies: the operator token is an explicit header, so no credentials mode.
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After"],
        )
    app.include_router(checkouts.router)
    app.include_router(availability.router)
    app.include_router(catalogue.router)
    app.include_router(availability.operator_router)
    app.include_router(operators.router)
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(demo.router)
    app.include_router(codec.router)
    # Last, so outermost: the codec server's CORS (the Temporal UIs' origins) answers before the shop's CORS.
    app.add_middleware(codec.CodecCors, settings=settings)
    instrument_app(app)  # a no-op unless tracing is on (runtime/tracing.py)
    return app
