"""`booking-saga relay`: the webhook relay as a process of its own, and `booking-saga events failed|replay`.

Why its own process (and compose service) rather than a task in the checkout worker: webhooks must never cost a
checkout anything, and an endpoint that is slow or down must not take CPU, sockets or event-loop time from the
sagas. Any number of relays can run (services/events/deliveries.py makes that safe); one is enough for most
deployments, a second one is for availability. `booking-saga dev` starts one when WEBHOOK_URLS is set.

Without WEBHOOK_URLS the relay has nothing to do: it says so and waits to be stopped, so an orchestrator that
restarts exited processes does not loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any, TextIO

from services.db import create_engine
from settings import Settings

if TYPE_CHECKING:
    from services.events.relay import RelayConfig

# The relay's own modules (httpx, standardwebhooks, prometheus) are imported where used: every `booking-saga`
# command builds the parser this module adds to.

log = logging.getLogger(__name__)
STOP_SECONDS = 15.0


def relay_config(settings: Settings) -> RelayConfig:
    from services.events.relay import RelayConfig

    return RelayConfig(
        urls=tuple(settings.webhook_urls), secret=settings.webhook_secret, retry_hours=settings.webhook_retry_hours,
        timeout_seconds=settings.webhook_timeout_seconds, concurrency=settings.webhook_concurrency,
        backoff_base_seconds=settings.webhook_backoff_base_seconds,
        backoff_max_seconds=settings.webhook_backoff_max_seconds, poll_seconds=settings.webhook_poll_seconds,
        round_seconds=settings.webhook_round_seconds,
    )


async def run_relay(settings: Settings) -> None:
    """Deliver until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if not settings.webhook_urls:
        log.warning("relay: WEBHOOK_URLS is not set: nothing to deliver (the feed, GET /v1/events, still works)")
        await stop.wait()
        return
    from prometheus_client import CollectorRegistry, start_http_server

    from services.events.relay import Relay, RelayMetrics
    from services.ledger.transaction import LOCK_TIMEOUT

    registry = CollectorRegistry(auto_describe=True)
    if settings.relay_metrics_port is not None:
        start_http_server(settings.relay_metrics_port, addr=settings.relay_metrics_host, registry=registry)
    # A few connections: statements are short and no connection is held across a request. The relay's statements
    # commit on their own (no BEGIN to set it in): each waits for a lock as long as a ledger transaction does.
    engine = create_engine(settings.database_url, pool_size=4, server_settings={"lock_timeout": LOCK_TIMEOUT})
    relay = Relay(engine, relay_config(settings), RelayMetrics(registry))
    try:
        running = asyncio.create_task(relay.run())
        stopped = asyncio.create_task(stop.wait())
        log.info("relay: delivering to %d endpoint(s)", len(settings.webhook_urls))
        await asyncio.wait([running, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        relay.stop()
        # A graceful stop takes a round and the outcomes being written; past this, leases run out by themselves.
        done, _ = await asyncio.wait([running], timeout=STOP_SECONDS)
        if not done:
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if running.done() and not running.cancelled() and running.exception() is not None:
            raise running.exception()  # type: ignore[misc]
    finally:
        await engine.dispose()


def add_events_parser(sub: Any) -> None:
    sub.add_parser("relay", help="deliver events to WEBHOOK_URLS (Standard Webhooks), retrying, parking failures")
    events = sub.add_parser("events", help="operators: webhook deliveries parked after WEBHOOK_RETRY_HOURS")
    actions = events.add_subparsers(dest="action", required=True)
    failed = actions.add_parser("failed", help="list parked deliveries (oldest event first)")
    failed.add_argument("--endpoint", help="only this webhook URL")
    failed.add_argument("--limit", type=int, default=100)
    failed.add_argument("--json", action="store_true")
    replay = actions.add_parser("replay", help="deliver parked events again, in order, with a fresh retry window")
    replay.add_argument("event_ids", nargs="*", type=int, help="these events (each with its checkout's parked events "
                        "behind it); none: every parked delivery")
    replay.add_argument("--endpoint", help="only to this webhook URL")


async def events_main(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from services.events.deliveries import Deliveries

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        deliveries = Deliveries(engine)
        if args.action == "failed":
            parked = await deliveries.parked(args.endpoint, args.limit)
            if args.json:
                rows = [{**vars(p), "created_at": p.created_at.isoformat(), "parked_at": p.parked_at.isoformat()}
                        for p in parked]
                print(json.dumps(rows, indent=2), file=out)
            elif not parked:
                print("no parked deliveries", file=out)
            for p in [] if args.json else parked:
                print(f"{p.event_id}\t{p.type}\t{p.checkout_id}\t{p.url}\tattempts={p.attempts}\t"
                      f"parked={p.parked_at.isoformat()}\t{p.last_error or ''}", file=out)
            return 0
        replayed = await deliveries.replay(args.event_ids or None, args.endpoint)
        print(f"replaying {len(replayed)} delivery(ies): {' '.join(map(str, replayed))}".rstrip(), file=out)
        return 0 if replayed or not args.event_ids else 1
    finally:
        await engine.dispose()


def cmd_relay(settings: Settings, _args: argparse.Namespace) -> int:
    import uvloop

    if not settings.database_url:
        sys.exit("DATABASE_URL is not set (only `booking-saga dev` starts an embedded PostgreSQL)")
    uvloop.run(run_relay(settings))
    return 0


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.database_url:
        sys.exit("DATABASE_URL is not set")
    return asyncio.run(events_main(settings, args, sys.stdout))
