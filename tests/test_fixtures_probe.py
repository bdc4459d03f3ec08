import redis.asyncio as redis
from sqlalchemy import text

from services.db import create_engine


async def test_pg(database_url):
    e = create_engine(database_url)
    async with e.connect() as c:
        assert (await c.execute(text("select 1"))).scalar() == 1
    await e.dispose()


async def test_redis(redis_url):
    r = redis.Redis.from_url(redis_url)
    assert await r.ping()
    await r.aclose()


async def test_ts(time_skipping_env):
    assert time_skipping_env.supports_time_skipping


async def test_dev(dev_server_env):
    assert not dev_server_env.supports_time_skipping
