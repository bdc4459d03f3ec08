"""The SQLAlchemy internals that services/ledger/transaction.py relies on, checked by name and by behaviour.

pyproject.toml pins SQLAlchemy to the minor version these hold for; an upgrade that moves any of them fails here
first, before a hold takes a connection the wrong way.
"""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import event
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

from services.ledger import transaction


def test_the_pool_internals_the_fast_checkout_reads_exist() -> None:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=2)
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    # `_check_out_at_once` reads these to decide whether a checkout can skip the greenlet.
    assert pool._pre_ping is False
    assert not pool.dispatch.checkout
    assert pool.checkedin() == 0
    assert pool.size() == 2
    # `_discard_if_broken` invalidates the whole pool the way SQLAlchemy's Connection does on a disconnect.
    assert list(inspect.signature(pool._invalidate).parameters)[:2] == ["connection", "exception"]
    # The guard listens for connects made outside a greenlet.
    event.listen(engine.sync_engine, "do_connect", transaction._connect_in_greenlet_only)
    assert event.contains(engine.sync_engine, "do_connect", transaction._connect_in_greenlet_only)


def test_pre_ping_is_seen() -> None:
    pool = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_pre_ping=True).pool
    assert pool._pre_ping is True


async def test_the_greenlet_helpers_behave_as_the_guard_expects() -> None:
    assert in_greenlet() is False
    assert await greenlet_spawn(in_greenlet) is True
    with pytest.raises(MissingGreenlet):
        transaction._connect_in_greenlet_only(None, None, None, None)  # type: ignore[arg-type]
    assert await greenlet_spawn(transaction._connect_in_greenlet_only, None, None, None, None) is None


async def test_a_checkout_from_an_idle_pool_needs_no_greenlet(migrated_database_url: str) -> None:
    """Behaviour, on the real server: the first checkout connects (greenlet), the next one is taken at once."""
    from services.db import async_url

    engine = create_async_engine(async_url(migrated_database_url), pool_size=1)
    try:
        assert transaction._check_out_at_once(engine) is None  # nothing idle yet: the greenlet path
        pooled = await transaction._check_out(engine)
        await transaction._check_in(engine, pooled)
        again = transaction._check_out_at_once(engine)
        assert again is not None
        assert engine.pool.checkedin() == 0
        await transaction._check_in(engine, again)
        assert engine.pool.checkedin() == 1
    finally:
        await engine.dispose()
