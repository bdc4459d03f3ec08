"""Database chores shared by `dev`, `migrate`, `seed` and `audit`: each opens and disposes its own engine."""

from __future__ import annotations

from datetime import UTC, datetime

from services.db import create_engine
from services.migrate import upgrade
from services.registry import build_services
from services.seed import seed_demo
from services.types import Violation


async def migrate(database_url: str) -> None:
    await upgrade(database_url)


async def seed(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    try:
        await seed_demo(build_services(engine), datetime.now(UTC).date())
    finally:
        await engine.dispose()


async def audit(database_url: str) -> list[Violation]:
    engine = create_engine(database_url, pool_size=2)
    try:
        violations: list[Violation] = []
        for service in build_services(engine).values():
            violations += await service.audit()
        return violations
    finally:
        await engine.dispose()
