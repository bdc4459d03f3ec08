"""Temporal workers: the checkout workflow worker and one activity worker per service.

`booking-saga worker --service checkout|flight|hotel|orders|all` runs them until SIGTERM / SIGINT.

The sweeper (the ledger's safety net for holds whose workflow is gone) runs inside each service worker as a
periodic task: every SWEEPER_EVERY_SECONDS it expires ACTIVE holds past expires_at + SWEEPER_GRACE_SECONDS.
The workflow's own timer always fires first; the grace keeps the two from racing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.adapter import ServiceActivities
from activities.flight import FlightActivities
from activities.hotel import HotelActivities
from activities.noop import NoopService
from activities.orders import OrdersActivities
from booking_saga.settings import Settings
from booking_saga.temporal import connect
from services.protocol import InventoryService
from services.types import SERVICES, ServiceName
from workflows.checkout_saga import CheckoutSaga

log = logging.getLogger(__name__)

WORKER_CHOICES = ("checkout", *SERVICES, "all")

_ADAPTERS: dict[ServiceName, type[ServiceActivities]] = {
    "flight": FlightActivities,
    "hotel": HotelActivities,
    "orders": OrdersActivities,
}


def served(service: str) -> list[str]:
    """What a `--service` choice runs: 'all' is the checkout worker plus every service worker."""
    if service not in WORKER_CHOICES:
        raise ValueError(f"unknown worker {service!r}: choose one of {', '.join(WORKER_CHOICES)}")
    return ["checkout", *SERVICES] if service == "all" else [service]


def build_workers(
    client: Client,
    settings: Settings,
    service: str,
    services: Mapping[ServiceName, InventoryService],
) -> list[Worker]:
    """The Worker objects for `service` (not yet running). Tests pass their own `services` (e.g. with faults)."""
    workers: list[Worker] = []
    for name in served(service):
        if name == "checkout":
            runner = SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()
            queue = settings.task_queue_checkout
            workers.append(Worker(client, task_queue=queue, workflows=[CheckoutSaga], workflow_runner=runner))
        else:
            adapter = _ADAPTERS[name](services[name])  # type: ignore[index]
            workers.append(Worker(client, task_queue=settings.task_queue(name), activities=adapter.activities()))
    return workers


async def sweep_forever(services: Sequence[InventoryService], grace_seconds: int, every: float) -> None:
    """Expire holds whose workflow never released them (deleted, terminated): a safety net, logged when it acts."""
    while True:
        for service in services:
            try:
                expired = await service.expire_overdue(datetime.now(UTC), grace_seconds)
            except Exception:  # the next round tries again; a sweeper must not take the worker down
                log.exception("sweeper: %s failed", service.name)
                continue
            if expired:
                log.warning("sweeper: %s expired %d overdue hold(s)", service.name, expired)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def _services_for(
    settings: Settings, service: str, noop: bool
) -> AsyncIterator[dict[ServiceName, InventoryService]]:
    if noop or served(service) == ["checkout"]:
        yield {name: NoopService(name) for name in SERVICES}
        return
    from services.cache import AvailabilityCache
    from services.db import create_engine
    from services.registry import build_services

    engine = create_engine(settings.database_url)
    # The holds' committed rows go to the availability cache: the API's sold-out fast path reads them there.
    cache = AvailabilityCache.from_settings(settings) if settings.redis_url else None
    try:
        yield build_services(engine, sink=cache)
    finally:
        if cache is not None:
            await cache.aclose()
        await engine.dispose()


async def run_worker(settings: Settings, service: str, *, noop: bool = False) -> None:
    """Run the worker(s) for `service` until SIGTERM or SIGINT, then shut down gracefully."""
    if not noop and service != "checkout" and not settings.database_url:
        raise SystemExit("DATABASE_URL is required for the service workers (or pass --noop)")
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with _services_for(settings, service, noop) as services:
        workers = build_workers(client, settings, service, services)
        sweepers = [name for name in served(service) if name != "checkout"]
        sweeper = None
        if sweepers and not noop:
            sweeper = asyncio.create_task(
                sweep_forever([services[n] for n in sweepers], settings.sweeper_grace_seconds,  # type: ignore[index]
                              settings.sweeper_every_seconds)
            )
        runs = [asyncio.create_task(worker.run()) for worker in workers]
        log.info("workers running: %s", ", ".join(served(service)))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *runs], return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down workers")
        if sweeper is not None:
            sweeper.cancel()
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        stopped.cancel()
        for run in runs:
            if run.done() and run.exception() is not None:
                raise run.exception()  # type: ignore[misc]
