"""The error table (services/errors.py): each ledger error goes to Temporal and back as itself, and answers HTTP
with the problem it names, wherever the API maps it."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from activities.adapter import ledger_failure, to_application_error
from api.ledger_errors import ledger_problem
from services.errors import (
    BY_TYPE,
    Busy,
    DatabaseUnavailable,
    Declined,
    ErrorType,
    HoldNotActive,
    InvalidRequest,
    LedgerError,
    StorageError,
    Unavailable,
    UnknownResource,
)
from services.types import HoldStatus, Shortage

SHORT = Shortage(resource="sku-1", requested=3, available=1)
ERRORS: list[LedgerError] = [
    Unavailable([SHORT]),
    Declined(Shortage(resource="payment", requested=10, available=0, reason="no credit")),
    UnknownResource("sku-9"),
    HoldNotActive("h-1", HoldStatus.RELEASED),
    HoldNotActive("h-2", None),
    InvalidRequest("bad"),
    Busy("lock timeout"),
    StorageError("boom"),
    DatabaseUnavailable("down"),
]


def _as_received(error: ApplicationError, remote: bool) -> BaseException:
    if not remote:
        return error
    activity = ActivityError("activity failed", scheduled_event_id=1, started_event_id=2, identity="w",
                             activity_type="t", activity_id="1", retry_state=RetryState.NON_RETRYABLE_FAILURE)
    activity.__cause__ = error
    return activity


def test_every_error_type_has_its_class() -> None:
    assert set(BY_TYPE) == set(ErrorType)


@pytest.mark.parametrize("remote", [False, True])
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_comes_back_from_temporal_as_itself(error: LedgerError, remote: bool) -> None:
    sent = to_application_error(error)
    assert sent.type == error.type.value and sent.non_retryable is not error.retryable
    kind, back = ledger_failure(_as_received(sent, remote))
    assert kind == error.type
    assert type(back) is BY_TYPE[error.type]
    assert back is not None and back.details() == error.details()


def test_failures_of_another_kind_carry_no_ledger_error() -> None:
    assert ledger_failure(ApplicationError("no", type="UpdateRefused")) == (None, None)
    assert ledger_failure(RuntimeError("no")) == (None, None)
    # A type the table knows without the details it needs: the type, no error.
    assert ledger_failure(ApplicationError("short", type=ErrorType.UNAVAILABLE.value)) == (ErrorType.UNAVAILABLE, None)


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (UnknownResource("x"), 404, "unknown-resource"),
        (InvalidRequest("bad"), 422, "invalid-request"),
        (DatabaseUnavailable("down"), 503, "database-unavailable"),
        (Busy("slow"), 503, "temporarily-unavailable"),
        (StorageError("boom"), 503, "temporarily-unavailable"),
        # The saga's answers never come from a route's own ledger call: the database's trouble there.
        (Unavailable([SHORT]), 503, "temporarily-unavailable"),
        (HoldNotActive("h", None), 503, "temporarily-unavailable"),
    ],
)
def test_a_routes_ledger_error_answers_its_tables_problem(error: LedgerError, status: int, kind: str) -> None:
    problem = ledger_problem(error, "flight")
    assert (problem.status, problem.kind) == (status, kind)
    assert problem.title == ("Service temporarily unavailable" if status == 503 else error.problem.title)
