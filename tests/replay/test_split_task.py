"""A local activity's marker in an earlier workflow task than the code that saw its result.

The worker can complete a workflow task with a local activity's marker before the workflow code has been handed
that result (seen on the dev server under load: the first task after a server restart timed out, the next one
completed with the first release's marker, and the code saw it in the task after). Replay hands the result over in
the marker's task, one task early. A `workflow.patched` asked right after that result answers False there, and its
marker, later in the history, fails the replay: what tests/workflow/test_lost_update.py met in CI.

`split/dev_lost_confirm.json` is that history, as the dev server kept it. `split_after_first_failed_release` makes
the same split in a recorded history: after the first release that failed, a workflow task ends. Under the old
patches (the saga asked `unrecorded-sale-given-back` after the release's result) the split history fails; a saga
started under `patches-asked-at-start` asks no patch after its first task, so its split history replays.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory

from runtime.replay import load_history, replayer
from workflows.checkout_saga import PATCHES_AT_START, PATCHES_AT_START_QUOTED, QUOTE_PATCH

# Paid checkouts started with the API's quote (their payment held beside the inventory).
QUOTED = ("paid_beside", "paid_beside_declined", "paid_repriced")

HERE = Path(__file__).parent
HISTORIES = HERE / "histories"
NON_DETERMINISM = "Non-deprecated patch marker encountered for change unrecorded-sale-given-back"


def split_after_first_failed_release(path: Path) -> WorkflowHistory:
    """The history at `path` with a workflow task ended (scheduled, started, completed) right after the marker of
    the first release that failed: every later event moves up three ids, and what the task completed after that
    marker is now the new task's."""
    events: list[dict[str, Any]] = json.loads(path.read_text())["events"]
    at = next(i for i, event in enumerate(events) if _failed_release(event))
    split_id = int(events[at]["eventId"])
    template = {event["eventType"]: event for event in events}

    def shifted(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shifted_id(key, item) for key, item in value.items()}
        if isinstance(value, list):
            return [shifted(item) for item in value]
        return value

    def shifted_id(key: str, value: Any) -> Any:
        if (key == "eventId" or key.endswith("EventId")) and str(value).isdigit() and int(value) > split_id:
            return str(int(value) + 3)
        return shifted(value)

    def task_event(kind: str, offset: int, **ids: int) -> dict[str, Any]:
        event = copy.deepcopy(template[f"EVENT_TYPE_WORKFLOW_TASK_{kind}"])
        event["eventId"] = str(split_id + offset)
        event["eventTime"] = events[at]["eventTime"]
        attributes = next(value for key, value in event.items() if key.endswith("EventAttributes"))
        attributes.update({key: str(split_id + value) for key, value in ids.items()})
        return event

    inserted = [
        task_event("SCHEDULED", 1),
        task_event("STARTED", 2, scheduledEventId=1),
        task_event("COMPLETED", 3, scheduledEventId=1, startedEventId=2),
    ]
    after = [shifted(event) for event in events[at + 1:]]
    for event in after:  # the rest of the former task's commands, up to its next task
        if event["eventType"].startswith("EVENT_TYPE_WORKFLOW_TASK"):
            break
        for key, attributes in event.items():
            if key.endswith("EventAttributes") and "workflowTaskCompletedEventId" in attributes:
                attributes["workflowTaskCompletedEventId"] = str(split_id + 3)
    split = {"events": [*events[: at + 1], *inserted, *after]}
    return WorkflowHistory.from_json(f"{path.stem}-split", json.dumps(split))


def _failed_release(event: dict[str, Any]) -> bool:
    marker = event.get("markerRecordedEventAttributes")
    if not marker or marker.get("markerName") != "core_local_activity" or "failure" not in marker:
        return False
    data = json.loads(base64.b64decode(marker["details"]["data"]["payloads"][0]["data"]))
    return str(data["activity_type"]).endswith(".release")


async def test_the_dev_servers_split_history_fails_under_the_old_patches() -> None:
    """The history that failed in CI: recorded before PATCHES_AT_START, it cannot replay (a saga in flight like it
    is reset, docs/operations.md)."""
    results = await replayer().replay_workflow(
        load_history(HERE / "split" / "dev_lost_confirm.json"), raise_on_replay_failure=False
    )
    assert results.replay_failure is not None and NON_DETERMINISM in str(results.replay_failure)


async def test_the_split_fails_a_saga_of_the_old_patches() -> None:
    """The split reproduces the failure: the same recorded path replays whole, and fails split."""
    await replayer().replay_workflow(load_history(HISTORIES / "unrecorded_sale.json"))
    results = await replayer().replay_workflow(
        split_after_first_failed_release(HISTORIES / "unrecorded_sale.json"), raise_on_replay_failure=False
    )
    assert results.replay_failure is not None and NON_DETERMINISM in str(results.replay_failure)


@pytest.mark.parametrize(
    "name", ["unrecorded_sale_v2", "paid_unrecorded_sale_v2", "unrecorded_sale_v3", "paid_unrecorded_sale_v3"]
)
async def test_a_saga_of_patches_asked_at_start_replays_split(name: str) -> None:
    await replayer().replay_workflow(split_after_first_failed_release(HISTORIES / f"{name}.json"))


async def test_a_saga_of_patches_asked_at_start_asks_none_after_its_first_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every history recorded under PATCHES_AT_START, replayed: each `workflow.patched` is asked in the first
    workflow task (history length 3: started, task scheduled, task started), and the only ones asked are
    PATCHES_AT_START_QUOTED (not in these histories), it and, in a paid checkout started with a quote,
    QUOTE_PATCH."""
    asked = _patches_asked(monkeypatch)
    paths = [path for path in sorted(HISTORIES.glob("*_v2.json")) if _is_checkout(path)]
    assert len(paths) >= 20
    paths += [HISTORIES / f"{name}.json" for name in QUOTED]
    for path in paths:
        await replayer().replay_workflow(load_history(path))
    assert {workflow_id for workflow_id, _, _ in asked} == {path.stem for path in paths}
    assert {(patch_id, length) for _, patch_id, length in asked} == {
        (PATCHES_AT_START_QUOTED, 3), (PATCHES_AT_START, 3), (QUOTE_PATCH, 3)
    }
    assert {workflow_id for workflow_id, patch_id, _ in asked if patch_id == QUOTE_PATCH} == set(QUOTED)


async def test_a_saga_of_one_patch_at_start_asks_that_one_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every history recorded under PATCHES_AT_START_QUOTED, replayed: it is the one patch asked, in the first
    workflow task, by every saga, a paid one started with a quote included (its one marker stands for
    PATCHES_AT_START and QUOTE_PATCH), and the one marker each history holds."""
    asked = _patches_asked(monkeypatch)
    paths = [path for path in sorted(HISTORIES.glob("*_v3.json")) if _is_checkout(path)]
    assert len(paths) >= 25 and {f"{name}_v3" for name in QUOTED} <= {path.stem for path in paths}
    for path in paths:
        await replayer().replay_workflow(load_history(path))
        assert _patch_markers(path) == [PATCHES_AT_START_QUOTED], path.stem
    assert {workflow_id for workflow_id, _, _ in asked} == {path.stem for path in paths}
    assert {(patch_id, length) for _, patch_id, length in asked} == {(PATCHES_AT_START_QUOTED, 3)}


def _patches_asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """From now on in this test, every `workflow.patched` asked: (workflow id, patch id, history length then)."""
    asked: list[tuple[str, str, int]] = []
    patched = workflow.patched

    def recording(patch_id: str) -> bool:
        asked.append((workflow.info().workflow_id, patch_id, workflow.info().get_current_history_length()))
        return patched(patch_id)

    monkeypatch.setattr(workflow, "patched", recording)
    return asked


def _patch_markers(path: Path) -> list[str]:
    """The patch ids of a history's patch markers, in order."""
    ids = []
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker.get("markerName") == "core_patch":
            payload = marker["details"]["patch-data"]["payloads"][0]
            ids.append(json.loads(base64.b64decode(payload["data"]))["id"])
    return ids


def _is_checkout(path: Path) -> bool:
    first = json.loads(path.read_text())["events"][0]
    return bool(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] == "CheckoutSaga")
