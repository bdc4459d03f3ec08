"""Driver errors raised straight by asyncpg (the ledger's hot statements) become typed ledger errors."""

from __future__ import annotations

import asyncpg
import pytest

from services.errors import Busy, DatabaseUnavailable, InvalidRequest, LedgerError, StorageError
from services.ledger.transaction import translate


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncpg.exceptions.LockNotAvailableError("lock timeout"), Busy),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), Busy),
        (asyncpg.exceptions.SerializationError("serialization"), Busy),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), DatabaseUnavailable),
        (asyncpg.exceptions.CheckViolationError("check"), InvalidRequest),
        (asyncpg.exceptions.UniqueViolationError("unique"), InvalidRequest),
        (asyncpg.InterfaceError("connection is closed"), DatabaseUnavailable),
        (asyncpg.exceptions.UndefinedTableError("no table"), StorageError),
    ],
)
def test_asyncpg_errors_are_translated(error: Exception, expected: type[LedgerError]) -> None:
    assert type(translate(error)) is expected
