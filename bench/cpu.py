"""CPU time per process over a scenario: on a shared 2-core machine, who was busy says what bounds a figure."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psutil


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


@contextlib.contextmanager
def busy(pids: dict[str, int], into: dict[str, float]) -> Iterator[None]:
    """Fill `into` with the CPU seconds each process (and this bench process) used while the block ran."""
    processes = {name: psutil.Process(pid) for name, pid in pids.items()}
    processes["bench"] = psutil.Process()
    before = {name: _cpu_seconds(process) for name, process in processes.items()}
    yield
    into.update({name: round(_cpu_seconds(p) - before[name], 2) for name, p in processes.items()})
