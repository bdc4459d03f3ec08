"""FastAPI dependencies: what routes get from the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.fast_path import SharedLookups, shared_alternatives, shared_reads
from api.metrics import Metrics
from api.precheck import KnownResources
from api.temporal_link import TemporalLink
from booking_saga.settings import Settings
from services.cache import AvailabilityCache
from services.customer_limits import CustomerLimits
from services.db import Engines
from services.registry import AnyService
from services.started_checkouts import StartedCheckouts
from services.types import Alternative


@dataclass
class AppState:
    """Everything the lifespan opens, kept on `app.state.booking`."""

    settings: Settings
    metrics: Metrics
    temporal: TemporalLink
    engine: AsyncEngine | None = None
    engines: Engines | None = None
    services: dict[str, AnyService] = field(default_factory=dict)
    # The Redis availability cache (REDIS_URL): the sold-out fast path reads it, the API's own upserts write it.
    cache: AvailabilityCache | None = None
    # Checkout parts seen to exist: the precheck looks each up once.
    known_resources: KnownResources = field(default_factory=KnownResources)
    # Which checkout ids have a saga: the fast path answers only for ids that have none.
    started: StartedCheckouts | None = None
    # Per-customer hold limits: claimed before each new saga, removed by the saga when it settles.
    limits: CustomerLimits | None = None
    # The sold-out fast path's alternatives, shared briefly by every late buyer of the same thing.
    alternatives: SharedLookups[tuple[str, str], list[Alternative]] = field(default_factory=shared_alternatives)
    # Its cache reads, shared by concurrent checkouts of the same rows.
    cache_reads: SharedLookups[tuple[str, tuple[str, ...]], dict[str, int] | None] = field(
        default_factory=shared_reads
    )


# Dependencies are `async def` although they do not await: FastAPI runs a plain `def` dependency in a thread
# pool, a thread hop per request (measured with py-spy: ~10% of the API's CPU on the sold-out fast path).
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.booking
    return state


async def get_settings(state: Annotated[AppState, Depends(get_state)]) -> Settings:
    return state.settings


async def get_temporal(state: Annotated[AppState, Depends(get_state)]) -> Client:
    return state.temporal.require()


async def get_services(state: Annotated[AppState, Depends(get_state)]) -> dict[str, AnyService]:
    return state.services


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
ServicesDep = Annotated[dict[str, AnyService], Depends(get_services)]
