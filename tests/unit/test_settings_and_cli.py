"""Settings bounds and the CLI's refusals: clear messages, no tracebacks."""

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from booking_saga.cli import build_parser
from services.db import async_url
from settings import Settings


def test_hold_bounds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="HOLD_SECONDS_MIN"):
        Settings(hold_seconds_min=10, hold_seconds_default=5)


def test_cors_wildcard_is_refused() -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(cors_origins=["*"])


def test_sweeper_period_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="sweeper_every_seconds"):
        Settings(sweeper_every_seconds=0)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLD_SECONDS_DEFAULT", "30")
    monkeypatch.setenv("CORS_ORIGINS", '["https://shop.example"]')
    settings = Settings()
    assert settings.hold_seconds_default == 30
    assert settings.cors_origins == ["https://shop.example"]
    assert settings.task_queue("hotel") == "hotel"


def test_database_urls_are_turned_to_asyncpg() -> None:
    assert async_url("postgresql://u:p@h:5432/d").startswith("postgresql+asyncpg://u:p@h:5432/d")
    assert "host=%2Ftmp%2Fs" in async_url("postgresql://postgres:@/postgres?host=/tmp/s")
    with pytest.raises(ValueError, match="PostgreSQL"):
        async_url("mysql://u@h/d")


def test_worker_service_choices() -> None:
    args = build_parser().parse_args(["worker", "--service", "hotel"])
    assert args.service == "hotel"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--service", "trains"])


def test_api_refuses_to_start_without_operator_token() -> None:
    env = {"PATH": "/usr/bin:/bin", "OPERATOR_TOKEN": "", "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    result = subprocess.run([sys.executable, "-m", "booking_saga.cli", "api"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "OPERATOR_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("service", ["flight", "all"])
def test_service_worker_refuses_to_start_without_database_url(service: str) -> None:
    # No Temporal either: the refusal must come before any connection attempt. Safe otherwise (payload keys set).
    env = {"PATH": "/usr/bin:/bin", "TEMPORAL_ADDRESS": "127.0.0.1:1", "PAYLOAD_KEYS": os.environ["PAYLOAD_KEYS"]}
    result = subprocess.run([sys.executable, "-m", "booking_saga.cli", "worker", "--service", service], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "DATABASE_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr
