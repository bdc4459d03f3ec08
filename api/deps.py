"""FastAPI dependencies: what routes get from the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.fast_path import AlternativesCache
from api.metrics import Metrics
from api.temporal_link import TemporalLink
from booking_saga.settings import Settings
from services.cache import AvailabilityCache
from services.protocol import InventoryService
from services.types import ServiceName


@dataclass
class AppState:
    """Everything the lifespan opens, kept on `app.state.booking`."""

    settings: Settings
    metrics: Metrics
    temporal: TemporalLink
    engine: AsyncEngine | None = None
    services: dict[ServiceName, Any] = field(default_factory=dict)
    # The Redis availability cache (REDIS_URL): the sold-out fast path reads it, the API's own upserts write it.
    cache: AvailabilityCache | None = None
    # The sold-out fast path's alternatives, shared briefly by every late buyer of the same thing.
    alternatives: AlternativesCache = field(default_factory=AlternativesCache)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.booking
    return state


def get_settings(state: Annotated[AppState, Depends(get_state)]) -> Settings:
    return state.settings


def get_temporal(state: Annotated[AppState, Depends(get_state)]) -> Client:
    return state.temporal.require()


def get_services(state: Annotated[AppState, Depends(get_state)]) -> dict[ServiceName, InventoryService]:
    return state.services


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
ServicesDep = Annotated[dict[ServiceName, InventoryService], Depends(get_services)]
