"""Events tests: real PostgreSQL (schemas reset once per session), events written by append() in the tests' own
transactions (as the booking record's transaction will), and real receiver processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.db import create_engine


@pytest.fixture(scope="session")
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=20)
    yield engine
    await engine.dispose()
