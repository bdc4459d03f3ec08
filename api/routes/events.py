"""The event feed: `GET /v1/events?after=<id>&limit=<n>`, for systems that pull (docs/events.md).

Events come in id order, which is commit order (services/events/outbox.py): a reader that stores `next` after
handling a page and asks again from it never misses an event, and sees one again only if it asks again from an
older id (at least once). Operator token, or FEED_TOKEN when set (a token that reads the feed and nothing else).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials

from api.auth import bearer
from api.deps import StateDep
from api.problems import ProblemError, problem_docs, service_unavailable
from api.schemas import EventBody, EventPage
from services.errors import LedgerError
from services.events import read_after

router = APIRouter(prefix="/v1", tags=["events"])
LIMIT_MAX = 1000
ID_MAX = 2**63 - 1  # event ids are PostgreSQL bigints


async def require_feed_reader(
    state: StateDep, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    given = (credentials.credentials if credentials is not None else "").encode()
    tokens = [t.encode() for t in (state.settings.operator_token, state.settings.feed_token) if t]
    # Every token compared, in constant time: which one matched (or how much of it) must not show in the timing.
    matches = [hmac.compare_digest(given, token) for token in tokens]
    if not given or not any(matches):
        raise ProblemError(
            401, "unauthorized", "Unauthorized",
            "this route needs `Authorization: Bearer <operator token or feed token>`" if not given
            else "wrong token",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get("/events", response_model=EventPage, summary="Read the event feed", operation_id="list_events",
            dependencies=[Depends(require_feed_reader)], responses=problem_docs(401, 422, 503))
async def list_events(
    state: StateDep,
    after: Annotated[int, Query(ge=0, le=ID_MAX, description="The `next` of the previous page (0: from the start).")]
    = 0,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description="At most this many events.")] = 100,
) -> EventPage:
    """Events with ids above `after`, in commit order. Store `next` once the page is handled and ask from it:
    nothing committed later ever has an id at or below it. An empty page answers `next` = `after`."""
    if state.engine is None:
        raise service_unavailable("no database is configured", dependency="database")
    try:
        events = await read_after(state.engine, after, limit)
    except LedgerError as error:
        raise service_unavailable(f"the events could not be read ({error})", dependency="database") from error
    last = events[-1].id if events else None
    return EventPage(events=[EventBody.model_validate(event.body()) for event in events],
                     next=last if last is not None else after)
