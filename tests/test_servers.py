"""The fixtures start real servers: each answers a real request."""

import redis.asyncio as redis
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from services.db import create_engine


async def test_postgres_answers(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        version = (await connection.execute(text("show server_version_num"))).scalar()
    await engine.dispose()
    assert int(version) >= 150000


async def test_redis_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert await client.ping() is True
    await client.aclose()


async def test_time_skipping_server_skips(time_skipping_env: WorkflowEnvironment) -> None:
    assert time_skipping_env.supports_time_skipping


async def test_dev_server_is_real(dev_server_env: WorkflowEnvironment) -> None:
    assert not dev_server_env.supports_time_skipping
    info = await dev_server_env.client.service_client.check_health()
    assert info is True
