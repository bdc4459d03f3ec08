"""Waiting on a condition, never on a duration: `await eventually(check)`.

No bound of its own: the per-test timeout (pyproject's `timeout`, pytest-timeout) fails a test whose condition never
comes, with every thread's stack. A test never asserts how long something took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], every: float = 0.05) -> None:
    """Return once `check()` holds, polling every `every` seconds."""
    while True:
        if await check():
            return
        await asyncio.sleep(every)
