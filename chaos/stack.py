"""The production shape on one machine, started with the project's own commands:

PostgreSQL, Redis, the Temporal dev server on a SQLite file, `booking-saga migrate`, two `booking-saga api`
replicas (API_PORT each) and two `booking-saga worker --service X` for every worker choice X but `all`.

Four links go through a fault-injecting TCP proxy (chaos/proxy.py): worker <-> PostgreSQL, worker <-> Temporal,
API <-> Temporal and API <-> Redis (`stack.links`). The checks read PostgreSQL directly.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from chaos.proxy import LinkProxy
from chaos.servers import Managed, Postgres, Redis, Temporal, wait_http_ok
from runtime.codec import new_key
from runtime.embedded import free_port
from services.registry import NAMES

REPLICAS = 2
# What chaos.load's checkouts touch: a worker fault picks one of these.
LOADED_WORKERS = ("checkout", *NAMES)


def worker_choices() -> list[str]:
    """What `booking-saga worker --service` accepts, but `all`: each gets two processes of its own."""
    from services.registry import WORKER_CHOICES

    return [choice for choice in WORKER_CHOICES if choice != "all"]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "booking_saga.cli", *args]


@dataclass(frozen=True)
class StackConfig:
    root: Path
    # Small so that holds left by a killed process expire within the run: the invariants wait for them.
    sweeper_grace_seconds: int = 5
    sweeper_every_seconds: float = 2.0
    log_level: str = "WARNING"


class ChaosStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        root = config.root
        root.mkdir(parents=True, exist_ok=True)
        self.logs = root / "logs"
        self.postgres = Postgres(root / "postgres", free_port())
        self.redis = Redis(root / "redis", free_port())
        self.temporal = Temporal(root / "temporal.db", free_port(), "default", self.logs / "temporal.log")
        self.operator_token = secrets.token_urlsafe(32)
        self.checkout_id_secret = secrets.token_urlsafe(32)
        # As production: payloads encrypted, with a key of the run's own unless PAYLOAD_KEYS is given.
        self.payload_keys = os.environ.get("PAYLOAD_KEYS") or new_key("chaos")
        self.links = {
            "worker-postgres": LinkProxy("worker-postgres", "127.0.0.1", self.postgres.port),
            "worker-temporal": LinkProxy("worker-temporal", "127.0.0.1", self.temporal.port),
            "api-temporal": LinkProxy("api-temporal", "127.0.0.1", self.temporal.port),
            "api-redis": LinkProxy("api-redis", "127.0.0.1", self.redis.port),
        }
        self.link_ports = {name: free_port() for name in self.links}
        self.api_ports = [free_port() for _ in range(REPLICAS)]
        api_links = dict(TEMPORAL_ADDRESS=self._via("api-temporal"),
                         REDIS_URL=self._url_via(self.redis.url, self.redis.port, "api-redis"))
        self.apis = [
            Managed(f"api-{i}", _command("api"), self.env(API_PORT=str(port), **api_links),
                    self.logs / f"api-{i}.log")
            for i, port in enumerate(self.api_ports)
        ]
        worker_links = dict(
            TEMPORAL_ADDRESS=self._via("worker-temporal"),
            DATABASE_URL=self._url_via(self.postgres.url, self.postgres.port, "worker-postgres"),
        )
        self.workers = [
            Managed(f"worker-{choice}-{i}", _command("worker", "--service", choice), self.env(**worker_links),
                    self.logs / f"worker-{choice}-{i}.log")
            for choice in worker_choices() for i in range(REPLICAS)
        ]

    def _via(self, link: str) -> str:
        return f"127.0.0.1:{self.link_ports[link]}"

    def _url_via(self, url: str, port: int, link: str) -> str:
        return url.replace(f"127.0.0.1:{port}/", f"{self._via(link)}/")

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.postgres.url,
            REDIS_URL=self.redis.url,
            TEMPORAL_ADDRESS=self.temporal.address,
            TEMPORAL_NAMESPACE="default",
            OPERATOR_TOKEN=self.operator_token,
            PAYLOAD_KEYS=self.payload_keys,
            API_HOST="127.0.0.1",
            SWEEPER_GRACE_SECONDS=str(self.config.sweeper_grace_seconds),
            SWEEPER_EVERY_SECONDS=str(self.config.sweeper_every_seconds),
            LOG_LEVEL=self.config.log_level,
            CUSTOMER_AUTH="none",
            # The load names its customers in the body (CUSTOMER_AUTH=none), which production refuses: said
            # explicitly. Its one address sends far more than a caller's rate limit: off (RATE_LIMIT=0).
            ALLOW_INSECURE="1",
            RATE_LIMIT="0",
            CHECKOUT_ID_SECRET=self.checkout_id_secret,
        )
        env.update(extra)  # a process's own links (through their proxies) replace the direct addresses
        return env

    # -- start and stop ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.redis.start()
        self.temporal.start()
        for name, link in self.links.items():
            link.start(self.link_ports[name])
        migrate = subprocess.run(_command("migrate"), env=self.env(), capture_output=True, text=True, timeout=300)
        if migrate.returncode != 0:
            raise RuntimeError(f"booking-saga migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
        for worker in self.workers:
            worker.start()
        for api in self.apis:
            api.start()
        for url in self.api_urls:
            wait_http_ok(f"{url}/readyz", timeout=180)

    def stop(self) -> None:
        for process in [*self.apis, *self.workers]:
            process.stop()
        for link in self.links.values():
            link.stop()
        self.temporal.stop()
        self.redis.stop()
        self.postgres.stop()

    # -- faults --------------------------------------------------------------------------------------------------

    def restart_api(self, index: int) -> None:
        self.apis[index].start()
        wait_http_ok(f"{self.api_urls[index]}/healthz", timeout=120)

    def loaded_workers(self) -> list[Managed]:
        """The workers the load's checkouts run on (the workflow's and every participant's)."""
        used = [w for w in self.workers if w.args[-1] in LOADED_WORKERS]
        return used or self.workers

    def dead_processes(self) -> list[str]:
        """Children that died on their own (a fault's victims are restarted before this is asked)."""
        return [p.name for p in [*self.apis, *self.workers] if not p.alive()]
