"""The API process's startup objects are kept out of the cyclic collector's passes while the app runs."""

from __future__ import annotations

import gc

from runtime.embedded import free_port
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app


async def test_startup_objects_are_frozen_while_the_app_runs_and_thawed_after() -> None:
    settings = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{free_port()}",
                        database_url="", redis_url="")
    async with running_app(settings) as (_app, _http):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
