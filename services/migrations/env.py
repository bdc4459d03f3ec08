"""Alembic environment for the three service schemas.

services.migrate runs it programmatically on a connection it opens (config.attributes["connection"]);
the `alembic` command line also works, with -x url=postgresql://... (asyncpg driver is chosen for you).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.db import async_url

# The version table lives in public: it belongs to no single service schema.
VERSION_TABLE_SCHEMA = "public"


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        version_table_schema=VERSION_TABLE_SCHEMA,
        include_schemas=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported: run against a database")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with: alembic -x url=postgresql://... upgrade head")
    asyncio.run(run_standalone(url))


main()
