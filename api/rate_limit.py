"""Requests per second per caller, counted where every replica sees the same count (Redis).

Contract:
- `RATE_LIMIT` requests per second per caller, in bursts of up to twice that: a moving window of `2 x RATE_LIMIT`
  requests per 2 seconds (the `limits` library's moving-window strategy); `RATE_LIMIT=0` turns it off.
- The caller (`caller_key`) is, first match wins: the operator (its token), a customer (a verified customer JWT's
  `sub`), else the client address: the TCP peer, or, when the peer is one of TRUSTED_PROXIES, the right-most
  X-Forwarded-For address that is not itself a trusted proxy. A token that does not verify counts as its address.
- The counts live in Redis (REDIS_URL), shared by every API replica; without REDIS_URL, in the process.
- A refused caller is refused from the process, without Redis, until its window frees a request (the reset time
  Redis gave): a refusal adds nothing to the window and no replica can remove from it, so the answer is the one
  Redis would give, and a flood of refused requests costs neither Redis nor the loop a round trip.
- Redis unreachable or slower than REDIS_BUDGET_MS: the request is let through unchecked (fail open, for reads and
  checkouts alike: a limit is never worth a 500), counted in `booking_rate_limit_unchecked_total` and logged once
  per outage; the limiter then skips Redis for `PAUSE_SECONDS` so an outage does not cost every request a budget.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from api.identity import InvalidToken, bearer_token
from settings import Settings

log = logging.getLogger(__name__)

# The window: a burst of twice the per-second rate fits in it, and the average over it is the rate.
WINDOW_SECONDS = 2
# After a failed Redis call, how long requests go unchecked before Redis is tried again.
PAUSE_SECONDS = 1.0
# Refused callers remembered in the process at most; past it, those whose window has freed are forgotten.
MAX_BLOCKED = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Verdict:
    """`allowed`, or the seconds to wait (Retry-After)."""

    allowed: bool
    retry_after: int = 0


ALLOWED = Verdict(True)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES entries: addresses or CIDR networks; a bad entry is a ValueError naming it."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {value!r} is not an address or network") from exc
    return tuple(networks)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str:
    """The client's address: `peer`, unless it is a trusted proxy; then the right-most X-Forwarded-For entry that
    is not one (the entries left of it are the client's word, which anyone can forge)."""
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def caller_key(authorization: str | None, peer: str, forwarded_for: Sequence[str], *, operator_token: str,
               customer_of: Callable[[str], str] | None, proxies: Sequence[Network]) -> tuple[str, str]:
    """(kind, key): ("operator", ...), ("customer", ...) or ("address", ...); see the module docstring.
    `customer_of`: a customer token's customer id, or InvalidToken (None: CUSTOMER_AUTH=none)."""
    token = bearer_token(authorization)
    if token:
        if operator_token and hmac.compare_digest(token.encode(), operator_token.encode()):
            return "operator", "operator"
        if customer_of is not None:
            try:
                return "customer", "customer:" + customer_of(token)
            except InvalidToken:
                pass  # the route answers 401; meanwhile the sender counts as its address
    return "address", "address:" + client_address(peer, forwarded_for, proxies)


class RateLimiter:
    """One per app: `check(key)` says whether the caller may go on."""

    def __init__(self, storage: Storage, rate: float, budget_seconds: float, unchecked: Counter) -> None:
        self.rate = rate
        self.item: RateLimitItem = RateLimitItemPerSecond(max(1, round(2 * rate)), WINDOW_SECONDS)
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.budget_seconds = budget_seconds
        self.unchecked = unchecked
        self._paused_until = 0.0
        self._down = False
        # key -> when (time.time()) its window frees a request: refused until then without asking Redis.
        self._blocked: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings, unchecked: Counter) -> RateLimiter | None:
        """None when RATE_LIMIT=0. Builds no connection: Redis is first asked on the first request."""
        if settings.rate_limit <= 0:
            return None
        budget = settings.redis_budget_ms / 1000
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(settings.redis_url, implementation="redispy", key_prefix="booking_saga_rate",
                                   socket_timeout=budget, socket_connect_timeout=budget)
        else:
            storage = MemoryStorage()
        return cls(storage, settings.rate_limit, budget, unchecked)

    async def check(self, key: str) -> Verdict:
        blocked_until = self._blocked.get(key)
        if blocked_until is not None:
            now = time.time()
            if now < blocked_until:
                return Verdict(False, max(1, math.ceil(blocked_until - now)))
            del self._blocked[key]
        if time.monotonic() < self._paused_until:
            self.unchecked.inc()
            return ALLOWED
        try:
            async with asyncio.timeout(self.budget_seconds):
                if await self.strategy.hit(self.item, key):
                    allowed = True
                else:
                    allowed = False
                    stats = await self.strategy.get_window_stats(self.item, key)
        except Exception as error:  # Redis down or slow: let the request through (the module docstring)
            self.unchecked.inc()
            self._paused_until = time.monotonic() + PAUSE_SECONDS
            if not self._down:
                self._down = True
                log.warning("rate limits unchecked: the limiter's store failed (%s: %s); requests go through "
                            "until it answers again", type(error).__name__, error)
            return ALLOWED
        if self._down:
            self._down = False
            log.info("rate limits checked again: the limiter's store answers")
        if allowed:
            return ALLOWED
        self._block(key, stats.reset_time)
        return Verdict(False, max(1, math.ceil(stats.reset_time - time.time())))

    def _block(self, key: str, until: float) -> None:
        if len(self._blocked) >= MAX_BLOCKED:
            now = time.time()
            self._blocked = {k: t for k, t in self._blocked.items() if t > now}
            if len(self._blocked) >= MAX_BLOCKED:  # a burst of distinct refused callers: start over
                self._blocked.clear()
        self._blocked[key] = until

    async def aclose(self) -> None:
        # The redis-py client the library's bridge holds (none for the in-process store).
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()
