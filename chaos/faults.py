"""The faults of a chaos run, injected one at a time on a schedule, each followed by a restart.

- worker: SIGKILL one `booking-saga worker --service X`, a checkout (workflow) worker and a participant's
  (activity) worker in turn; back: the same command again.
- api: SIGKILL one `booking-saga api` replica; back: the same command, once /healthz answers.
- redis: SIGKILL redis-server; back: the same command, once the port answers.
- postgres: `pg_ctl stop -m immediate` (no checkpoint); back: `pg_ctl start -w`, through crash recovery.
- temporal: SIGKILL the dev server; back: started again on the same SQLite file.
- network: on every proxied link at once (chaos/proxy.py: worker <-> PostgreSQL, worker <-> Temporal,
  API <-> Temporal, API <-> Redis), in turn a partition, latency, loss (late segments) and a cut (every connection
  reset, new ones refused); back: the links healed.

Runs on the thread that started the stack (a restart blocks until the part is back); the load runs meanwhile.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chaos.stack import ChaosStack

FaultKind = Literal["worker", "api", "redis", "postgres", "temporal", "network"]
FAULT_KINDS: tuple[FaultKind, ...] = ("worker", "api", "redis", "postgres", "temporal", "network")
# A network fault's modes, in this order (the short CI run gets the first: a partition).
NETWORK_MODES = ("partition", "latency", "loss", "cut")
LATENCY_SECONDS = 0.2
LOSS_RATE, LOSS_STALL_SECONDS = 0.2, 0.5


@dataclass
class Fault:
    kind: FaultKind
    target: str
    started: float  # time.monotonic() of the kill
    recovered: float = 0.0  # back (restarted and answering)
    error: str | None = None


def plan(count: int, rng: random.Random) -> list[FaultKind]:
    """`count` faults (at least one of each kind), kinds spread out: every kind once per round, shuffled."""
    kinds: list[FaultKind] = []
    while len(kinds) < max(count, len(FAULT_KINDS)):
        round_ = list(FAULT_KINDS)
        rng.shuffle(round_)
        kinds += round_
    return kinds[: max(count, len(FAULT_KINDS))]


class FaultInjector:
    def __init__(self, stack: ChaosStack, rng: random.Random, down_seconds: float = 2.0) -> None:
        self.stack = stack
        self.rng = rng
        self.down_seconds = down_seconds
        self.faults: list[Fault] = []

    def run(self, kinds: list[FaultKind], seconds: float, *, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Inject `kinds` evenly over `seconds` from now (none in the first and last tenth of the time)."""
        start = time.monotonic()
        spacing = seconds * 0.8 / max(len(kinds), 1)
        for i, kind in enumerate(kinds):
            at = start + seconds * 0.1 + i * spacing
            while time.monotonic() < at:
                if should_stop():
                    return
                time.sleep(0.1)
            self.inject(kind)

    def inject(self, kind: FaultKind) -> Fault:
        stack = self.stack
        fault = Fault(kind, "", time.monotonic())
        self.faults.append(fault)
        try:
            if kind == "worker":
                # Alternately a workflow worker and an activity worker: both kinds of takeover are exercised.
                workflow_turn = sum(1 for f in self.faults if f.kind == "worker") % 2 == 1
                pool = [w for w in stack.loaded_workers() if (w.args[-1] == "checkout") == workflow_turn]
                victim = self.rng.choice(pool or stack.loaded_workers())
                fault.target = victim.name
                victim.kill()
                time.sleep(self.down_seconds / 2)
                victim.start()
            elif kind == "api":
                index = self.rng.randrange(len(stack.apis))
                fault.target = stack.apis[index].name
                stack.apis[index].kill()
                time.sleep(self.down_seconds / 2)
                stack.restart_api(index)
            elif kind == "redis":
                fault.target = "redis"
                stack.redis.kill()
                time.sleep(self.down_seconds)
                stack.redis.start()
            elif kind == "postgres":
                fault.target = "postgres"
                stack.postgres.crash()
                time.sleep(self.down_seconds)
                stack.postgres.start()
            elif kind == "network":
                mode = NETWORK_MODES[(sum(1 for f in self.faults if f.kind == "network") - 1) % len(NETWORK_MODES)]
                fault.target = f"links: {mode}"
                self._network(mode)
            else:
                fault.target = "temporal"
                stack.temporal.kill()
                time.sleep(self.down_seconds)
                stack.temporal.start()
        except Exception as error:  # reported in the table; the run goes on
            fault.error = f"{type(error).__name__}: {error}"
        fault.recovered = time.monotonic()
        return fault

    def _network(self, mode: str) -> None:
        links = list(self.stack.links.values())
        for link in links:
            if mode == "partition":
                link.partition()
            elif mode == "latency":
                link.latency(LATENCY_SECONDS)
            elif mode == "loss":
                link.loss(LOSS_RATE, LOSS_STALL_SECONDS)
            else:
                link.cut()
        # Latency and loss slow the system down without stopping it: they last longer than a partition or a cut.
        time.sleep(self.down_seconds * (3 if mode in ("latency", "loss") else 1))
        for link in links:
            link.heal()
