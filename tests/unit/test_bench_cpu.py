"""bench/cpu.py: a metered process tree counts its children's CPU, including a child that exits mid-block, and
only what that child used inside the block."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.cpu import Meter

# A parent that starts one child and reaps it when told; the child burns CPU in two parts, the first before the
# meter starts and the second after, and writes the CPU seconds of each part.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
child.wait()
open(sys.argv[2] + ".reaped", "w").close()
sys.stdin.read()
"""
CHILD = """
import os, sys, time
base = sys.argv[1]

def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time() - start

first = burn(0.3)
open(base + ".first", "w").write(str(first))
while not os.path.exists(base + ".go"):
    time.sleep(0.01)
second = burn(0.3)
open(base + ".second", "w").write(str(second))
"""


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_a_tree_counts_an_exited_child_for_its_time_inside_the_block(tmp_path: Path) -> None:
    base = tmp_path / "child"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(base)], stdin=subprocess.PIPE)
    try:
        _wait_for(Path(f"{base}.first"))
        tree, alone = Meter({"parent": parent.pid}, trees=("parent",)), Meter({"parent": parent.pid})
        tree.start()
        alone.start()
        Path(f"{base}.go").touch()
        _wait_for(Path(f"{base}.reaped"))
        used_tree, used_alone = tree.stop()["parent"], alone.stop()["parent"]
        second = float(Path(f"{base}.second").read_text())
        first = float(Path(f"{base}.first").read_text())
        # The child's second part, and not its first: the kernel's reaped-children total holds both.
        assert second * 0.8 <= used_tree <= second + 0.2, (used_tree, first, second)
        assert used_tree < first + second * 0.8
        # Without the tree, only the parent itself, which only waited.
        assert used_alone < 0.1
    finally:
        parent.communicate(b"", timeout=30)


def test_the_bench_process_is_always_metered() -> None:
    meter = Meter({})
    meter.start()
    start = time.process_time()
    while time.process_time() - start < 0.05:
        pass
    used = meter.stop()
    assert set(used) == {"bench"} and used["bench"] >= 0.04
