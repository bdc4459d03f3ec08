"""Every recorded CheckoutSaga history must replay against the current code (see record.py to add one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from booking_saga.replay import load_history, replay_files, replayer

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
EXPECTED = {
    "happy", "happy_attributes_at_start", "rejected", "expired", "cancelled", "needs_attention",
    # the fast shape (local activities, the hold clock from HELD, the customer's claim released) and the 4th participant
    "local_happy", "local_rejected", "car",
}


def test_every_path_has_a_history() -> None:
    assert EXPECTED <= {path.stem for path in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    await replayer().replay_workflow(load_history(path))


async def test_replay_files_exit_code() -> None:
    assert await replay_files([str(path) for path in HISTORIES]) == 0


@workflow.defn(name="CheckoutSaga", sandboxed=False)
class ReorderedSaga:
    """A 'change' that is not behind workflow.patched: it sleeps where the real saga schedules holds."""

    @workflow.run
    async def run(self, params: dict[str, object]) -> None:
        await workflow.sleep(1)


async def test_a_non_deterministic_change_is_caught() -> None:
    changed = Replayer(workflows=[ReorderedSaga], data_converter=pydantic_data_converter)
    results = await changed.replay_workflow(load_history(HISTORIES[0]), raise_on_replay_failure=False)
    assert results.replay_failure is not None
