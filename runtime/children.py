"""Child processes of `booking-saga dev`: started in their own session, stopped in order, never left behind."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If `booking-saga dev` itself is killed (SIGKILL), the kernel sends SIGTERM to its children so nothing lingers.
    # The kernel's "parent" is the thread that started the child: start children from a thread that outlives them.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Children:
    """Processes started in order and stopped in reverse order (API before workers before servers)."""

    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, args: Sequence[str], env: dict[str, str] | None = None, *, stdout: int | None = None
    ) -> subprocess.Popen[bytes]:
        # A session of its own: Ctrl-C reaches only `dev`, which then stops everything in a safe order.
        process = subprocess.Popen(
            list(args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.started.append((name, process))
        return process

    def forget(self, process: subprocess.Popen[bytes]) -> None:
        """Stop one child now and leave it out of what `exited` and `stop_all` look at."""
        stop(process)
        self.started = [(name, child) for name, child in self.started if child is not process]

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.started:
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def stop_all(self, timeout: float = 15.0) -> None:
        for _name, process in reversed(self.started):
            stop(process, timeout)
        self.started.clear()


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
