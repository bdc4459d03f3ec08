"""One ledger transaction: lock_timeout set, driver errors turned into services.errors types.

Every lock wait answers within a second; a lock that is not granted, a deadlock, a serialization failure or a
lost connection all mean "try again" (Busy). Nothing above services/ sees a driver exception, whether it came
through SQLAlchemy or straight from the asyncpg connection underneath (`driver`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.errors import Busy, InvalidRequest, LedgerError, StorageError

log = logging.getLogger(__name__)

LOCK_TIMEOUT = "1s"

# SQLSTATEs that a retry can cure: lock_not_available, deadlock_detected, serialization_failure,
# query_canceled (statement_timeout), admin/crash shutdown, cannot_connect_now, too_many_connections.
RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001", "57014", "57P01", "57P02", "57P03", "53300"}

DATABASE_ERRORS = (
    DBAPIError,
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

Driver = asyncpg.Connection


def translate(error: BaseException) -> LedgerError:
    """The typed error for a driver or connection failure."""
    # asyncpg errors carry the SQLSTATE themselves; SQLAlchemy wraps the driver's error in `.orig`.
    sqlstate = getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    if sqlstate in RETRYABLE_SQLSTATES or sqlstate.startswith("08"):
        return Busy(f"database busy ({sqlstate}): try again")
    if sqlstate.startswith(("22", "23")):
        # Data exceptions and integrity violations: the input was out of bounds for the ledger.
        return InvalidRequest(f"rejected by the database ({sqlstate})")
    unreachable = InterfaceError | OperationalError | asyncpg.InterfaceError | OSError | TimeoutError
    if isinstance(error, unreachable) and not sqlstate:
        return Busy("database unreachable: try again")
    log.error("unexpected database error", exc_info=error)
    return StorageError(f"unexpected database error ({sqlstate or type(error).__name__})")


async def driver(conn: AsyncConnection) -> Driver:
    """The asyncpg connection under `conn`, inside whatever transaction `conn` has begun.

    The ledger's hot statements go here: SQLAlchemy's statement building and result layer cost several times
    the round trip. Inside ledger_transaction the transaction has begun (its SET LOCAL did that: the asyncpg
    dialect sends BEGIN lazily, before its first statement); under read_transaction each statement autocommits.
    """
    return (await conn.get_raw_connection()).driver_connection


@asynccontextmanager
async def ledger_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """BEGIN ... COMMIT with `lock_timeout` = 1 s; raises only LedgerError subclasses."""
    try:
        async with engine.begin() as conn:
            # Driver-level SQL: no statement to compile or cache. It also sends the lazy BEGIN (see `driver`).
            await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            yield conn
    except LedgerError:
        raise
    except DATABASE_ERRORS as error:
        raise translate(error) from error


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection for availability and alternatives, with the same error translation."""
    try:
        async with engine.connect() as conn:
            yield conn
    except LedgerError:
        raise
    except DATABASE_ERRORS as error:
        raise translate(error) from error
