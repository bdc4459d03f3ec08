"""Operator routes: `Authorization: Bearer <OPERATOR_TOKEN>`."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import AppState, StateDep
from api.problems import ProblemError

# auto_error=False: a missing header must give our problem+json 401, not FastAPI's plain 403.
bearer = HTTPBearer(auto_error=False, scheme_name="operatorToken", description="The operator token (OPERATOR_TOKEN).")


def is_operator(state: AppState, request: Request) -> bool:
    """Whether the request carries the operator token (constant-time compare)."""
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    expected = state.settings.operator_token
    return (scheme.lower() == "bearer" and bool(given) and bool(expected)
            and hmac.compare_digest(given.strip().encode(), expected.encode()))


async def require_operator(
    state: StateDep, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    expected = state.settings.operator_token
    given = credentials.credentials if credentials is not None else ""
    # Constant-time compare: response times must not reveal how much of a guess was right.
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ProblemError(
            401, "unauthorized", "Unauthorized",
            "this route needs `Authorization: Bearer <operator token>`" if not given else "wrong operator token",
            headers={"WWW-Authenticate": "Bearer"},
        )
