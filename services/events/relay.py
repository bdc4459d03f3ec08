"""The webhook relay: every event POSTed to every endpoint, signed per Standard Webhooks, until a 2xx.

Each endpoint is served by a loop of its own, with its own HTTP connection pool and at most `concurrency` requests
in flight: a slow or dead endpoint fills only its own slots and never delays another endpoint, and no checkout ever
waits for a webhook (the saga only writes the outbox row). A round of the loop fans new events out to delivery
rows, leases the due heads of the checkouts' queues and POSTs each (services/events/deliveries.py holds the rules
that keep order per checkout and make several relays safe). It runs again when an event is committed (a NOTIFY on
`booking_events`) and every `poll_seconds` in any case; a round that only leases (nothing new to fan out) runs when
a 2xx found its checkout's next event waiting and could not lease it, or freed a slot while more were waiting.
Rounds that fan out start
at most every `round_seconds`: an event committed right after one waits for the next, with every other event
committed meanwhile, and they go out together (one fan-out and one lease for all). A round per commit costs the
database and the relay a fan-out and a lease per event, at the moment the next checkouts are being placed; an
event's delivery waits at most `round_seconds` more for it. A round that only leases does not wait. A checkout's
next event needs no round at all: the 2xx of the one before leases it to the same delivery task, which sends it at
once (services/events/deliveries.py, `delivered`).

A request: the event's JSON body; headers `webhook-id` (the event id), `webhook-timestamp`, `webhook-signature`
made by the `standardwebhooks` library from `WEBHOOK_SECRET`; redirects are not followed, and a proxy from the
environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) is used when one applies to the endpoint. A 2xx answer within
`timeout_seconds` is delivery; anything else is retried after an exponential backoff with jitter
(`backoff_base_seconds` doubling per attempt up to `backoff_max_seconds`, each delay drawn between half and all of
that), for `retry_hours`, then parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import random
import socket
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from services.errors import Busy
from services.events.deliveries import FAN_OUT_BATCH, Deliveries, Leased
from services.events.outbox import NOTIFY_CHANNEL
from services.unavailable import describe, is_database_unavailable

log = logging.getLogger(__name__)

# Commit to 2xx: a round's wait (round_seconds at most) and a POST when all is well, up to the retry window when an
# endpoint is down.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0)
# A lease lasts twice the request timeout plus this: the relay has given up on its request (and recorded the
# outcome) well before, whatever the clocks of relay and database say.
LEASE_MARGIN_SECONDS = 5.0
STATS_EVERY_SECONDS = 5.0
# Every this many stats rounds, heads whose promotion was missed are made due (a rare race; see deliveries.py).
UNSTICK_EVERY_ROUNDS = 6


# An endpoint's client: POSTs a body with headers and answers the status code; raises when there is no answer.
Post = Callable[[bytes, Mapping[str, str]], Awaitable[int]]


@dataclass(frozen=True)
class RelayConfig:
    urls: tuple[str, ...]
    secret: str
    retry_hours: float = 24.0
    timeout_seconds: float = 10.0
    concurrency: int = 8
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 3600.0
    poll_seconds: float = 1.0
    round_seconds: float = 0.1

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`: exponential, capped, with jitter (half to all of it)."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** max(attempt - 1, 0))
        return random.uniform(ceiling / 2, ceiling)


# Makes an endpoint's client for its loop, closed when the loop ends.
Client = Callable[[str, RelayConfig], AbstractAsyncContextManager[Post]]


def endpoint_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY or HTTP_PROXY, unless NO_PROXY excludes its host),
    as curl and httpx would pick it. Looked up once per endpoint: aiohttp's own lookup (`trust_env`) reads the
    environment again on every request, which costs more CPU than the request itself."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if proxy is None or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


@contextlib.asynccontextmanager
async def endpoint_client(url: str, config: RelayConfig) -> AsyncIterator[Post]:
    """One endpoint's HTTP client (aiohttp): a pool of `concurrency` keep-alive connections, `timeout_seconds`
    for a whole request, no redirects followed (a 3xx is not delivery)."""
    proxy = endpoint_proxy(url)
    connector = aiohttp.TCPConnector(limit=config.concurrency)
    timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post(body: bytes, headers: Mapping[str, str]) -> int:
            async with session.post(url, data=body, headers=headers, allow_redirects=False, proxy=proxy) as answer:
                # Read to the end: the connection then goes back to the pool instead of being closed.
                await answer.read()
                return answer.status

        yield post


def endpoint_label(url: str) -> str:
    """An endpoint as metrics and logs name it: scheme, host and path (credentials and query left out)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "booking_webhook_deliveries", "Webhook delivery attempts by endpoint and outcome: delivered (2xx), "
            "failed (retried later), parked (given up after WEBHOOK_RETRY_HOURS; replay with `booking-saga events "
            "replay`).", ["endpoint", "outcome"], registry=registry)
        self.lag = Histogram(
            "booking_webhook_delivery_lag_seconds", "From the event's commit to the endpoint's 2xx.", ["endpoint"],
            buckets=LAG_BUCKETS, registry=registry)
        self.pending = Gauge("booking_webhook_pending", "Deliveries waiting (due or backing off).", ["endpoint"],
                             registry=registry)
        self.parked = Gauge("booking_webhook_parked", "Deliveries parked, waiting for an operator's replay.",
                            ["endpoint"], registry=registry)
        self.oldest = Gauge("booking_webhook_oldest_pending_seconds", "Age of the oldest waiting delivery.",
                            ["endpoint"], registry=registry)
        self.rounds = Counter(
            "booking_webhook_rounds", "Relay rounds by endpoint: each fans out the events committed since the one "
            "before and leases the due deliveries; one at most every WEBHOOK_ROUND_SECONDS.", ["endpoint"],
            registry=registry)
        self.backlog = Gauge("booking_webhook_backlog_events", "Committed events not yet fanned out to the endpoint.",
                             ["endpoint"], registry=registry)


class Relay:
    def __init__(self, engine: AsyncEngine, config: RelayConfig, metrics: RelayMetrics | None = None) -> None:
        if not config.urls:
            raise ValueError("no webhook endpoints (WEBHOOK_URLS)")
        self.engine = engine
        self.config = config
        self.metrics = metrics or RelayMetrics(CollectorRegistry())
        self.deliveries = Deliveries(engine)
        self.webhook = Webhook(config.secret)
        self.lease_seconds = 2 * config.timeout_seconds + LEASE_MARGIN_SECONDS
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakes: list[_Signal] = []
        # Set once the endpoints are registered: events committed from then on reach every endpoint.
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        # Called with (url, event id) after each recorded 2xx: the bench's and tests' hook.
        self.on_delivered: Callable[[str, int], None] | None = None
        # Makes an endpoint's client: the bench's hook (its former-client arm).
        self.client: Client = endpoint_client

    def wake(self) -> None:
        """New events may have committed (a NOTIFY, a replay, an unstick, a stop): every endpoint fans out."""
        for signal in self._wakes:
            signal.new_events()

    def stop(self) -> None:
        """Ask `run` to end: each endpoint loop finishes its round (no statement is cut off), stops its requests
        in flight and hands their leases back, so another relay sends those events at once."""
        self._stopping.set()
        self.wake()

    async def run(self) -> None:
        """Deliver until `stop()` (or cancelled: then leases left behind run out by themselves)."""
        endpoints = await self._register()
        self.ready.set()
        serving = [asyncio.create_task(self._serve(url, endpoint_id)) for url, endpoint_id in endpoints.items()]
        helpers = [asyncio.create_task(self._listen()), asyncio.create_task(self._report(list(endpoints.values())))]
        try:
            await asyncio.gather(*serving)
        finally:
            for task in serving + helpers:
                task.cancel()
            await asyncio.gather(*serving, *helpers, return_exceptions=True)

    async def _register(self) -> dict[str, int]:
        while True:
            try:
                return await self.deliveries.register(self.config.urls)
            except Exception as error:
                if not is_database_unavailable(error):
                    raise
                log.warning("relay: the database is unavailable (%s); trying again", describe(error))
                await asyncio.sleep(self.config.poll_seconds)

    async def _serve(self, url: str, endpoint_id: int) -> None:
        label = endpoint_label(url)
        signal = _Signal()
        self._wakes.append(signal)
        in_flight: set[asyncio.Task[bool]] = set()
        # Every slot was taken or filled by the last lease: more may be due, so any delivery ending leases again.
        backlog = False

        def finished(task: asyncio.Task[bool]) -> None:
            in_flight.discard(task)
            if backlog or (not task.cancelled() and task.exception() is None and task.result()):
                signal.more_due()

        # The ones waiting for an answer (a stop drops those; the others are writing their outcome: let them).
        posting: set[asyncio.Task[bool]] = set()
        down = False
        rounds = self.metrics.rounds.labels(endpoint=label)
        loop = asyncio.get_running_loop()
        last_fan_out = -math.inf
        async with self.client(url, self.config) as post:
            try:
                while not self._stopping.is_set():
                    if signal.news:
                        # A fan-out at most every round_seconds: the commits meanwhile share it (the docstring).
                        await self._pause(last_fan_out + self.config.round_seconds - loop.time())
                        if self._stopping.is_set():
                            break
                        last_fan_out = loop.time()
                    rounds.inc()
                    signal.event.clear()
                    fan_out, signal.news = signal.news, False
                    try:
                        # New events (or a poll): fan them out first; a full batch: more may be waiting behind it.
                        while fan_out and await self.deliveries.fan_out(endpoint_id) == FAN_OUT_BATCH:
                            pass
                        free = self.config.concurrency - len(in_flight)
                        backlog = free <= 0
                        if free > 0:
                            leased = await self.deliveries.lease(endpoint_id, self.owner, free, self.lease_seconds)
                            backlog = len(leased) == free
                            for item in leased:
                                task = asyncio.create_task(self._deliver(post, url, label, item, posting))
                                in_flight.add(task)
                                task.add_done_callback(finished)
                        if down:
                            down = False
                            log.info("relay: %s resumed, the database is available again", label)
                    except Exception as error:
                        signal.news = True  # the next round starts over, fan-out included
                        if type(error) is Busy:  # a lock wait past lock_timeout: the next round tries again
                            log.info("relay: %s: database busy (%s); trying again", label, error)
                        elif not is_database_unavailable(error):
                            log.exception("relay: %s: a round failed", label)
                        elif not down:
                            down = True
                            log.warning("relay: %s paused, the database is unavailable (%s)", label,
                                        describe(error))
                    if self._stopping.is_set():
                        continue
                    try:
                        await asyncio.wait_for(signal.event.wait(), self.config.poll_seconds)
                    except TimeoutError:
                        signal.news = True  # the poll: a full round, whatever a NOTIFY may have missed
            finally:
                # Requests still waiting for an answer are dropped (an outcome being written is finished); then
                # every lease this relay holds here is handed back.
                for task in posting if self._stopping.is_set() else in_flight:
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)
                if self._stopping.is_set():
                    with contextlib.suppress(Exception):
                        await self.deliveries.release_all(endpoint_id, self.owner)

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds` (if positive) before a round, unless asked to stop meanwhile."""
        if seconds > 0 and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def sign(self, event_id: int, body: bytes, at: datetime) -> dict[str, str]:
        """The Standard Webhooks headers for `body`."""
        msg_id = str(event_id)
        return {
            "content-type": "application/json",
            "user-agent": "booking-saga-webhooks",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self.webhook.sign(msg_id, at, body),
        }

    async def _deliver(
        self, post: Post, url: str, label: str, item: Leased, posting: set[asyncio.Task[bool]]
    ) -> bool:
        """POST one event and record the outcome, then each next event of its checkout that a 2xx leased with it
        (a checkout's events back to back, in the same slot, with no lease round between); True when a lease round
        should follow (a next event due that was not leased)."""
        following: Leased | None = item
        wanted = False
        while following is not None:
            error = await self._post(post, following, posting)
            wanted, after = await self._record(url, label, following, error)
            if after is not None and self._stopping.is_set():
                # Handed back, as every other lease of a stopping relay is: any relay may send it at once.
                with contextlib.suppress(Exception):
                    await self.deliveries.release(after, self.owner)
                return False
            following = after
        return wanted

    async def _post(self, post: Post, item: Leased, posting: set[asyncio.Task[bool]]) -> str | None:
        """POST one event: None for a 2xx, else what went wrong."""
        event = item.event
        assert event.id is not None
        body = json.dumps(event.body(), separators=(",", ":")).encode()
        error: str | None = None
        this = asyncio.current_task()
        assert this is not None
        posting.add(this)
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                status = await post(body, self.sign(event.id, body, datetime.now(UTC)))
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {self.config.timeout_seconds:g} s"
        except Exception as problem:  # whatever the request met (refused, reset, a bad URL): a failed attempt
            error = f"{type(problem).__name__}: {problem}" if str(problem) else type(problem).__name__
        finally:
            posting.discard(this)
        return error

    async def _record(self, url: str, label: str, item: Leased, error: str | None) -> tuple[bool, Leased | None]:
        """Record the outcome: (a lease round wanted, the checkout's next event leased with a 2xx)."""
        event = item.event
        assert event.id is not None
        try:
            if error is None:
                outcome = await self.deliveries.delivered(item, self.owner, self.lease_seconds)
                if outcome.recorded:
                    self.metrics.deliveries.labels(endpoint=label, outcome="delivered").inc()
                    lag = (datetime.now(UTC) - item.recorded_at).total_seconds()
                    self.metrics.lag.labels(endpoint=label).observe(max(lag, 0.0))
                    if self.on_delivered is not None:
                        self.on_delivered(url, event.id)
                return outcome.next_due, outcome.next
            parked = await self.deliveries.failed(item, self.owner, error, self.config.backoff(item.attempt),
                                                  self.config.retry_hours * 3600)
        except Exception as problem:  # the lease runs out and the event goes again: at least once
            log.warning("relay: %s: event %d: could not record the outcome (%s)", label, event.id, describe(problem))
            return False, None
        if parked:
            self.metrics.deliveries.labels(endpoint=label, outcome="parked").inc()
            log.error("relay: %s: event %d parked after %d attempts (%s); with it %d later event(s) of checkout %s",
                      label, event.id, item.attempt, error, len(parked) - 1, event.checkout_id)
        else:
            self.metrics.deliveries.labels(endpoint=label, outcome="failed").inc()
            log.info("relay: %s: event %d attempt %d failed: %s", label, event.id, item.attempt, error)
        # Nothing new is due for it now: a retry's time comes with a poll.
        return False, None

    async def _listen(self) -> None:
        """Wake the endpoint loops on each commit's NOTIFY; the loops poll anyway, so a lost connection only
        slows delivery down to the poll until it is back."""

        def notified(*_args: Any) -> None:
            self.wake()

        while True:
            try:
                async with self.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    closed = asyncio.Event()
                    driver.add_termination_listener(functools.partial(_set, closed))
                    await driver.add_listener(NOTIFY_CHANNEL, notified)
                    try:
                        await closed.wait()
                    finally:
                        if not driver.is_closed():
                            await driver.remove_listener(NOTIFY_CHANNEL, notified)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.info("relay: not listening for new events (%s); polling", describe(error))
            await asyncio.sleep(self.config.poll_seconds * 5)

    async def _report(self, endpoint_ids: list[int]) -> None:
        rounds = 0
        while True:
            rounds += 1
            if rounds % UNSTICK_EVERY_ROUNDS == 0:
                try:
                    if unstuck := await self.deliveries.unstick(endpoint_ids):
                        log.warning("relay: %d delivery(ies) were left waiting behind a delivered event; due now",
                                    unstuck)
                        self.wake()
                except Exception as error:
                    log.debug("relay: no unstick round (%s)", describe(error))
            try:
                for stats in await self.deliveries.stats(self.config.urls):
                    label = endpoint_label(stats.url)
                    self.metrics.pending.labels(endpoint=label).set(stats.pending)
                    self.metrics.parked.labels(endpoint=label).set(stats.parked)
                    self.metrics.oldest.labels(endpoint=label).set(stats.oldest_pending_seconds)
                    self.metrics.backlog.labels(endpoint=label).set(stats.backlog)
            except Exception as error:
                log.debug("relay: no delivery stats (%s)", describe(error))
            await asyncio.sleep(STATS_EVERY_SECONDS)


class _Signal:
    """What wakes an endpoint's loop: new events (its next round fans out, then leases) or a delivery that left
    more due (a lease alone: nothing was committed, and a fan-out would find nothing)."""

    __slots__ = ("event", "news")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        # The first round fans out.
        self.news = True

    def new_events(self) -> None:
        self.news = True
        self.event.set()

    def more_due(self) -> None:
        self.event.set()


def _set(event: asyncio.Event, *_args: object) -> None:
    event.set()
