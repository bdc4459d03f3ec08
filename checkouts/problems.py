"""The problem a checkout call answers with: `ProblemError`, raised below the API and the CLI alike, and the
small constructors the checkout calls use (`service_unavailable`).

Only the answer is decided here (status, problem kind, title, detail, headers, extra members); rendering it as
application/problem+json, and counting the 503s, is the API's (api/problems.py). The CLI prints its detail.
"""

from __future__ import annotations

from typing import Any, Literal

from services.errors import TEMPORARILY_UNAVAILABLE

# The Retry-After of a 503: how long a client waits before it retries with the same Idempotency-Key.
RETRY_AFTER_SECONDS = 2
# What a 503 is waiting for: the label of booking_saga_unavailable_answers_total.
Dependency = Literal["database", "temporal", "redis"]


class ProblemError(Exception):
    """Raised anywhere below a route to answer with a problem. `extras` become extra members."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        dependency: Dependency | None = None,
        **extras: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        # For a 503: which dependency is down (counted, and told to the client as the `dependency` member).
        self.dependency = dependency
        self.extras = extras


def service_unavailable(
    detail: str, *, dependency: Dependency, kind: str = TEMPORARILY_UNAVAILABLE.kind
) -> ProblemError:
    """A 503 the client should retry (with the same Idempotency-Key) after Retry-After seconds."""
    return ProblemError(
        TEMPORARILY_UNAVAILABLE.status, kind, TEMPORARILY_UNAVAILABLE.title, detail,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, dependency=dependency,
    )
