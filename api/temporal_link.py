"""The API's connection to Temporal, which may come and go.

The app starts even when Temporal is unreachable: checkout routes answer 503 + Retry-After until a
background task gets the connection; /readyz reports where it stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from temporalio.client import Client

from api.problems import service_unavailable
from runtime.temporal import connect, tls_config
from settings import Settings

log = logging.getLogger(__name__)
RECONNECT_EVERY_SECONDS = 2.0


class TemporalLink:
    def __init__(self, settings: Settings) -> None:
        # Before any connection: a bad TLS file is named now, not retried every 2 s. (Plaintext payloads are refused
        # by create_app's start checks, with the other unsafe settings.)
        tls_config(settings)
        self._settings = settings
        self.client: Client | None = None
        self.last_error: str | None = "not connected yet"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try once now; on failure keep trying in the background."""
        if not await self._try_connect():
            self._task = asyncio.create_task(self._keep_trying(), name="temporal-connect")

    async def _try_connect(self) -> bool:
        try:
            self.client = await connect(self._settings)
        except Exception as exc:  # the SDK raises RuntimeError for transport failures
            self.last_error = f"cannot reach Temporal at {self._settings.temporal_address}: {exc}"
            log.warning("%s", self.last_error)
            return False
        self.last_error = None
        return True

    async def _keep_trying(self) -> None:
        while True:
            await asyncio.sleep(RECONNECT_EVERY_SECONDS)
            if await self._try_connect():
                return

    def require(self) -> Client:
        if self.client is None:
            raise service_unavailable(
                "the workflow service (Temporal) is unreachable; retry with the same Idempotency-Key",
                kind="temporal-unavailable", dependency="temporal",
            )
        return self.client

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
