"""CheckoutSaga on the time-skipping test server with the real services on real PostgreSQL.

One database of its own (the ledger tests reset theirs), one set of workers for the session, and services
wrapped in `FaultyService` so a test can inject a failure at a chosen step; faults are cleared after each test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from runtime.codec import data_converter
from runtime.temporal import test_server_path
from runtime.worker import build_workers
from services.bookings.records import BookingRecords
from services.db import create_engine
from services.migrate import reset
from services.registry import NAMES, build_services
from settings import Settings
from tests.workflow.helpers import FaultyService, register_search_attributes


async def create_database(url: str, name: str) -> str:
    """A fresh database on the same server; returns its URL."""
    parsed = make_url(url)
    admin = await asyncpg.connect(
        user=parsed.username, password=parsed.password or None, database=parsed.database or "postgres",
        host=parsed.query.get("host") or parsed.host, port=parsed.port,
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def saga_database(database_url: str) -> str:
    url = await create_database(database_url, "saga_tests")
    await reset(url)
    return url


@pytest.fixture(scope="session")
async def saga_engine(saga_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(saga_database, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def saga_services(saga_engine: AsyncEngine) -> dict[str, FaultyService]:
    return {name: FaultyService(service) for name, service in build_services(saga_engine).items()}


@pytest.fixture(scope="session")
def saga_settings() -> Settings:
    suffix = uuid.uuid4().hex[:6]
    return Settings(
        task_queue_checkout=f"checkout-{suffix}", task_queues={name: f"{name}-{suffix}" for name in NAMES},
        workflow_sandbox=True,  # the sandbox catches a non-deterministic call in the workflow code
    )


@pytest.fixture(scope="session")
async def saga_client(time_skipping_env: WorkflowEnvironment) -> Client:
    await register_search_attributes(time_skipping_env.client)
    return time_skipping_env.client


@pytest.fixture(scope="session")
async def saga_workers(
    saga_client: Client, saga_settings: Settings, saga_services: dict[str, FaultyService], saga_engine: AsyncEngine
) -> AsyncIterator[None]:
    # With the booking records, as run_worker builds them: the sagas write theirs, CancelSale reads them.
    records = BookingRecords(saga_engine)
    workers = build_workers(saga_client, saga_settings, "all", saga_services, records=records)  # type: ignore[arg-type]
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    yield
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*runs, return_exceptions=True)


@pytest.fixture
async def isolated_client(
    saga_settings: Settings, saga_services: dict[str, FaultyService]
) -> AsyncIterator[Client]:
    """A test server and workers of its own, for tests that leave an activity running after its workflow
    closed: the time-skipping server stops moving its clock after that, which would stall later tests."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(), data_converter=data_converter(Settings())
    )
    await register_search_attributes(env.client)
    workers = build_workers(env.client, saga_settings, "all", saga_services)  # type: ignore[arg-type]
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    yield env.client
    for service in saga_services.values():
        service.clear()  # let hung activities finish before the workers stop
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*runs, return_exceptions=True)
    await env.shutdown()


@pytest.fixture(autouse=True)
def clear_faults(saga_services: dict[str, FaultyService]) -> Iterator[None]:
    yield
    for service in saga_services.values():
        service.clear()
