"""Temporal workers: the checkout workflow worker and one activity worker per service.

`booking-saga worker --service checkout|<participant>|all` runs them until SIGTERM / SIGINT (the participants come
from services/registry.py).

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
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.adapter import ParticipantActivities
from activities.bookings import BookingActivities
from activities.claims import ClaimActivities
from activities.noop import NoopService
from runtime.temporal import connect
from services.bookings.records import BookingRecords
from services.customer_limits import CustomerLimits, claim_lifetime
from services.participant import CancelWindows, HoldOperations
from services.registry import NAMES, WORKER_CHOICES, local_names, participant
from settings import Settings, start_checks
from workflows.cancel_sale import CancelSale
from workflows.checkout_saga import CheckoutSaga

log = logging.getLogger(__name__)

# What a worker is handed per participant: its hold operations (a ledger service, or the no-op floor's).
Operations = Mapping[str, HoldOperations[Any]]


def served(service: str) -> list[str]:
    """What a `--service` choice runs: 'all' is the checkout worker plus every participant's worker."""
    if service not in WORKER_CHOICES:
        raise ValueError(f"unknown worker {service!r}: choose one of {', '.join(WORKER_CHOICES)}")
    return ["checkout", *NAMES] if service == "all" else [service]


def swept(service: str, placements: Mapping[str, str] | None = None) -> list[str]:
    """The participants whose ledgers a `--service` choice sweeps: the local ones in the checkout worker (it runs
    their operations), a remote one in its own worker; each once per process."""
    names = [name for name in served(service) if name != "checkout"]
    if "checkout" in served(service):
        names += [name for name in local_names(placements) if name not in names]
    return names


def build_workers(
    client: Client, settings: Settings, service: str, services: Operations, limits: CustomerLimits | None = None,
    records: BookingRecords | None = None,
) -> list[Worker]:
    """The Worker objects for `service` (not yet running). Tests pass their own `services` (e.g. with faults).

    The checkout worker also runs the local participants' operations (as local activities, which must be
    registered with the workflow's worker). A participant's own task queue keeps a worker wherever it is served,
    local or not, so sagas started while it was remote still find one.
    """
    workers: list[Worker] = []
    for name in served(service):
        if name == "checkout":
            runner = SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()
            local = [
                activity
                for name in local_names(settings.participant_placements)
                for activity in ParticipantActivities(participant(name), services[name]).activities()
            ]
            local += ClaimActivities(limits).activities()
            # The booking record's activities (regular ones, on this task queue): see activities/bookings.py.
            local += BookingActivities(records, services, cancel_windows(settings)).activities()
            workers.append(Worker(
                client, task_queue=settings.task_queue_checkout, workflows=[CheckoutSaga, CancelSale],
                activities=local,
                workflow_runner=runner,
                workflow_failure_exception_types=workflow_failure_types(settings),
                # A dead worker's sticky workflow tasks go to the shared queue (another worker) after this.
                sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_timeout_seconds),
                max_cached_workflows=settings.workflow_cache_size,
            ))
        else:
            adapter = ParticipantActivities(participant(name), services[name])
            workers.append(Worker(client, task_queue=settings.task_queue(name), activities=adapter.activities()))
    return workers


def workflow_failure_types(settings: Settings) -> list[type[BaseException]]:
    """The exceptions that fail a saga outright rather than its workflow task (retried until it passes): a
    non-determinism error when WORKFLOW_FAIL_ON_NONDETERMINISM is set (see settings.py for why not by default)."""
    return [workflow.NondeterminismError] if settings.workflow_fail_on_nondeterminism else []


def cancel_windows(settings: Settings) -> CancelWindows:
    return CancelWindows(
        flight_hours_before_departure=settings.cancel_flight_hours_before_departure,
        hotel_hours_before_check_in=settings.cancel_hotel_hours_before_check_in,
        car_hours_before_pick_up=settings.cancel_car_hours_before_pick_up,
        items_days_after_confirmation=settings.cancel_items_days_after_confirmation,
    )


class Sweepable(Protocol):
    """What the sweeper expires: a participant's ledger, or the customers' claims."""

    name: str

    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int: ...


async def sweep_forever(services: Sequence[Sweepable], grace_seconds: int, every: float) -> None:
    """Expire holds whose workflow never released them (deleted, terminated): a safety net, logged when it acts.

    While the database is unavailable (services/unavailable.py) a service logs one WARNING when its outage starts
    and one INFO when its sweeps work again, not a traceback per pass; any other failure is logged in full.
    """
    # Imported here: a services-only dependency of this one function.
    from services.unavailable import describe, is_database_unavailable

    down: set[str] = set()  # the services whose last sweep found the database unavailable
    while True:
        for service in services:
            try:
                expired = await service.expire_overdue(datetime.now(UTC), grace_seconds)
            except Exception as error:  # the next round tries again; a sweeper must not take the worker down
                if not is_database_unavailable(error):
                    log.exception("sweeper: %s failed", service.name)
                elif service.name not in down:
                    down.add(service.name)
                    log.warning("sweeper: %s paused, the database is unavailable (%s); trying again every %g s",
                                service.name, describe(error), every)
                continue
            if service.name in down:
                down.discard(service.name)
                log.info("sweeper: %s resumed, the database is available again", service.name)
            if expired:
                log.warning("sweeper: %s expired %d overdue hold(s)", service.name, expired)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def _services_for(
    settings: Settings, service: str, noop: bool
) -> AsyncIterator[tuple[Operations, CustomerLimits | None, BookingRecords | None]]:
    # The checkout worker writes the booking records (and reads the participants' cancellation windows) even
    # when every participant is remote: it needs the database whenever there is one.
    checkout_db = "checkout" in served(service) and bool(settings.database_url)
    if noop or not (swept(service, settings.participant_placements) or checkout_db):
        yield {name: NoopService(name) for name in NAMES}, None, None
        return
    from services.cache import AvailabilityCache
    from services.db import Engines

    engines = Engines(settings.database_url, settings.participant_database_urls)
    # The holds' committed rows go to the availability cache: the API's sold-out fast path reads them there.
    cache = AvailabilityCache.from_settings(settings) if settings.redis_url else None
    limits = CustomerLimits(
        engines.default, settings.customer_active_checkouts_max, settings.customer_units_max,
        claim_lifetime(settings.hold_lifetime_max_seconds, settings.sweeper_grace_seconds),
    )
    records = BookingRecords(engines.default, settings.booking_records_keep_days)
    try:
        yield engines.services(sink=cache), limits, records
    finally:
        if cache is not None:
            await cache.aclose()
        await engines.dispose()


async def run_worker(settings: Settings, service: str, *, noop: bool = False) -> None:
    """Run the worker(s) for `service` until SIGTERM or SIGINT, then shut down gracefully.

    Raises UnsafeSettings (settings.start_checks) before connecting when the settings are unsafe."""
    start_checks(settings, "worker")
    if not noop and swept(service, settings.participant_placements) and not settings.database_url:
        raise SystemExit("DATABASE_URL is not set: workers that run participants' ledgers need it (or pass --noop)")
    client = await connect(settings, worker_metrics=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with _services_for(settings, service, noop) as (services, limits, records):
        workers = build_workers(client, settings, service, services, limits, records)
        sweepers: list[Sweepable] = [services[n] for n in swept(service, settings.participant_placements)]
        if limits is not None and "checkout" in served(service):
            sweepers.append(limits)  # lost sagas' claims
        if records is not None and "checkout" in served(service):
            sweepers.append(records)  # records past their retention (BOOKING_RECORDS_KEEP_DAYS)
        sweeper = None
        if sweepers and not noop:
            sweeper = asyncio.create_task(
                sweep_forever(sweepers, settings.sweeper_grace_seconds, settings.sweeper_every_seconds)
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
