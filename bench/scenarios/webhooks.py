"""Webhook delivery lag: from an event's commit to the receiver's 2xx, p50 and p99, under a steady checkout load.

Writers append each checkout's events (HELD, then CONFIRMED) in transactions of their own, as the booking record's
transaction does, at `rate` checkouts per second; a relay (services/events/relay.py, in this process) delivers them
to a receiver in a process of its own that verifies each signature (standardwebhooks) and answers 204. The lag of
an event is the relay's 2xx time minus the event's `recorded_at` (clock_timestamp() at its insert, just before the
commit; same machine, same clock). Alongside: the append transaction's own time, against the same transaction
without the append (a row written to a scratch table): what the outbox costs a record write.

`booking-saga bench` runs it after the ledger scenario, at the rate its real checkouts reached. Run alone:
`python -m bench.scenarios.webhooks [--rate 30] [--seconds 20]` (an embedded PostgreSQL). The booking record
writes the outbox in every real shape; what delivering them costs a checkout (the relay beside the bench stack's
workers, to this module's receiver) is the "webhooks and relay" step (bench/scenarios/steps.py).

`measure_round_trips` runs the same load through relays on today's statements and on the former ones
(bench/former_relay.py), and through one on the former HTTP client (httpx), in the same run: each cut to the relay,
measured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import cpu
from bench.former_relay import FormerDeliveries, httpx_client
from bench.results import Figure
from bench.stats import percentile
from runtime.embedded import free_port, wait_for_port
from services.db import create_engine
from services.events import append_with, events_for
from services.events.deliveries import Deliveries
from services.events.relay import Client, Relay, RelayConfig, endpoint_client
from services.ledger.transaction import driver_transaction

SCENARIO = "webhooks"
# Issue 27's target for the delivery lag's p99 (at the real checkouts' rate at c=5; the bench runs this scenario
# at their rate at c=10, the higher load).
DELIVERY_P99_TARGET_MS = 1000.0
# How long the load runs, by bench size.
SECONDS = {"tiny": 3.0, "small": 10.0, "full": 30.0}
# How long the relay may take to end its rounds once asked to stop, before it is cancelled.
STOP_SECONDS = 30.0
SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789ab").decode()


def view(checkout_id: str, status: str, statuses: list[str]) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {"checkout_id": checkout_id, "customer_id": "bench", "request_hash": "h", "status": status,
            "expires_at": None, "unavailable": [], "alternatives": [], "error": None,
            "holds": [{"hold_key": f"{checkout_id}:orders", "service": "orders", "status": "ACTIVE",
                       "lines": [{"resource": "SKU-BENCH", "quantity": 1}]}],
            "history": [{"status": s, "at": now} for s in statuses]}


SCRATCH_WRITE = "INSERT INTO bench_record (view) VALUES ($1::text::jsonb)"


async def _timed(engine: AsyncEngine, previous: dict[str, object] | None, current: dict[str, object],
                 with_events: bool) -> float:
    started = time.perf_counter()
    async with driver_transaction(engine) as db:
        # The record's own write, stood in for by a row in a scratch table, its events in the same statement as
        # the record's write does it (services/bookings/records.py write_record).
        events = events_for(previous, current) if with_events else []
        await append_with(db, SCRATCH_WRITE, [json.dumps(current)], events)
    return time.perf_counter() - started


def _start_receiver(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.scenarios.webhooks", "receive", str(port)],
                            env=dict(os.environ))


@dataclass
class Delivery:
    """One load through one relay: each event's lag, the append's times and the CPU spent until all were in."""

    written: list[int]
    lag_ms: list[float]
    with_events: list[float]
    without: list[float]
    cpu_seconds: dict[str, float]
    # Events written and never delivered.
    missing: int


async def measure(
    database_url: str, *, rate: float = 30.0, seconds: float = 20.0
) -> tuple[list[Figure], dict[str, object]]:
    run = await deliver(database_url, rate=rate, seconds=seconds)
    written, lag, with_events, without = run.written, run.lag_ms, run.with_events, run.without
    p50_plain = percentile(without, 50) * 1000
    details: dict[str, object] = {"rate_checkouts_per_second": rate, "seconds": seconds, "events": len(written),
                                  "lag_ms": {f"p{p}": percentile(lag, p) for p in (50, 90, 99)}}
    return [
        Figure(SCENARIO, "delivery lag p50 (commit -> 2xx)", percentile(lag, 50), "ms"),
        Figure(SCENARIO, "delivery lag p99 (commit -> 2xx)", percentile(lag, 99), "ms", target_kind="at_most",
               target=DELIVERY_P99_TARGET_MS),
        Figure(SCENARIO, "events delivered", float(len(lag)), "events"),
        Figure(SCENARIO, "events not delivered", float(run.missing), "events", target_kind="at_most", target=0),
        Figure(SCENARIO, "record write with its events p50", percentile(with_events, 50) * 1000, "ms",
               baseline=p50_plain, baseline_name="the same write without events"),
        Figure(SCENARIO, "record write with its events p99", percentile(with_events, 99) * 1000, "ms",
               baseline=percentile(without, 99) * 1000, baseline_name="the same write without events"),
    ], details


async def measure_round_trips(
    database_url: str, postgres_pid: int | None, *, rate: float = 30.0, seconds: float = 20.0
) -> tuple[list[Figure], dict[str, object]]:
    """Three cuts of the relay, each against its former self, the same load each: the one-round-trip statements
    against the former transactions (bench/former_relay.py), the aiohttp client against httpx (as it ran before:
    its log line per request quiet, sniffio installed), and rounds at most every `round_seconds` against a round
    per commit (WEBHOOK_ROUND_SECONDS=0). In the order today's, former, httpx, a round per commit, today's (the two
    of today's pooled, so a drift through the run weighs on both sides alike). CPU per delivered event: the relay's
    (this process; the writers run in another) and PostgreSQL's with its backends (the writers' statements
    included: the same in every arm)."""
    arms: dict[str, list[Delivery]] = {"one round trip": [], "former": [], "httpx": [], "per commit": []}
    for name in ("one round trip", "former", "httpx", "per commit", "one round trip"):
        arms[name].append(await deliver(
            database_url, rate=rate, seconds=seconds, postgres_pid=postgres_pid, writers_apart=True,
            deliveries=FormerDeliveries if name == "former" else Deliveries,
            client=httpx_client if name == "httpx" else endpoint_client,
            round_seconds=0.0 if name == "per commit" else RelayConfig.round_seconds))

    def per_event(name: str, process: str) -> float:
        runs = arms[name]
        events = sum(len(run.lag_ms) for run in runs)
        return sum(run.cpu_seconds.get(process, math.nan) for run in runs) * 1000 / max(events, 1)

    def lag(name: str, p: int) -> float:
        return percentile([ms for run in arms[name] for ms in run.lag_ms], p)

    base = "the former transactions, same load"
    per_commit = "a round per commit, same load"
    figures = [
        Figure(SCENARIO, "cut: relay CPU per event", per_event("one round trip", "bench"),
               "ms", baseline=per_event("former", "bench"), baseline_name=base),
        Figure(SCENARIO, "cut: PostgreSQL CPU per event", per_event("one round trip", "postgres"), "ms",
               baseline=per_event("former", "postgres"), baseline_name=base),
        Figure(SCENARIO, "cut: delivery lag p50 with one round trip", lag("one round trip", 50), "ms",
               baseline=lag("former", 50), baseline_name=base),
        Figure(SCENARIO, "cut: relay CPU per event, aiohttp client", per_event("one round trip", "bench"),
               "ms", baseline=per_event("httpx", "bench"), baseline_name="the httpx client, same load"),
        Figure(SCENARIO, "cut: delivery lag p50, aiohttp client", lag("one round trip", 50), "ms",
               baseline=lag("httpx", 50), baseline_name="the httpx client, same load"),
        Figure(SCENARIO, "cut: relay CPU per event, rounds batched", per_event("one round trip", "bench"), "ms",
               baseline=per_event("per commit", "bench"), baseline_name=per_commit),
        Figure(SCENARIO, "cut: PostgreSQL CPU per event, rounds batched", per_event("one round trip", "postgres"),
               "ms", baseline=per_event("per commit", "postgres"), baseline_name=per_commit),
        Figure(SCENARIO, "cut: delivery lag p50, rounds batched", lag("one round trip", 50), "ms",
               baseline=lag("per commit", 50), baseline_name=per_commit),
        Figure(SCENARIO, "cut: delivery lag p99, rounds batched", lag("one round trip", 99), "ms",
               baseline=lag("per commit", 99), baseline_name=per_commit),
        Figure(SCENARIO, "cut: events not delivered", float(sum(run.missing for runs in arms.values()
                                                                for run in runs)), "events",
               target_kind="at_most", target=0),
    ]
    details: dict[str, object] = {
        name: [{"events": len(run.lag_ms), "cpu_seconds": run.cpu_seconds,
                "lag_ms": {f"p{p}": percentile(run.lag_ms, p) for p in (50, 99)}} for run in runs]
        for name, runs in arms.items()
    }
    return figures, details


async def _write(engine: AsyncEngine, rate: float, seconds: float, prefix: str) -> tuple[list[float], list[float]]:
    """Checkouts at `rate` per second for `seconds`, each two record writes (HELD, then CONFIRMED); every other
    checkout writes no events, the baseline for the append's cost. The writes' seconds, with events and without."""
    with_events: list[float] = []
    without: list[float] = []

    async def checkout(n: int) -> None:
        cid = f"{prefix}{uuid.uuid4().hex[:12]}"
        held = view(cid, "HELD", ["PENDING", "HELD"])
        confirmed = view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"])
        events = n % 2 == 0
        times = with_events if events else without
        times.append(await _timed(engine, None, held, events))
        times.append(await _timed(engine, held, confirmed, events))

    tasks = []
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < seconds:
        tasks.append(asyncio.create_task(checkout(n)))
        n += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    return with_events, without


async def _write_apart(database_url: str, rate: float, seconds: float, prefix: str) -> None:
    engine = create_engine(database_url, pool_size=10)
    try:
        print(json.dumps(await _write(engine, rate, seconds, prefix)))
    finally:
        await engine.dispose()


async def deliver(
    database_url: str, *, rate: float, seconds: float, deliveries: type[Deliveries] = Deliveries,
    postgres_pid: int | None = None, writers_apart: bool = False,
    client: Client = endpoint_client, round_seconds: float = RelayConfig.round_seconds,
) -> Delivery:
    """Write events at `rate` checkouts per second for `seconds` while a relay on `deliveries` delivers them
    (the writers in this process, or with `writers_apart` in a process of their own)."""
    engine = create_engine(database_url, pool_size=10)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    receiver = _start_receiver(port)
    try:
        wait_for_port(port)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_record (id bigserial PRIMARY KEY, view jsonb)"))
        relay = Relay(engine, RelayConfig(urls=(url,), secret=SECRET, poll_seconds=1.0, round_seconds=round_seconds))
        relay.deliveries = deliveries(engine)
        relay.client = client
        recorded: dict[int, datetime] = {}
        expected: set[int] = set()
        all_in = asyncio.Event()

        def delivered(_url: str, event_id: int) -> None:
            recorded[event_id] = datetime.now(UTC)
            if expected and expected <= recorded.keys():
                all_in.set()

        relay.on_delivered = delivered
        running = asyncio.create_task(relay.run())
        await asyncio.wait_for(relay.ready.wait(), 30)
        # This load's checkouts (an earlier load's events went to an endpoint of its own).
        prefix = f"bench-{uuid.uuid4().hex[:6]}-"

        meter = cpu.Meter({} if postgres_pid is None else {"postgres": postgres_pid}, trees=("postgres",))
        meter.start()
        if writers_apart:
            # The writers in a process of their own: this process's CPU is then the relay's alone.
            writer = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.scenarios.webhooks", "write", "--database-url", database_url,
                "--rate", str(rate), "--seconds", str(seconds), "--prefix", prefix,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            output, _ = await writer.communicate()
            if writer.returncode != 0:
                raise RuntimeError(f"the webhook scenario's writers failed (exit {writer.returncode})")
            with_events, without = json.loads(output)
        else:
            with_events, without = await _write(engine, rate, seconds, prefix)
        async with engine.connect() as conn:
            written = [row[0] for row in await conn.execute(text(
                "SELECT id FROM checkout.events WHERE checkout_id LIKE :p"), {"p": prefix + "%"})]
        expected.update(written)
        if expected <= recorded.keys():
            all_in.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 120)
        cpu_seconds = meter.stop()
        # The relay's own stop (a flag its loops check each round). A cancel could be lost on Python 3.11, where
        # asyncio.wait_for (the relay's wait for its next round) can swallow one, and left the run hanging.
        relay.stop()
        try:
            await asyncio.wait_for(asyncio.shield(running), STOP_SECONDS)
        except TimeoutError:
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, recorded_at FROM checkout.events WHERE id = ANY(:ids)"),
                                       {"ids": list(recorded)})).all()
        lag = [(recorded[event_id] - at).total_seconds() * 1000 for event_id, at in rows]
    finally:
        receiver.terminate()
        receiver.wait(10)
        await engine.dispose()
    return Delivery(written, lag, with_events, without, cpu_seconds, len(set(written) - set(recorded)))


def receive(port: int) -> None:
    from standardwebhooks import Webhook

    webhook = Webhook(SECRET)

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as a real endpoint's server does: with HTTP/1.0 every delivery cost the relay a new connection.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            webhook.verify(body, dict(self.headers.items()), json_parse=False)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", nargs="?", default="measure", choices=("measure", "receive", "write"))
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--rate", type=float, default=30.0, help="checkouts per second (two events each)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--database-url", help="write: the database to write the events into")
    parser.add_argument("--prefix", default="bench-", help="write: the checkouts' id prefix")
    args = parser.parse_args()
    if args.command == "receive":
        receive(args.port)
        return
    if args.command == "write":
        asyncio.run(_write_apart(args.database_url, args.rate, args.seconds, args.prefix))
        return
    from runtime.embedded import start_postgres
    from services.migrate import reset

    with tempfile.TemporaryDirectory() as directory:
        server = start_postgres(Path(directory) / "postgres", delete_on_stop=True)
        try:
            asyncio.run(reset(server.url))
            figures, _details = asyncio.run(measure(server.url, rate=args.rate, seconds=args.seconds))
        finally:
            server.stop()
    for figure in figures:
        base = f"  (vs {figure.baseline:.2f} {figure.unit}: {figure.baseline_name})" if figure.baseline else ""
        print(f"{figure.name}: {figure.value:.2f} {figure.unit}{base}")


if __name__ == "__main__":
    main()
