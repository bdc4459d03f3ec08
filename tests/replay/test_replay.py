"""Every recorded CheckoutSaga history must replay against the current code (see record.py to add one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.worker import Replayer

from runtime.codec import data_converter
from runtime.replay import load_history, replay_files, replayer
from settings import Settings
from tests.replay.stamp import REFRESH, read_stamp, workflows_digest

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
EXPECTED = {
    "happy", "happy_attributes_at_start", "rejected", "expired", "cancelled", "needs_attention",
    # the fast shape (local activities, the hold clock from HELD, the customer's claim released) and the 4th participant
    "local_happy", "local_rejected", "car",
    # the CustomerId pseudonym set at the start and kept (the keep-customer-pseudonym patch)
    "customer_pseudonym", "customer_pseudonym_former_worker",
    # every other terminal path (record.py's scenarios of the same names), and one recorded on the dev server
    "failed_confirm", "failed_hold", "operator_cancel", "cancel_before_held", "extend_refused",
    "needs_attention_hourly", "claim_release_failed", "dev_failed_confirm",
    # bookings that last: the saga writing its record, a part released while HELD, and CancelSale's paths
    "recorded_happy", "part_released", "sale_cancelled", "part_returned", "cancel_window_closed",
    # a paid sale's part returned and its share refunded (CancelSale with a payment)
    "paid_sale_cancelled",
    # CancelSale's paths again under cancel-sale-local-records (the record's activities local: one workflow task)
    "sale_cancelled_v2", "part_returned_v2", "cancel_window_closed_v2", "paid_sale_cancelled_v2",
    # a paid checkout started with the API's quote: authorized beside the holds, declined, refused as repriced
    "paid_beside", "paid_beside_declined", "paid_repriced",
    # every CheckoutSaga path again, started under patches-asked-at-start (one patch, in the first task)
    *(f"{name}_v2" for name in (
        "happy", "happy_attributes_at_start", "rejected", "expired", "cancelled", "needs_attention", "local_happy",
        "local_rejected", "car", "failed_confirm", "failed_hold", "operator_cancel", "cancel_before_held",
        "extend_refused", "needs_attention_hourly", "claim_release_failed", "dev_failed_confirm", "paid",
        "paid_declined", "paid_refunded", "recorded_happy", "part_released", "late_hold_failure", "unrecorded_sale",
        "paid_unrecorded_sale",
    )),
    # every CheckoutSaga path again, started under patches-asked-at-start-quote-included (one patch for the first
    # task's two, paid or not)
    *(f"{name}_v3" for name in (
        "happy", "happy_attributes_at_start", "rejected", "expired", "cancelled", "needs_attention", "local_happy",
        "local_rejected", "car", "failed_confirm", "failed_hold", "operator_cancel", "cancel_before_held",
        "extend_refused", "needs_attention_hourly", "claim_release_failed", "dev_failed_confirm", "paid",
        "paid_declined", "paid_refunded", "recorded_happy", "part_released", "late_hold_failure", "unrecorded_sale",
        "paid_unrecorded_sale", "paid_beside", "paid_beside_declined", "paid_repriced",
    )),
}


def test_every_path_has_a_history() -> None:
    assert EXPECTED <= {path.stem for path in HISTORIES}


def test_the_histories_were_checked_against_this_workflow_code() -> None:
    """workflows/ changed since the histories were stamped: record the path the change makes or alters, then
    refresh the stamp (it refuses while no history is new or re-recorded)."""
    assert read_stamp()["workflows"] == workflows_digest(), (
        "workflows/*.py changed since tests/replay/histories.stamp: record a history of the changed path "
        f"(python -m tests.replay.record NAME, see tests/replay/record.py), then run: {REFRESH}"
    )


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
    changed = Replayer(workflows=[ReorderedSaga], data_converter=data_converter(Settings()))
    results = await changed.replay_workflow(load_history(HISTORIES[0]), raise_on_replay_failure=False)
    assert results.replay_failure is not None
