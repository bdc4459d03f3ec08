"""Starting the dev server again when it dies during start-up (it can lose one of its own ports to a race)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.children import Children
from runtime.devstack import DEV_SERVER_ATTEMPTS, start_dev_server


def _script(body: str) -> list[str]:
    return ["sh", "-c", body]


def test_a_server_that_dies_during_start_up_is_started_again(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    # Dies after its "up" line on the first two starts, as the dev server does when a port was taken.
    body = (
        f'echo x >> "{attempts}"; echo "Temporal Server:      127.0.0.1:1"; '
        f'if [ "$(wc -l < "{attempts}")" -lt 3 ]; then exit 2; fi; exec sleep 30'
    )
    children = Children()
    try:
        process = start_dev_server(children, _script(body), timeout=10)
        assert process.poll() is None
        assert attempts.read_text().count("x") == 3
        assert [name for name, _ in children.started] == ["temporal"]
        assert children.started[0][1] is process
    finally:
        children.stop_all()


def test_a_server_that_never_comes_up_fails_after_the_last_attempt(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    children = Children()
    with pytest.raises(RuntimeError, match=f"failed to start {DEV_SERVER_ATTEMPTS} times"):
        start_dev_server(children, _script(f'echo x >> "{attempts}"; exit 1'), timeout=10)
    assert attempts.read_text().count("x") == DEV_SERVER_ATTEMPTS
    assert children.started == []


def test_a_server_that_hangs_before_its_up_line_times_out() -> None:
    children = Children()
    try:
        with pytest.raises(TimeoutError):
            start_dev_server(children, _script("exec sleep 30"), timeout=1)
    finally:
        children.stop_all()
