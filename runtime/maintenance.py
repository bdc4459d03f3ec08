"""Database chores shared by `dev`, `migrate`, `seed` and `audit`: each opens and disposes its own engines.

Each takes the default database URL and the participants' own ones (PARTICIPANT_DATABASE_URLS): every database a
participant uses is migrated, and each participant is seeded and audited in its own database, as the workers
and the API use it (services.db.Engines).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.db import Engines
from services.migrate import upgrade
from services.seed import seed_demo
from services.types import Violation

if TYPE_CHECKING:
    from settings import Settings
    from workflows.saga_audit import SagaAuditReport


async def migrate(database_url: str, own_urls: Mapping[str, str] | None = None) -> None:
    """Every migration on every database a participant uses (a database gets every schema; those of participants
    kept elsewhere stay empty)."""
    for url in Engines(database_url, dict(own_urls or {})).urls():
        await upgrade(url)


async def seed(database_url: str, own_urls: Mapping[str, str] | None = None) -> None:
    engines = Engines(database_url, dict(own_urls or {}), pool_size=2)
    try:
        await seed_demo(engines.services(), datetime.now(UTC).date())
    finally:
        await engines.dispose()


async def audit_sagas(
    settings: Settings, *, since: datetime | None = None, limit: int | None = None
) -> SagaAuditReport:
    """The saga-vs-ledger audit (workflows.saga_audit) against the configured PostgreSQL and Temporal."""
    from runtime.temporal import connect
    from services.bookings.records import BookingRecords
    from workflows.saga_audit import audit_sagas as run_audit
    from workflows.saga_audit import ledgers_of

    engines = Engines(settings.database_url, settings.participant_database_urls, pool_size=2)
    try:
        client = await connect(settings)
        return await run_audit(
            client, ledgers_of(engines.services()), grace_seconds=settings.sweeper_grace_seconds,
            task_queue=settings.task_queue_checkout, since=since, limit=limit,
            records=BookingRecords(engines.default),
        )
    finally:
        await engines.dispose()


async def audit(database_url: str, own_urls: Mapping[str, str] | None = None) -> list[Violation]:
    engines = Engines(database_url, dict(own_urls or {}), pool_size=2)
    try:
        violations: list[Violation] = []
        for service in engines.services().values():
            violations += await service.audit()
        return violations
    finally:
        await engines.dispose()
