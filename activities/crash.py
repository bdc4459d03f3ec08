"""Deterministic crash points for the crash tests (tests/workflow/test_crash_points.py): a worker that dies at an
exact step proves the workflows settle and nothing moves twice. Inert unless set; the variables are read once, when
a worker builds its activities:

- BOOKING_SAGA_CRASH_BEFORE / BOOKING_SAGA_CRASH_AFTER: an activity's name (`orders.return_sale`,
  `checkout.mark_parts`); the process SIGKILLs itself before the activity's call, or after it returned (committed,
  its result lost);
- BOOKING_SAGA_CRASH_ONCE: a marker file, created atomically by the first to die: a restarted or second worker
  with the same point does not die again.
"""

from __future__ import annotations

import os
import signal


class CrashPoints:
    def __init__(self) -> None:
        self._before = os.environ.get("BOOKING_SAGA_CRASH_BEFORE", "")
        self._after = os.environ.get("BOOKING_SAGA_CRASH_AFTER", "")
        self._once = os.environ.get("BOOKING_SAGA_CRASH_ONCE", "")

    def before(self, name: str) -> None:
        """Die here if BOOKING_SAGA_CRASH_BEFORE names activity `name`: nothing of it reached its database."""
        self._at(self._before, name)

    def after(self, name: str) -> None:
        """Die here if BOOKING_SAGA_CRASH_AFTER names activity `name`: it committed, its answer is lost."""
        self._at(self._after, name)

    def _at(self, point: str, name: str) -> None:
        if point != name:
            return
        if self._once:
            try:
                os.close(os.open(self._once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)
