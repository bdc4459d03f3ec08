"""services.errors -> problems, for routes that call the ledgers directly (availability, upserts, prechecks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from api.problems import ProblemError, service_unavailable
from services.errors import Busy, DatabaseUnavailable, InvalidRequest, LedgerError, UnknownResource


@contextmanager
def ledger_problems(what: str, *, unknown_status: int = 404) -> Iterator[None]:
    """`unknown_status`: 404 when the unknown resource is in the path, 422 when it is named in a body."""
    try:
        yield
    except UnknownResource as exc:
        raise ProblemError(
            unknown_status, "unknown-resource", "Unknown resource", f"unknown {what} {exc.resource}",
            resource=exc.resource,
        ) from exc
    except InvalidRequest as exc:
        raise ProblemError(422, "invalid-request", "Invalid request", str(exc)) from exc
    except DatabaseUnavailable as exc:
        raise service_unavailable(
            f"the {what} ledger is unavailable: {exc}", dependency="database", kind="database-unavailable"
        ) from exc
    except Busy as exc:
        raise service_unavailable(f"the {what} ledger is busy: {exc}", dependency="database") from exc
    except LedgerError as exc:  # StorageError and anything new: the database, not the request
        raise service_unavailable(f"the {what} ledger failed: {exc}", dependency="database") from exc
