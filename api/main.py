"""The app factory: `uvicorn --factory api.main:create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.deps import AppState
from api.metrics import Metrics
from api.openapi import DESCRIPTION, TAGS, install_openapi
from api.problems import install_problem_handlers
from api.routes import availability, checkouts, health, operators
from api.temporal_link import TemporalLink
from booking_saga.settings import Settings, get_settings
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
        from services.db import create_engine
        from services.registry import build_services
        from services.started_checkouts import StartedCheckouts

        state.engine = create_engine(settings.database_url)
        # The cache as sink: the API's own capacity upserts publish their rows, as the workers' holds do.
        state.services = dict(build_services(state.engine, sink=state.cache))
        state.started = StartedCheckouts(state.engine)
    try:
        yield
    finally:
        await state.temporal.close()
        if state.cache is not None:
            await state.cache.aclose()
        if state.engine is not None:
            await state.engine.dispose()


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
    install_problem_handlers(app)
    install_openapi(app)
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
    app.include_router(operators.router)
    app.include_router(health.router)
    return app
