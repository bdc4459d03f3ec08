"""CPU time per process over a scenario: on a shared 2-core machine, who was busy says what bounds a figure.

A process named in `trees` is counted with its descendants: PostgreSQL's postmaster with every backend (one per
pooled connection, each a process of its own). A backend that exits meanwhile is counted through the postmaster's
reaped-children times, less what it had used before the block started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator

import psutil


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def _reaped_seconds(process: psutil.Process) -> float:
    """CPU of the children `process` has waited for (exited): the kernel adds theirs to its children_* times."""
    try:
        times = process.cpu_times()
        return times.children_user + times.children_system
    except psutil.Error:
        return 0.0


def _tree(process: psutil.Process) -> dict[int, float]:
    """CPU seconds so far of `process` and of each live descendant, by pid."""
    seconds = {process.pid: _cpu_seconds(process)}
    with contextlib.suppress(psutil.Error):
        for child in process.children(recursive=True):
            seconds[child.pid] = _cpu_seconds(child)
    return seconds


class Meter:
    """CPU seconds per named process (and this bench process) between `start` and `stop`."""

    def __init__(self, pids: dict[str, int], trees: Collection[str] = ()) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.processes["bench"] = psutil.Process()
        self.trees = set(trees)
        self._before: dict[str, tuple[dict[int, float], float]] = {}

    def _read(self, name: str, process: psutil.Process) -> tuple[dict[int, float], float]:
        if name in self.trees:
            return _tree(process), _reaped_seconds(process)
        return {process.pid: _cpu_seconds(process)}, 0.0

    def start(self) -> None:
        self._before = {name: self._read(name, process) for name, process in self.processes.items()}

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name, process in self.processes.items():
            before, reaped_before = self._before[name]
            after, reaped_after = self._read(name, process)
            live = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
            gone = sum(seconds for pid, seconds in before.items() if pid not in after)
            used[name] = round(live + (reaped_after - reaped_before) - gone, 3)
        return used


@contextlib.contextmanager
def busy(pids: dict[str, int], into: dict[str, float], trees: Collection[str] = ()) -> Iterator[None]:
    """Fill `into` with the CPU seconds each process (and this bench process) used while the block ran."""
    meter = Meter(pids, trees)
    meter.start()
    yield
    into.update(meter.stop())
