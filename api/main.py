"""The app factory: `uvicorn --factory api.main:create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.deps import AppState
from api.identity import install_identity
from api.metrics import Metrics
from api.openapi import DESCRIPTION, TAGS, install_openapi
from api.problems import install_problem_handlers
from api.routes import availability, catalogue, checkouts, demo, health, operators
from api.sold_out import SoldOutLane
from api.temporal_link import TemporalLink
from booking_saga.settings import Settings, get_settings
from booking_saga.tracing import instrument_app
from services.cache import AvailabilityCache

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.booking
    settings = state.settings
    await state.temporal.start()
    if settings.redis_url:
        # Building it does not connect: an unreachable Redis only means "no fast path" until it answers.
        state.cache = AvailabilityCache.from_settings(settings, registry=state.metrics.registry)
    if settings.database_url:
        from services.customer_limits import CustomerLimits, claim_lifetime
        from services.db import Engines
        from services.started_checkouts import StartedCheckouts

        state.engines = Engines(settings.database_url, settings.participant_database_urls)
        state.engine = state.engines.default
        # The cache as sink: the API's own capacity upserts publish their rows, as the workers' holds do.
        state.services = state.engines.services(sink=state.cache)
        state.started = StartedCheckouts(state.engine)
        state.limits = CustomerLimits(
            state.engine, settings.customer_active_checkouts_max, settings.customer_units_max,
            claim_lifetime(settings.hold_lifetime_max_seconds, settings.sweeper_grace_seconds),
        )
    try:
        yield
    finally:
        await state.temporal.close()
        if state.cache is not None:
            await state.cache.aclose()
        if state.engines is not None:
            await state.engines.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.operator_token:
        raise RuntimeError(
            "OPERATOR_TOKEN is not set: the API refuses to start without an operator token "
            "(`booking-saga dev` generates one)"
        )
    app = FastAPI(
        title="booking-saga",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.booking = AppState(settings=settings, metrics=Metrics(), temporal=TemporalLink(settings))
    install_identity(app, settings)
    install_problem_handlers(app)
    install_openapi(app)
    # Added first, so it is the innermost middleware: CORS and tracing wrap its answers like the routes'.
    app.add_middleware(SoldOutLane)
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
    app.include_router(health.router)
    app.include_router(demo.router)
    instrument_app(app)  # a no-op unless tracing is on (booking_saga/tracing.py)
    return app
