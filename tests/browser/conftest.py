"""The storefront tests' fixtures: a real `booking-saga dev` stack and the system's Chromium, driven by Playwright.

The browser is Debian's `chromium` (/usr/bin/chromium; `.ci/run` installs it): Playwright never downloads one.
Without it, or without the `playwright` package, the browser tests skip with the reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from runtime.embedded import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
# Where the screenshot is copied for a person to look at (gitignored), besides the pytest tmp dir.
ARTIFACTS = REPO / ".artifacts"
# The demo stack's per-customer limit on checkouts held at once (the 429 test reaches it).
ACTIVE_CHECKOUTS_MAX = 3


@dataclass(frozen=True)
class DevStack:
    url: str
    operator_token: str
    env: dict[str, str]


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"booking-saga dev exited early with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200")


def start_dev(data_dir: Path, **extra: str) -> tuple[subprocess.Popen[bytes], DevStack]:
    """`booking-saga dev` on free ports with its own data dir and a known operator token; ready when it returns."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OPERATOR_TOKEN")}
    token = secrets.token_urlsafe(24)
    api_port = free_port()
    env.update(
        DATA_DIR=str(data_dir),
        API_PORT=str(api_port),
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TEMPORAL_UI_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
        OPERATOR_TOKEN=token,
        # The test and every page it opens share one address here, so the per-address rate limit would count them
        # all as one caller and refuse the next test's reads (a real storefront's customers have addresses of
        # their own). The page's answer to a rate-limited 429 is tested by injecting one (test_storefront.py).
        RATE_LIMIT="1000",
    )
    env.update(extra)
    url = f"http://127.0.0.1:{api_port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "booking_saga.cli", "dev"], env=env, stdin=subprocess.DEVNULL, cwd=REPO
    )
    try:
        _wait_ready(f"{url}/readyz", process)
    except BaseException:
        stop_dev(process)
        raise
    return process, DevStack(url=url, operator_token=token, env=env)


def stop_dev(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


# Module scope: Playwright's sync API runs its own event loop on this thread while it is open, so it must be closed
# before the next module's asyncio tests run on pytest-asyncio's session loop.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        why = f"no Chromium at {CHROMIUM} (Debian package `chromium`; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(why + ": CI runs every suite")  # a suite that cannot run fails CI, it never hides
        pytest.skip(why)
    sync_api = pytest.importorskip("playwright.sync_api", reason="the `playwright` package is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def dev_stack(chromium: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """One demo stack (CUSTOMER_AUTH=none, seeded demo inventory) for the storefront tests; after the browser, so
    a machine without Chromium does not start it for nothing."""
    process, stack = start_dev(
        tmp_path_factory.mktemp("dev") / "data", CUSTOMER_ACTIVE_CHECKOUTS_MAX=str(ACTIVE_CHECKOUTS_MAX),
        # The demo's flights leave within days: a window up to departure keeps their sales cancellable here.
        CANCEL_FLIGHT_HOURS_BEFORE_DEPARTURE="0",
    )
    try:
        yield stack
    finally:
        stop_dev(process)


@pytest.fixture
def page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context per test, phone-sized (the page must work there); console errors fail the test."""
    context = chromium.new_context(viewport={"width": 412, "height": 915}, device_scale_factor=1)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        yield tab
    finally:
        context.close()
    # A failed fetch the page handles (a 409 answer) is logged by Chromium as a console error: keep only script ones.
    script_errors = [e for e in errors if "Failed to load resource" not in e]
    assert script_errors == [], f"the page logged errors: {script_errors}"


def keep_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in the test's tmp dir, copied to .artifacts/ in the repo root."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / name)
    return shot
