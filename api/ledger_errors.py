"""services.errors -> problems, for routes that call the ledgers directly (availability, upserts, prechecks).

The status, kind and title come from the error table (each error's `problem`, services/errors.py); the detail, in
words, is said here. A database failure's own words (driver messages, addresses) go to the log, never into the
problem's detail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from api.problems import ProblemError, service_unavailable
from services.errors import Busy, DatabaseUnavailable, LedgerError, UnknownResource

log = logging.getLogger(__name__)


@contextmanager
def ledger_problems(what: str, *, unknown_status: int = 404) -> Iterator[None]:
    """`unknown_status`: 404 when the unknown resource is in the path, 422 when it is named in a body."""
    try:
        yield
    except LedgerError as exc:
        raise ledger_problem(exc, what, unknown_status=unknown_status) from exc


def ledger_problem(exc: LedgerError, what: str, *, unknown_status: int = 404) -> ProblemError:
    """The problem for a ledger error raised by a route's own call to the `what` ledger."""
    problem = exc.problem
    if problem.with_checkout:  # the saga's answers, never a direct call's: the database's trouble, as a new error
        problem = LedgerError.problem
    if isinstance(exc, UnknownResource):
        return ProblemError(unknown_status, problem.kind, problem.title, f"unknown {what} {exc.resource}",
                            resource=exc.resource)
    if problem.status < 500:
        return ProblemError(problem.status, problem.kind, problem.title, str(exc))
    if isinstance(exc, DatabaseUnavailable):
        log.warning("the %s ledger is unavailable: %s", what, exc)
        detail = f"the {what} ledger is unavailable; retry later"
    elif isinstance(exc, Busy):
        log.warning("the %s ledger is busy: %s", what, exc)
        detail = f"the {what} ledger is busy; retry later"
    else:  # anything new: the database, not the request
        log.warning("the %s ledger failed: %s", what, exc)
        detail = f"the {what} ledger failed; retry later"
    return service_unavailable(detail, dependency="database", kind=problem.kind)
