"""The Redis availability cache: a hint that makes sold-out cheap, never the truth.

After each committed ledger change a service publishes the touched rows here; the API reads them to turn
away a request that is already sold out without starting a saga. PostgreSQL always decides, so every
failure here (Redis down, slow, returning garbage) means "unknown": callers go to the saga. Nothing in
this module raises to its caller, and no call waits longer than the budget.

One Redis hash per ledger row, `{prefix}{service}:{resource}` -> {version, capacity, held, sold}, e.g.
`bs:avail:flight:BA117/economy`. The service name comes first and has no colon, so any resource name is safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.protocol import RowChange
from services.types import RowAvailability

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "bs:avail:"
# Defaults of AvailabilityCache and its from_url (the settings REDIS_BUDGET_MS and CACHE_TTL_SECONDS say why).
DEFAULT_TTL_SECONDS = 300
DEFAULT_BUDGET_MS = 200
FIELDS = ("version", "capacity", "held", "sold")

T = TypeVar("T")

# KEYS: one key per row. ARGV[1]: TTL in seconds, then four values per row: version, capacity, held, sold.
# Writers race (two workers, a retry finishing late), so a row is written only when its version is newer
# than the stored one: the cache never goes back in time. The same version only refreshes the TTL.
# Whatever unreadable thing sits under a key is replaced, so garbage heals with the next write.
PUBLISH_SCRIPT = """
local ttl = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 4
  local version = tonumber(ARGV[at])
  local stored = nil
  local kind = redis.call('TYPE', key).ok
  if kind == 'hash' then
    local fields = redis.call('HMGET', key, 'version', 'capacity', 'held', 'sold')
    stored = tonumber(fields[1])
    for _, value in ipairs(fields) do
      if tonumber(value) == nil then stored = nil end
    end
  elseif kind ~= 'none' then
    redis.call('DEL', key)
  end
  if stored == nil or stored < version then
    redis.call('DEL', key)
    redis.call('HSET', key, 'version', ARGV[at], 'capacity', ARGV[at + 1], 'held', ARGV[at + 2], 'sold', ARGV[at + 3])
    redis.call('EXPIRE', key, ttl)
    written = written + 1
  elseif stored == version then
    redis.call('EXPIRE', key, ttl)
  end
end
return written
"""


class GarbageValue(ValueError):
    """Redis answered, but not with a row this module wrote."""


@dataclass
class CacheStats:
    """In-process counts, for tests and logs; /metrics reads the Prometheus counters instead."""

    hits: int = 0
    misses: int = 0
    errors: int = 0


class CacheMetrics:
    """Prometheus counters. Give each registry one AvailabilityCache: registering twice is an error."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        # registry=None keeps the counters unregistered (usable, just not exported).
        self.hits = Counter(
            "booking_saga_cache_hits", "Availability cache lookups that found the row", registry=registry
        )
        self.misses = Counter(
            "booking_saga_cache_misses", "Availability cache lookups that did not find the row", registry=registry
        )
        self.errors = Counter(
            "booking_saga_cache_errors",
            "Availability cache calls that failed, timed out or read garbage",
            ["operation"],
            registry=registry,
        )


class CacheSettings(Protocol):
    """What the cache reads of the settings (settings.Settings has it; services import no settings)."""

    @property
    def redis_url(self) -> str: ...

    @property
    def cache_ttl_seconds(self) -> int: ...

    @property
    def redis_budget_ms(self) -> int: ...


class AvailabilityCache:
    """Publishes ledger rows to Redis and reads them back, within a time budget, never raising."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        budget_ms: int = DEFAULT_BUDGET_MS,
        registry: CollectorRegistry | None = None,
        owns_client: bool = False,
    ) -> None:
        if ttl_seconds <= 0 or budget_ms <= 0:
            raise ValueError("ttl_seconds and budget_ms must be positive")
        self._client = client
        self._owns_client = owns_client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.budget_seconds = budget_ms / 1000
        self._publish_script = client.register_script(PUBLISH_SCRIPT)
        self.stats = CacheStats()
        self._metrics = CacheMetrics(registry)
        # Log the first failure and the recovery, not every failed call while Redis stays down.
        self._healthy = True
        # publish_soon's rows not yet sent, and the task sending them (aclose waits for it).
        self._unsent: list[RowChange] = []
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        budget_ms: int = DEFAULT_BUDGET_MS,
        registry: CollectorRegistry | None = None,
    ) -> AvailabilityCache:
        """A cache with its own client; close it with aclose()."""
        client = Redis.from_url(
            url,
            socket_connect_timeout=budget_ms / 1000,
            # One immediate retry reconnects a pooled connection that died with a restarted server;
            # redis-py's default backoff of seconds would only ever be cut short by the budget.
            retry=Retry(NoBackoff(), 1),
        )
        return cls(
            client, prefix=prefix, ttl_seconds=ttl_seconds, budget_ms=budget_ms, registry=registry, owns_client=True
        )

    @classmethod
    def from_settings(
        cls, settings: CacheSettings, *, registry: CollectorRegistry | None = None, prefix: str = DEFAULT_PREFIX
    ) -> AvailabilityCache:
        if not settings.redis_url:
            raise ValueError("REDIS_URL is empty: start the embedded Redis (booking-saga dev) or set it")
        return cls.from_url(
            settings.redis_url,
            prefix=prefix,
            ttl_seconds=settings.cache_ttl_seconds,
            budget_ms=settings.redis_budget_ms,
            registry=registry,
        )

    @property
    def client(self) -> Redis:
        return self._client

    def key(self, service: str, resource: str) -> str:
        return f"{self.prefix}{service}:{resource}"

    async def publish(self, rows: Sequence[RowChange]) -> None:
        """Write the rows (RowState or any RowChange) in one EVALSHA; an older version never replaces a newer one.

        Never raises: the ledger calls this after its commit, when a failure can only cost the hint.
        """
        if not rows:
            return
        keys: list[str] = []
        args: list[int] = [self.ttl_seconds]
        try:
            for row in rows:
                counters = row.availability
                keys.append(self.key(row.service, row.resource))
                args += [counters.version, counters.capacity, counters.held, counters.sold]
            await self._within_budget(self._publish_script(keys=keys, args=args))
        except Exception as error:
            self._failed("publish", error)
            return
        self._succeeded()

    def publish_soon(self, rows: Sequence[RowChange]) -> None:
        """`publish` without waiting for Redis (see AvailabilitySink.publish_soon). Rows handed over while a
        publish is on its way go together in the next one: concurrent holds cost one EVALSHA, not one each.
        Versions keep the order right: a row that lands after a newer one changes nothing."""
        if not rows:
            return
        self._unsent.extend(rows)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_unsent())

    async def _send_unsent(self) -> None:
        while self._unsent:
            rows, self._unsent = self._unsent, []
            await self.publish(rows)  # never raises

    async def published(self) -> None:
        """Wait until every row handed to publish_soon has been published (or failed to be: it is only a hint)."""
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    async def available(self, service: str, resources: Sequence[str]) -> dict[str, int] | None:
        """Available units per resource found, in one round trip. Absent = unknown; None = cache unusable."""
        if not resources:
            return {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for resource in resources:
                    pipe.hmget(self.key(service, resource), *FIELDS)
                replies = await self._within_budget(pipe.execute())
            rows = {resource: _parse_row(reply) for resource, reply in zip(resources, replies, strict=True)}
        except Exception as error:
            self._failed("available", error)
            return None
        self._succeeded()
        found = {resource: row.available for resource, row in rows.items() if row is not None}
        self._count_lookups(hits=len(found), misses=len(resources) - len(found))
        return found

    async def entry(self, service: str, resource: str) -> RowAvailability | None:
        """The cached row with its version, or None when it is not cached or the cache is unusable."""
        try:
            reply = await self._within_budget(self._client.hmget(self.key(service, resource), *FIELDS))
            row = _parse_row(reply)
        except Exception as error:
            self._failed("entry", error)
            return None
        self._succeeded()
        self._count_lookups(hits=int(row is not None), misses=int(row is None))
        return row

    async def ping(self) -> bool:
        """For /readyz: does Redis answer within the budget?"""
        try:
            await self._within_budget(self._client.ping())
        except Exception as error:
            self._failed("ping", error)
            return False
        self._succeeded()
        return True

    async def aclose(self) -> None:
        await self.published()
        if self._owns_client:
            await self._client.aclose()

    async def _within_budget(self, call: Awaitable[T]) -> T:
        # A cancelled redis-py command drops its connection, so a late reply can never be read by the next call.
        async with asyncio.timeout(self.budget_seconds):
            return await call

    def _count_lookups(self, *, hits: int, misses: int) -> None:
        self.stats.hits += hits
        self.stats.misses += misses
        self._metrics.hits.inc(hits)
        self._metrics.misses.inc(misses)

    def _failed(self, operation: str, error: Exception) -> None:
        self.stats.errors += 1
        self._metrics.errors.labels(operation=operation).inc()
        reason = "timed out" if isinstance(error, TimeoutError) else f"{type(error).__name__}: {error}"
        if self._healthy:
            log.warning("availability cache unusable, callers skip it (%s %s)", operation, reason)
        else:
            log.debug("availability cache still unusable (%s %s)", operation, reason)
        self._healthy = False

    def _succeeded(self) -> None:
        if not self._healthy:
            log.info("availability cache answers again")
        self._healthy = True


def _parse_row(reply: object) -> RowAvailability | None:
    """One HMGET reply (version, capacity, held, sold) as a row; None when the key does not exist."""
    if not isinstance(reply, list) or len(reply) != len(FIELDS):
        raise GarbageValue(f"unexpected reply {reply!r:.80}")
    if all(value is None for value in reply):
        return None
    try:
        version, capacity, held, sold = (int(value) for value in reply)
    except (TypeError, ValueError) as error:
        raise GarbageValue(f"unreadable row {reply!r:.80}") from error
    # Counters are a hint: never report fewer than zero units even if the stored numbers disagree.
    return RowAvailability(
        capacity=capacity, held=held, sold=sold, available=max(0, capacity - held - sold), version=version
    )
