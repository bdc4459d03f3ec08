"""The replay stamp: which workflow code the recorded histories were last checked against.

tests/replay/histories.stamp holds the SHA-256 of workflows/*.py and of the history files. The replay test
fails when workflows/ no longer matches: a change to the saga's code needs a history of the path it changes or
adds (`python -m tests.replay.record NAME`, see record.py), then `python -m tests.replay.record --stamp`. The stamp
refuses while no history was added or re-recorded since the last one, unless told the change adds no path
(`--stamp --no-new-path`: a comment, a rename).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
HISTORIES = Path(__file__).parent / "histories"
STAMP = Path(__file__).parent / "histories.stamp"  # beside histories/: a .json in it would be a history
REFRESH = "python -m tests.replay.record --stamp"


def _digest(files: list[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


# In workflows/ but not workflow code (never replayed): the API's and the CLI's saga audit.
NOT_WORKFLOW_CODE = {"saga_audit.py"}


def workflows_digest() -> str:
    return _digest([p for p in WORKFLOWS.glob("*.py") if p.name not in NOT_WORKFLOW_CODE], WORKFLOWS)


def histories_digest() -> str:
    return _digest(list(HISTORIES.glob("*.json")), HISTORIES)


def read_stamp() -> dict[str, str]:
    stamp: dict[str, str] = json.loads(STAMP.read_text())
    return stamp


def refresh_stamp(*, allow_no_new_path: bool = False) -> int:
    """Write the stamp; 1 (and a reason) when workflows/ changed while the histories did not."""
    current = {"workflows": workflows_digest(), "histories": histories_digest()}
    old = read_stamp() if STAMP.is_file() else {}
    changed_code = old.get("workflows") != current["workflows"]
    same_histories = old.get("histories") == current["histories"]
    if old and changed_code and same_histories and not allow_no_new_path:
        print("workflows/ changed but no history was added or re-recorded since the last stamp: record the path "
              "you changed (python -m tests.replay.record NAME), or pass --no-new-path if the change adds none")
        return 1
    STAMP.write_text(json.dumps(current, indent=2) + "\n")
    print(f"stamped {STAMP}")
    return 0
