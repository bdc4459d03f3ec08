"""The whole stack for end-to-end API tests: the real Temporal dev server, the saga's workers (in-process
Worker objects on the dev server's client), the services on real PostgreSQL, Redis, and the app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from temporalio.testing import WorkflowEnvironment

from runtime.worker import build_workers
from services.bookings.records import BookingRecords
from services.cache import AvailabilityCache
from services.customer_limits import CustomerLimits, claim_lifetime
from services.db import create_engine
from services.registry import build_services
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, TEST_DEFAULTS


def live_settings(env: WorkflowEnvironment, database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {**TEST_DEFAULTS, **overrides}
    return Settings(
        operator_token=OPERATOR_TOKEN,
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=env.client.service_client.config.target_host,
        workflow_sandbox=True,
        **values,
    )


@contextlib.asynccontextmanager
async def saga_workers(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[None]:
    """Run the checkout, flight, hotel and orders workers for the duration of the block.

    Their services publish every committed change to the availability cache, as the production workers must:
    the API's sold-out fast path only sees holds and releases that the workers publish.
    """
    engine = create_engine(settings.database_url)
    cache = AvailabilityCache.from_settings(settings) if settings.redis_url else None
    try:
        services = build_services(engine, sink=cache)
        # As run_worker builds them: the sagas remove their customers' claims when they settle.
        limits = CustomerLimits(engine, settings.customer_active_checkouts_max, settings.customer_units_max,
                                claim_lifetime(settings.hold_lifetime_max_seconds, settings.sweeper_grace_seconds))
        async with contextlib.AsyncExitStack() as stack:
            records = BookingRecords(engine, settings.booking_records_keep_days)
            for worker in build_workers(env.client, settings, "all", services, limits, records):
                await stack.enter_async_context(worker)
            yield
    finally:
        if cache is not None:
            await cache.aclose()
        await engine.dispose()
