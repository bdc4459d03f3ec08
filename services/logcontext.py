"""Which checkout the current piece of work concerns, for log lines.

A context variable, so it follows the asyncio task (and what it awaits) without threading an argument through
every call: `with checkout_context(checkout_id): ...` around a checkout's handling, or `bind_checkout(id)` for
the rest of the current task. `runtime.logs` puts `current_checkout_id()` on each record. This module sits
at the bottom layer (standard library only) so api/, activities/ and services/ may all import it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_checkout_id: ContextVar[str | None] = ContextVar("booking_saga_checkout_id", default=None)


def current_checkout_id() -> str | None:
    return _checkout_id.get()


def bind_checkout(checkout_id: str) -> None:
    """Tag every later record of this context (an asyncio task copies it into the tasks it starts)."""
    _checkout_id.set(checkout_id)


@contextlib.contextmanager
def checkout_context(checkout_id: str) -> Iterator[None]:
    """Tag the records logged inside the block; the previous binding comes back after it."""
    token = _checkout_id.set(checkout_id)
    try:
        yield
    finally:
        _checkout_id.reset(token)
