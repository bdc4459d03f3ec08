"""Replay recorded CheckoutSaga histories against the current workflow code: non-determinism fails loudly.

`booking-saga replay tests/replay/histories/*.json` replays files; `booking-saga replay --query
"WorkflowType='CheckoutSaga'"` replays the histories of a running server. Exit code 0 = every history replayed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, WorkflowReplayResults

from runtime.codec import data_converter
from runtime.temporal import connect
from settings import Settings, get_settings
from workflows.cancel_sale import CancelSale
from workflows.checkout_saga import CheckoutSaga

log = logging.getLogger(__name__)


def replayer(settings: Settings | None = None) -> Replayer:
    """A Replayer with the process's payload codec: encrypted histories need PAYLOAD_KEYS, plaintext ones
    (recorded before encryption) replay either way."""
    return Replayer(workflows=[CheckoutSaga, CancelSale], data_converter=data_converter(settings or get_settings()))


def load_history(path: str | Path) -> WorkflowHistory:
    """A history JSON file as `temporal workflow show --output json` or WorkflowHistory.to_json() writes it."""
    # The workflow id only labels the replay: the file name stands in for it.
    return WorkflowHistory.from_json(Path(path).stem, Path(path).read_text())


def _report(results: WorkflowReplayResults, total: int) -> int:
    for run_id, failure in results.replay_failures.items():
        print(f"NON-DETERMINISTIC run {run_id}: {failure}")
    print(f"replayed {total} histories, {len(results.replay_failures)} failed")
    return 1 if results.replay_failures else 0


async def replay_files(paths: list[str], settings: Settings | None = None) -> int:
    histories = [load_history(path) for path in paths]

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    results = await replayer(settings).replay_workflows(each(), raise_on_replay_failure=False)
    return _report(results, len(histories))


async def replay_query(settings: Settings, query: str) -> int:
    client = await connect(settings)
    counted: list[WorkflowHistory] = []

    async def histories() -> AsyncIterator[WorkflowHistory]:
        async for history in client.list_workflows(query).map_histories():
            counted.append(history)
            yield history

    results = await replayer(settings).replay_workflows(histories(), raise_on_replay_failure=False)
    return _report(results, len(counted))
