"""One ledger transaction: lock_timeout set, driver errors turned into services.errors types.

Every lock wait answers within a second; a lock that is not granted, a deadlock or a serialization failure
mean "try again" (Busy); the database being unavailable (down, restarting, out of connections: the one
classification in services/unavailable.py) is DatabaseUnavailable, a Busy too. Nothing above services/ sees a
driver exception, whether it came through SQLAlchemy or straight from an asyncpg connection of the pool
(`pooled_driver`).

Two ways into a transaction, both on the one engine's pool (`pooled_driver` alone: statements that commit on
their own, e.g. the sweeper's and the audit's reads):
  driver_transaction  the ledger's operations (hold, confirm, release, extend, expire): asyncpg runs the whole
                      transaction on a connection checked out of the pool, because SQLAlchemy's Connection,
                      transaction and result layer cost more CPU than a hold's own statements;
  ledger_transaction  the operators' upserts, written as SQLAlchemy Core statements: SQLAlchemy must own that
                      transaction, or its statements would autobegin a second one (a savepoint under asyncpg).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeAlias

import asyncpg
from sqlalchemy.exc import DBAPIError, EmulatedDBAPIException, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.util import greenlet_spawn

from services.errors import Busy, InvalidRequest, LedgerError, StorageError
from services.unavailable import database_unavailable, is_database_unavailable, sqlstate_of

log = logging.getLogger(__name__)

LOCK_TIMEOUT = "1s"
SET_LOCK_TIMEOUT = f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"

# SQLSTATEs that a retry can cure, besides the database being unavailable (services/unavailable.py):
# lock_not_available, deadlock_detected, serialization_failure, query_canceled (statement_timeout).
RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001", "57014"}

DATABASE_ERRORS = (
    DBAPIError,
    # SQLAlchemy 2.1's asyncpg dialect raises these from the pool's connect (e.g. 57P03 while PostgreSQL recovers
    # from a crash): not SQLAlchemyError, so they must be named.
    EmulatedDBAPIException,
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

# asyncpg ships no type information: the connection is typed where its values enter ours.
Driver: TypeAlias = Any


def translate(error: BaseException) -> LedgerError:
    """The typed error for a driver or connection failure."""
    if is_database_unavailable(error):
        return database_unavailable(error)
    # asyncpg errors carry the SQLSTATE themselves; SQLAlchemy wraps the driver's error in `.orig`.
    sqlstate = sqlstate_of(error)
    if sqlstate in RETRYABLE_SQLSTATES:
        return Busy(f"database busy ({sqlstate}): try again")
    if sqlstate.startswith(("22", "23")):
        # Data exceptions and integrity violations: the input was out of bounds for the ledger.
        return InvalidRequest(f"rejected by the database ({sqlstate})")
    unreachable = InterfaceError | OperationalError | asyncpg.InterfaceError | OSError | TimeoutError
    if isinstance(error, unreachable) and not sqlstate:
        return Busy("database unreachable: try again")
    log.error("unexpected database error", exc_info=error)
    return StorageError(f"unexpected database error ({sqlstate or type(error).__name__})")


@contextmanager
def translated_errors() -> Iterator[None]:
    """Driver and connection failures leaving the block become LedgerError types; a LedgerError passes as is."""
    try:
        yield
    except LedgerError:
        raise
    except DATABASE_ERRORS as error:
        raise translate(error) from error


@asynccontextmanager
async def pooled_driver(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """An asyncpg connection from the engine's pool, outside any transaction (each statement commits on its
    own); raises only LedgerError subclasses."""
    with translated_errors():
        # The pool's raw checkout: an AsyncConnection around it would cost as much CPU as two statements.
        pooled = await engine.raw_connection()
        db: Driver = pooled.driver_connection
        try:
            yield db
        except BaseException as error:
            _discard_if_broken(engine, pooled, db, error)
            raise
        finally:
            await _check_in(engine, pooled)


@asynccontextmanager
async def driver_transaction(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """BEGIN ... COMMIT with `lock_timeout` = 1 s on a pooled asyncpg connection; raises only LedgerError
    subclasses. An exception inside the block rolls back."""
    async with pooled_driver(engine) as db, db.transaction():
        await db.execute(SET_LOCK_TIMEOUT)
        yield db


async def _check_in(engine: AsyncEngine, pooled: PoolProxiedConnection) -> None:
    """Back to the pool. The reset on return sends nothing: SQLAlchemy's adapter only rolls back a transaction
    it began itself.

    Check-in awaits the driver only when the pool closes the connection instead (a QueuePool with no room left,
    or another kind of pool); only then is SQLAlchemy's greenlet needed. Each greenlet costs CPython a fresh
    frame stack, an mmap and munmap pair: measurable at a hold's scale (about 4% holds/s).
    """
    pool = engine.pool
    if isinstance(pool, QueuePool) and pool.checkedin() < pool.size():
        pooled.close()
    else:
        await greenlet_spawn(pooled.close)


def _discard_if_broken(engine: AsyncEngine, pooled: PoolProxiedConnection, db: Driver, error: BaseException) -> None:
    """Do what SQLAlchemy does for a failure it sees itself; it never sees the driver's.

    A closed connection means the server went away (restart, failover): every connection opened before is as
    dead, so the whole pool reconnects at checkout and callers see one Busy, not one per pooled connection.
    A connection still in a transaction (its rollback was cancelled or failed) is in an unknown state: dropped.
    """
    if db.is_closed():
        engine.pool._invalidate(pooled, error)  # what SQLAlchemy's Connection calls on a disconnect
    elif db.is_in_transaction():
        pooled.invalidate(error)


@asynccontextmanager
async def ledger_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """BEGIN ... COMMIT with `lock_timeout` = 1 s for SQLAlchemy Core statements; raises only LedgerError
    subclasses."""
    with translated_errors():
        async with engine.begin() as conn:
            # Driver-level SQL: no statement to compile or cache.
            await conn.exec_driver_sql(SET_LOCK_TIMEOUT)
            yield conn


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection for availability and alternatives, with the same error translation."""
    with translated_errors():
        async with engine.connect() as conn:
            yield conn
