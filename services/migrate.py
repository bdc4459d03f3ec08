"""Run the Alembic migrations from code (no alembic.ini), on the asyncpg driver."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.db import async_url
from services.registry import PARTICIPANTS

MIGRATIONS = Path(__file__).parent / "migrations"
# Each participant's tables live in the schema named after it; `checkout` is the API's record of started sagas.
SCHEMAS = (*(p.name for p in PARTICIPANTS), "checkout")


def version_locations() -> list[Path]:
    """The shared revisions, then each participant's own `migrations/` folder where its package has one."""
    found = [MIGRATIONS / "versions"]
    for participant in PARTICIPANTS:
        spec = importlib.util.find_spec(type(participant).__module__)
        if spec is not None and spec.origin is not None:
            own = Path(spec.origin).parent / "migrations"
            if own.is_dir():
                found.append(own)
    return found
# Serializes migrations of one database across processes (several test runs may share a database).
MIGRATION_LOCK_ID = 0x6B5A6761  # arbitrary, fixed


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # os.pathsep-separated, so a folder with spaces in its path is fine.
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in version_locations()))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    # "heads": each participant's own migrations branch off the shared ones.
    command.upgrade(alembic_config(connection), "heads")


async def upgrade(url: str) -> None:
    """Bring every schema (the three services' and the API's `checkout`) to the newest revision. Safe to run
    concurrently and repeatedly."""
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


async def reset(url: str) -> None:
    """Drop every schema and the version table, then upgrade: an empty ledger (for tests)."""
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            for schema in SCHEMAS:
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await conn.execute(text("DROP TABLE IF EXISTS public.alembic_version"))
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()
