"""Run the app in-process for tests: its lifespan, and an httpx client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from api.main import create_app
from settings import Settings

OPERATOR_TOKEN = "test-operator-token-of-32-bytes-or-more"
# What a test app runs with unless the test sets it itself: test settings are not production's (CUSTOMER_AUTH=none,
# the dev CHECKOUT_ID_SECRET), and one test client sends far more than a caller's rate limit. The tests of those
# rules (tests/api/test_secure_defaults.py) set both explicitly.
TEST_DEFAULTS = {"allow_insecure": True, "rate_limit": 0.0}


def with_test_defaults(settings: Settings) -> Settings:
    """`settings` with TEST_DEFAULTS for what the test did not set explicitly."""
    return settings.model_copy(
        update={name: value for name, value in TEST_DEFAULTS.items() if name not in settings.model_fields_set}
    )


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(with_test_defaults(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=60) as client:
            yield app, client
