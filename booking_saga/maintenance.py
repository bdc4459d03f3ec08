"""Database chores shared by `dev`, `migrate`, `seed` and `audit`: each opens and disposes its own engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.db import create_engine
from services.migrate import upgrade
from services.registry import build_services
from services.seed import seed_demo
from services.types import Violation

if TYPE_CHECKING:
    from booking_saga.settings import Settings
    from workflows.saga_audit import SagaAuditReport


async def migrate(database_url: str) -> None:
    await upgrade(database_url)


async def seed(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    try:
        await seed_demo(build_services(engine), datetime.now(UTC).date())
    finally:
        await engine.dispose()


async def audit_sagas(
    settings: Settings, *, since: datetime | None = None, limit: int | None = None
) -> SagaAuditReport:
    """The saga-vs-ledger audit (workflows.saga_audit) against the configured PostgreSQL and Temporal."""
    from booking_saga.temporal import connect
    from workflows.saga_audit import audit_sagas as run_audit
    from workflows.saga_audit import ledgers_of

    engine = create_engine(settings.database_url, pool_size=2)
    try:
        client = await connect(settings)
        return await run_audit(
            client, ledgers_of(build_services(engine)), grace_seconds=settings.sweeper_grace_seconds,
            task_queue=settings.task_queue_checkout, since=since, limit=limit,
        )
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
