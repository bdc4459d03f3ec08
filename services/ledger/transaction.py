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
                      transaction and result layer cost more CPU than a hold's own statements. BEGIN and the
                      lock_timeout go in one round trip; a connection idle in the pool is checked out without
                      SQLAlchemy's greenlet (`_check_out_at_once`);
  ledger_transaction  the operators' upserts, written as SQLAlchemy Core statements: SQLAlchemy must own that
                      transaction, or its statements would autobegin a second one (a savepoint under asyncpg).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, TypeAlias
from weakref import WeakSet

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import (
    DBAPIError,
    EmulatedDBAPIException,
    InterfaceError,
    MissingGreenlet,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

from services.errors import Busy, InvalidRequest, LedgerError, StorageError
from services.unavailable import database_unavailable, is_database_unavailable, sqlstate_of

log = logging.getLogger(__name__)

LOCK_TIMEOUT = "1s"
SET_LOCK_TIMEOUT = f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
# One simple-query message, so one round trip, for both (asyncpg sends a text without arguments that way).
BEGIN = f"BEGIN; {SET_LOCK_TIMEOUT}"

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


class _Pooled:
    """`pooled_driver`: an asyncpg connection of the pool; its exit discards a broken one and checks it in.

    A class rather than a generator-based context manager: the ledger enters one per operation, and an async
    generator costs a frame, a loop hook and a StopAsyncIteration more on every entry and exit."""

    __slots__ = ("_db", "_engine", "_pooled")
    _db: Driver
    _pooled: PoolProxiedConnection

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __aenter__(self) -> Driver:
        try:
            self._pooled = await _check_out(self._engine)
        except LedgerError:
            raise
        except DATABASE_ERRORS as error:
            raise translate(error) from error
        self._db = self._pooled.driver_connection
        return self._db

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._release(error)

    async def _release(self, error: BaseException | None) -> None:
        """Back to the pool (dropped if broken); a driver error, the block's or the check-in's, leaves as a
        LedgerError. Returns only when `error` is None or not a driver error (the caller lets it propagate)."""
        try:
            if error is not None:
                _discard_if_broken(self._engine, self._pooled, self._db, error)
            await _check_in(self._engine, self._pooled)
        except LedgerError:
            raise
        except DATABASE_ERRORS as release_error:
            reported = error if error is not None and _is_driver_error(error) else release_error
            raise translate(reported) from reported
        if error is not None and _is_driver_error(error):
            raise translate(error) from error


class _Transaction(_Pooled):
    """`driver_transaction`: BEGIN ... COMMIT on a pooled asyncpg connection, ROLLBACK when the block raises.

    BEGIN and COMMIT are sent as text, without asyncpg's Transaction object: its state checks and savepoint
    bookkeeping serve nested `transaction()` blocks, which the ledger never opens."""

    __slots__ = ()

    async def __aenter__(self) -> Driver:
        db = await super().__aenter__()
        try:
            await db.execute(BEGIN)
        except BaseException as error:
            await self._release(error)
            raise
        return db

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        db = self._db
        if error is None:
            try:
                await db.execute("COMMIT")
            except BaseException as commit_error:
                await self._release(commit_error)
                raise
        elif not db.is_closed():
            try:
                await db.execute("ROLLBACK")
            except Exception:
                # The block's error is the one to report. The connection, still in a transaction or closed, is
                # dropped by _discard_if_broken.
                pass
            except BaseException as cancelled:  # cancelled while rolling back: the cancellation goes on
                await self._release(cancelled)
                raise
        await self._release(error)


def pooled_driver(engine: AsyncEngine) -> AbstractAsyncContextManager[Driver]:
    """An asyncpg connection from the engine's pool, outside any transaction (each statement commits on its
    own); raises only LedgerError subclasses."""
    return _Pooled(engine)


def driver_transaction(engine: AsyncEngine) -> AbstractAsyncContextManager[Driver]:
    """BEGIN ... COMMIT with `lock_timeout` = 1 s on a pooled asyncpg connection; raises only LedgerError
    subclasses. An exception inside the block rolls back. The block opens no asyncpg `transaction()` (asyncpg
    refuses one inside a transaction it did not begin): a savepoint would be SQL."""
    return _Transaction(engine)


def _is_driver_error(error: BaseException) -> bool:
    return isinstance(error, DATABASE_ERRORS) and not isinstance(error, LedgerError)


async def _check_out(engine: AsyncEngine) -> PoolProxiedConnection:
    """The pool's raw checkout: an AsyncConnection around it would cost as much CPU as two statements."""
    return _check_out_at_once(engine) or await engine.raw_connection()


def _check_out_at_once(engine: AsyncEngine) -> PoolProxiedConnection | None:
    """A pooled connection when taking one needs no I/O, without SQLAlchemy's greenlet; None otherwise.

    The async engine runs every checkout in a fresh greenlet, in case the pool has to wait or (re)connect; each
    costs CPython a frame stack of its own, an mmap and munmap pair, more than the checkout itself. With a
    connection idle in the queue, no pre-ping and no checkout listener, a checkout is plain Python, unless the
    connection at the head of the queue must be reconnected (the pool was invalidated, e.g. after a restart):
    then `_connect_in_greenlet_only` stops SQLAlchemy before it connects, SQLAlchemy returns that connection to the
    queue, invalidated, and the checkout is done again in a greenlet, which reconnects.
    """
    pool = engine.pool
    if not isinstance(pool, QueuePool) or pool.checkedin() == 0 or pool._pre_ping or pool.dispatch.checkout:
        return None
    sync_engine = engine.sync_engine
    if sync_engine not in _GUARDED:
        event.listen(sync_engine, "do_connect", _connect_in_greenlet_only)
        _GUARDED.add(sync_engine)
    try:
        return sync_engine.raw_connection()
    except MissingGreenlet:
        return None


# Engines whose connects `_connect_in_greenlet_only` guards.
_GUARDED: WeakSet[Engine] = WeakSet()


def _connect_in_greenlet_only(dialect: Dialect, record: ConnectionPoolEntry, cargs: object, cparams: object) -> None:
    """Refuse a connect outside SQLAlchemy's greenlet before the driver's connect coroutine exists (SQLAlchemy's
    own refusal would come after, leaving that coroutine never awaited); inside one, let the dialect connect."""
    if not in_greenlet():
        raise MissingGreenlet("a pooled connection must reconnect: checked out again in a greenlet")


async def _check_in(engine: AsyncEngine, pooled: PoolProxiedConnection) -> None:
    """Back to the pool. The reset on return sends nothing: SQLAlchemy's adapter only rolls back a transaction
    it began itself.

    Check-in awaits the driver only when the pool closes the connection instead (a QueuePool with no room left,
    or another kind of pool); only then is SQLAlchemy's greenlet needed. Each greenlet costs CPython a fresh
    frame stack, an mmap and munmap pair: not free at a hold's scale, so the common case does without one.
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
