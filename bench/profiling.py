"""Optional sampling profiles of the API and worker processes while a scenario runs (BENCH_PROFILE=1).

py-spy attaches to the running children (needs ptrace rights, e.g. root or CAP_SYS_PTRACE) and writes, per
scenario and process, a collapsed-stack file (`profile-<scenario>-<name>.txt`, readable with any flamegraph
viewer) and a summary of the functions where the most samples were taken (`profile-<scenario>-<name>-top.txt`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

TOP = 40


def enabled() -> bool:
    return os.environ.get("BENCH_PROFILE", "") not in ("", "0")


def _py_spy() -> str | None:
    beside_python = Path(sys.executable).parent / "py-spy"
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def sampling(pids: dict[str, int], out: Path, scenario: str) -> Iterator[None]:
    """Record every process in `pids` while the block runs, as profile-<scenario>-<name>.txt (a no-op unless
    BENCH_PROFILE is set)."""
    tool = _py_spy()
    if not enabled() or tool is None:
        if enabled():
            print("BENCH_PROFILE is set but py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    recorders = {
        name: subprocess.Popen(
            [tool, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking",
             "--output", str(out / f"profile-{scenario}-{name}.txt")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for name, pid in pids.items()
    }
    try:
        yield
    finally:
        for name, recorder in recorders.items():
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
            stacks = out / f"profile-{scenario}-{name}.txt"
            if stacks.exists():
                (out / f"profile-{scenario}-{name}-top.txt").write_text(summary(stacks))


def summary(stacks: Path) -> str:
    """Functions by inclusive share of samples (each function counted once per stack), then by own samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        frames, _, count_text = line.rpartition(" ")
        if not frames or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = frames.split(";")
        for name in set(names):
            inclusive[name] += count
        own[names[-1]] += count
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(TOP)] if total else []
    lines += ["", "own:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(TOP)] if total else []
    return "\n".join(lines) + "\n"
