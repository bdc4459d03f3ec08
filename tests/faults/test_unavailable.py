"""The one classification of "PostgreSQL is unavailable" (services/unavailable.py) and where it is applied:
the transaction helpers' translation, the activities' retryable error, and the API's last-line 503 handler.

Driver errors are constructed as asyncpg and SQLAlchemy raise them (a real 57P03 and a real crash are in
test_database_down.py); a refused connection is a real one, to a port nothing listens on.
"""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from activities.adapter import to_application_error
from api.problems import install_problem_handlers
from runtime.embedded import free_port
from services.db import create_engine
from services.errors import Busy, DatabaseUnavailable, InvalidRequest
from services.ledger.transaction import read_transaction, translate, translated_errors
from services.started_checkouts import StartedCheckouts
from services.unavailable import describe, is_database_unavailable
from tests.api.test_api_without_servers import assert_problem

# SQLAlchemy 2.1's asyncpg dialect wraps driver errors raised at connect in these emulated DBAPI errors.
DBAPI = AsyncAdapt_asyncpg_dbapi(asyncpg)
STARTING_UP = asyncpg.exceptions.CannotConnectNowError("the database system is starting up")

UNAVAILABLE: list[BaseException] = [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    ConnectionResetError(104, "Connection reset by peer"),
    FileNotFoundError(2, "No such file or directory"),  # a unix socket that is gone
    OSError(113, "No route to host"),
    TimeoutError(),
    STARTING_UP,
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another server process"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.exceptions.ClientCannotConnectError("cannot connect"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.InterfaceError("connection is closed"),
    PoolTimeoutError("QueuePool limit of size 10 overflow 0 reached, connection timed out, timeout 30.00"),
    OperationalError("SELECT 1", {}, STARTING_UP),
    DBAPIError("SELECT 1", {}, DBAPI.Error(str(STARTING_UP), STARTING_UP)),
    DBAPI.Error(str(STARTING_UP), STARTING_UP),  # what the pool's connect raises, unwrapped
    DBAPI.InterfaceError("connection is closed", asyncpg.exceptions.InterfaceError("connection is closed")),
    InterfaceError("SELECT 1", {}, DBAPI.InterfaceError("closed", asyncpg.exceptions.InterfaceError("closed"))),
    DBAPIError("SELECT 1", {}, Exception("server closed the connection unexpectedly"), connection_invalidated=True),
    DatabaseUnavailable("already translated"),
]

AVAILABLE: list[BaseException] = [
    asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.exceptions.UniqueViolationError("duplicate key value"),
    asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
    ProgrammingError("SELEC 1", {}, DBAPI.ProgrammingError("syntax error", asyncpg.exceptions.PostgresSyntaxError())),
    Busy("lock timeout"),
    ValueError("not a database error"),
]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_unavailable_database_errors_are_recognised(error: BaseException) -> None:
    assert is_database_unavailable(error)
    translated = translate(error)
    assert isinstance(translated, DatabaseUnavailable) and translated.retryable
    assert to_application_error(translated).non_retryable is False


@pytest.mark.parametrize("error", AVAILABLE, ids=lambda e: type(e).__name__)
def test_other_errors_are_not_unavailability(error: BaseException) -> None:
    assert not is_database_unavailable(error)


def test_the_reason_names_the_driver_error_under_every_wrapper() -> None:
    wrapped = OperationalError("SELECT 1", {}, DBAPI.Error(str(STARTING_UP), STARTING_UP))
    assert describe(wrapped) == "CannotConnectNowError 57P03: the database system is starting up"
    assert "57P03" in str(translate(wrapped))


def test_lock_timeouts_and_bad_input_keep_their_own_types() -> None:
    lock = translate(asyncpg.exceptions.LockNotAvailableError("lock timeout"))
    assert type(lock) is Busy
    assert isinstance(translate(asyncpg.exceptions.UniqueViolationError("duplicate")), InvalidRequest)


def test_translated_errors_catches_the_emulated_connect_error() -> None:
    # The defect: SQLAlchemy 2.1 raises this from the pool's connect while PostgreSQL recovers; it is neither a
    # SQLAlchemyError nor an asyncpg error, and went through as a 500.
    with pytest.raises(DatabaseUnavailable, match="57P03"), translated_errors():
        raise DBAPI.Error(str(STARTING_UP), STARTING_UP)


async def test_a_refused_connection_is_database_unavailable_on_every_helper() -> None:
    engine = create_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none", pool_size=1)
    try:
        started = StartedCheckouts(engine)
        with pytest.raises(DatabaseUnavailable):
            await started.has("co-1")
        with pytest.raises(DatabaseUnavailable):
            await started.record("co-1")
        with pytest.raises(DatabaseUnavailable):
            async with read_transaction(engine) as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def _app_raising(error: BaseException) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


@pytest.mark.parametrize("error", [
    STARTING_UP,
    DBAPI.Error(str(STARTING_UP), STARTING_UP),
    OperationalError("SELECT 1", {}, STARTING_UP),
    ConnectionRefusedError(111, "refused"),
    PoolTimeoutError("QueuePool limit reached"),
    DatabaseUnavailable("down"),
    Busy("lock timeout"),
], ids=lambda e: type(e).__name__)
async def test_an_escaped_database_error_is_a_503_not_a_500(error: BaseException) -> None:
    transport = httpx.ASGITransport(app=_app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        response = await http.get("/boom")
    state = "busy" if type(error) is Busy else "unavailable"
    body = assert_problem(response, 503, f"the database is {state}")
    assert response.headers["Retry-After"].isdigit()
    assert body["dependency"] == "database"


async def test_another_database_error_is_still_a_500() -> None:
    transport = httpx.ASGITransport(app=_app_raising(asyncpg.exceptions.UniqueViolationError("duplicate")))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        assert_problem(await http.get("/boom"), 500)
