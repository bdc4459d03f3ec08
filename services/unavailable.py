"""The one answer to "is this exception PostgreSQL being unavailable?", whatever layer raised it.

"Unavailable" means no statement can run now, but one will once the server is back: nothing is wrong with the
request, so the caller retries (activities: a retryable error; HTTP: 503 with Retry-After). It covers

- the server unreachable or gone: refused or reset connections, a missing socket, a connect timeout (OSError);
  asyncpg's ConnectionDoesNotExistError and its InterfaceError on a closed connection;
- the server refusing connections for now: 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now
  ("the database system is starting up", crash recovery), 53300 too_many_connections, and every class 08
  SQLSTATE (connection exceptions);
- SQLAlchemy's pool with no connection to hand out in time (sqlalchemy.exc.TimeoutError);
- SQLAlchemy's wrappings of the above: DBAPIError (OperationalError, InterfaceError, ...) and, since 2.1, the
  asyncpg dialect's emulated DBAPI errors, both with the driver's error in `.orig`; a DBAPIError whose
  connection SQLAlchemy invalidated is a disconnect by SQLAlchemy's own judgement.

Anything else (a lock timeout, a constraint violation, a bug) is not "unavailable": services/ledger/transaction.py
classifies those itself.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, EmulatedDBAPIException
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services.errors import DatabaseUnavailable, LedgerError

# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections; class 08 is matched by prefix.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
CONNECTION_EXCEPTION_CLASS = "08"
# Wrappers are followed through `.orig` at most this deep (SQLAlchemy wraps twice: DBAPIError -> emulated -> asyncpg).
_MAX_DEPTH = 4


def sqlstate_of(exc: BaseException) -> str:
    """The SQLSTATE an exception (or the driver error it wraps) carries, or ''."""
    for layer in _layers(exc):
        state = getattr(layer, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
    return ""


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means PostgreSQL cannot serve anyone right now (see the module docstring)."""
    for layer in _layers(exc):
        if isinstance(layer, DatabaseUnavailable | PoolTimeoutError | ConnectionError | OSError):
            # OSError includes ConnectionRefusedError/ResetError, a missing unix socket and TimeoutError.
            return True
        if isinstance(layer, DBAPIError) and layer.connection_invalidated:
            return True
        if isinstance(layer, asyncpg.ConnectionDoesNotExistError):
            return True
        if isinstance(layer, asyncpg.InterfaceError) and "closed" in str(layer):
            return True
        state = getattr(layer, "sqlstate", None)
        if isinstance(state, str) and (state in UNAVAILABLE_SQLSTATES or state.startswith(CONNECTION_EXCEPTION_CLASS)):
            return True
    return False


def describe(exc: BaseException) -> str:
    """A short reason for logs and problem details: the innermost driver error's class, SQLSTATE and message."""
    if isinstance(exc, LedgerError):  # already translated: its message is the reason
        return str(exc)
    root = list(_layers(exc))[-1]
    state = sqlstate_of(exc)
    message = str(root).strip().splitlines()[0] if str(root).strip() else ""
    label = f"{type(root).__name__} {state}".strip()
    return f"{label}: {message}" if message else label


def database_unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The typed error for an exception `is_database_unavailable` accepted."""
    if isinstance(exc, DatabaseUnavailable):
        return exc
    return DatabaseUnavailable(f"database unavailable ({describe(exc)}): try again")


def _layers(exc: BaseException) -> list[BaseException]:
    """`exc`, then the driver errors it wraps (`.orig` of SQLAlchemy's DBAPIError and emulated DBAPI errors)."""
    layers = [exc]
    current: BaseException = exc
    for _ in range(_MAX_DEPTH):
        inner = getattr(current, "orig", None) if isinstance(current, DBAPIError | EmulatedDBAPIException) else None
        if not isinstance(inner, BaseException) or inner in layers:
            break
        layers.append(inner)
        current = inner
    return layers
