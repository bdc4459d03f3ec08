"""FastAPI dependencies: what routes get from the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.converter import PayloadCodec

from api.fast_path import SharedLookups, shared_alternatives, shared_reads
from api.metrics import Metrics
from api.precheck import KnownResources, SharedPrices
from api.temporal_link import TemporalLink
from services.bookings.records import BookingRecords
from services.cache import AvailabilityCache
from services.customer_limits import CustomerLimits
from services.db import Engines
from services.registry import AnyService
from services.started_checkouts import StartedCheckouts
from services.types import Alternative
from settings import Settings

if TYPE_CHECKING:  # api.rate_limit imports api.identity, which imports this module
    from api.rate_limit import RateLimiter


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
    # The codec server's codec (api/routes/codec.py), built from the settings on first use.
    payload_codec: PayloadCodec | None = None
    # Every checkout's record (services/bookings): read once its saga is settled or gone, and listed.
    records: BookingRecords | None = None
    # Per-customer hold limits: claimed before each new saga, removed by the saga when it settles.
    limits: CustomerLimits | None = None
    # The sold-out fast path's alternatives, shared briefly by every late buyer of the same thing.
    alternatives: SharedLookups[tuple[str, str], list[Alternative]] = field(default_factory=shared_alternatives)
    # The per-caller rate limit (api/rate_limit.py); None when RATE_LIMIT=0.
    rate_limiter: RateLimiter | None = None
    # The participants' services on the anonymous reads' own pool (READ_POOL_SIZE): catalogue and availability.
    read_engines: Engines | None = None
    read_services: dict[str, AnyService] = field(default_factory=dict)
    # Its cache reads, shared by concurrent checkouts of the same rows.
    cache_reads: SharedLookups[tuple[str, tuple[str, ...]], dict[str, int] | None] = field(
        default_factory=shared_reads
    )
    # The checkouts' price checks (api/precheck.py), shared for PRICE_CHECK_SECONDS; None: each reads its own.
    prices: SharedPrices | None = None


# Dependencies are `async def` although they do not await: FastAPI runs a plain `def` dependency in a thread
# pool, a thread hop per request for a function that returns at once.
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.booking
    return state


async def get_services(state: Annotated[AppState, Depends(get_state)]) -> dict[str, AnyService]:
    return state.services


async def get_read_services(state: Annotated[AppState, Depends(get_state)]) -> dict[str, AnyService]:
    """For anonymous reads: their own pool, so a flood of them never waits on (or takes) a checkout's connection."""
    return state.read_services or state.services


StateDep = Annotated[AppState, Depends(get_state)]
ServicesDep = Annotated[dict[str, AnyService], Depends(get_services)]
ReadServicesDep = Annotated[dict[str, AnyService], Depends(get_read_services)]
