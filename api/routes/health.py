"""Liveness, readiness per dependency, and Prometheus metrics.

/readyz is public: its details say which dependency is down in words of its own, never a driver's message, an
address or a port (the API's log has those, one line per failed check).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import AppState, StateDep
from api.schemas import DependencyCheck, Liveness, Readiness
from services.unavailable import describe, is_database_unavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", response_model=Liveness, summary="Liveness")
async def healthz() -> Liveness:
    """The process answers. Says nothing about dependencies: see /readyz."""
    return Liveness()


async def _check_temporal(state: AppState) -> DependencyCheck:
    client = state.temporal.client
    if client is None:
        state.metrics.dependency_errors.labels(dependency="temporal").inc()
        log.warning("readiness: Temporal: %s", state.temporal.last_error or "not connected")
        return DependencyCheck(ok=False, detail="cannot reach Temporal (the API's log says why)")
    try:
        await asyncio.wait_for(client.service_client.check_health(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready", with its reason in the log
        state.metrics.dependency_errors.labels(dependency="temporal").inc()
        log.warning("readiness: Temporal's health check failed: %s: %s", type(exc).__name__, exc)
        return DependencyCheck(ok=False, detail="Temporal's health check failed (the API's log says why)")
    return DependencyCheck(ok=True, detail="Temporal answers")


async def _check_database(state: AppState) -> DependencyCheck:
    if state.engine is None:
        return DependencyCheck(ok=False, detail="DATABASE_URL is not set")
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the classification says whether it is an outage
        state.metrics.dependency_errors.labels(dependency="database").inc()
        log.warning("readiness: PostgreSQL: %s", describe(exc))
        if is_database_unavailable(exc):
            return DependencyCheck(ok=False, detail="PostgreSQL is unavailable (the API's log says why)")
        return DependencyCheck(ok=False, detail="PostgreSQL check failed (the API's log says why)")
    return DependencyCheck(ok=True, detail="PostgreSQL answers")


async def _check_redis(state: AppState) -> DependencyCheck:
    # Redis is only a hint: without it the API is still ready (see readyz), just without the sold-out fast path.
    cache = state.cache
    if cache is None:
        return DependencyCheck(ok=True, detail="not configured (no availability cache)")
    budget_ms = round(cache.budget_seconds * 1000)
    # The same budget as every cache call: a Redis too slow for checkouts is degraded for readiness too.
    if not await cache.ping():
        state.metrics.dependency_errors.labels(dependency="redis").inc()
        return DependencyCheck(
            ok=False, detail=f"degraded: Redis does not answer within {budget_ms} ms; checkouts skip the cache"
        )
    return DependencyCheck(ok=True, detail="Redis answers")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness, per dependency",
    responses={503: {"model": Readiness, "description": "A required dependency (Temporal, PostgreSQL) is down."}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when Temporal and PostgreSQL answer. Redis is reported (`ok` false = degraded) but never makes
    the API unready: it is a cache, and checkouts work without it."""
    temporal, database, redis = await asyncio.gather(
        _check_temporal(state), _check_database(state), _check_redis(state)
    )
    readiness = Readiness(
        ready=temporal.ok and database.ok,
        checks={"temporal": temporal, "database": database, "redis": redis},
    )
    return JSONResponse(readiness.model_dump(mode="json"), status_code=200 if readiness.ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format."}},
)
async def metrics(state: StateDep) -> Response:
    """Checkouts by outcome, answer latency, holds by service and outcome, dependency errors."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
