"""Soak: the stack's own processes sampled through a long chaos run, checked for leaks at the end.

A sampler thread reads, every `every` seconds, each API and worker process's resident memory, open file
descriptors and open sockets (psutil). A process restarted by a fault starts a new series (a new pid). At the
end, every series long enough (at least half the run) must be flat: its last quarter's median no more than
RSS_GROWTH times (plus RSS_SLACK_MB) and FD_SLACK descriptors / sockets above its second quarter's median (the
first quarter is warm-up: caches fill, pools open). `booking-saga chaos --minutes 60 --soak` runs it (outside CI).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

import psutil

from chaos.invariants import GlobalCheck
from chaos.servers import Managed

RSS_GROWTH = 1.25
RSS_SLACK_MB = 32.0
FD_SLACK = 16


@dataclass
class Sample:
    at: float
    rss_mb: float
    fds: int
    sockets: int


@dataclass
class Series:
    name: str
    pid: int
    samples: list[Sample] = field(default_factory=list)


class Sampler(threading.Thread):
    def __init__(self, processes: list[Managed], every: float = 30.0) -> None:
        super().__init__(name="chaos-soak", daemon=True)
        self.processes = processes
        self.every = every
        self.series: dict[tuple[str, int], Series] = {}
        self.started = time.monotonic()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            self.sample()
            self._stopping.wait(self.every)

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)
        self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        for managed in self.processes:
            if managed.process is None or managed.process.poll() is not None:
                continue
            try:
                process = psutil.Process(managed.process.pid)
                with process.oneshot():
                    sample = Sample(now, process.memory_info().rss / 2**20, process.num_fds(),
                                    len(process.net_connections(kind="inet")))
            except psutil.Error:  # died between the poll and the read: the next series starts on restart
                continue
            key = (managed.name, managed.process.pid)
            self.series.setdefault(key, Series(*key)).samples.append(sample)

    def checks(self) -> list[GlobalCheck]:
        run = time.monotonic() - self.started
        grown: list[str] = []
        judged = 0
        for series in self.series.values():
            samples = series.samples
            if len(samples) < 8 or samples[-1].at - samples[0].at < run / 2:
                continue
            judged += 1
            quarter = len(samples) // 4
            settled, last = samples[quarter: 2 * quarter], samples[-quarter:]
            for what, before, after, limit in (
                ("RSS MB", _median(settled, "rss_mb"), _median(last, "rss_mb"),
                 _median(settled, "rss_mb") * RSS_GROWTH + RSS_SLACK_MB),
                ("fds", _median(settled, "fds"), _median(last, "fds"), _median(settled, "fds") + FD_SLACK),
                ("sockets", _median(settled, "sockets"), _median(last, "sockets"),
                 _median(settled, "sockets") + FD_SLACK),
            ):
                if after > limit:
                    grown.append(f"{series.name} (pid {series.pid}) {what} {before:.0f} -> {after:.0f}")
        detail = "; ".join(grown) if grown else f"{judged} process series flat (RSS, fds, sockets)"
        return [GlobalCheck("resources flat (soak)", judged > 0 and not grown,
                            detail if judged else "no process lived through half the run: nothing to judge")]

    def notes(self) -> list[str]:
        lines = []
        for series in self.series.values():
            first, last = series.samples[0], series.samples[-1]
            lines.append(f"{series.name} pid {series.pid}: RSS {first.rss_mb:.0f} -> {last.rss_mb:.0f} MB, "
                         f"fds {first.fds} -> {last.fds}, sockets {first.sockets} -> {last.sockets}, "
                         f"{len(series.samples)} samples")
        return lines


def _median(samples: list[Sample], attribute: str) -> float:
    return float(statistics.median(getattr(sample, attribute) for sample in samples))
