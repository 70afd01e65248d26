"""Fixtures of the browser tests: a real stack (API + one Celery worker, embedded profile) from
tests/services.py, headless Debian Chromium driven by Playwright's sync API, pages that record
console errors, and a folder for screenshots.

Screenshots go to $PCM_E2E_ARTIFACTS, or tests/e2e/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.services import ServiceStack
from tests.tiny import TINY

CHROMIUM = Path(os.environ.get("PCM_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
ADMIN_PASSWORD = "e2e-password-123"

# What the launch form sends on top of the preset for a run that trains in seconds: the shared tiny
# config, a random-init policy (no SFT start), and dynamic sampling off so every step back-propagates
# some chunks even when an untrained policy's groups all fail alike (the heat map has kept chunks).
FAST_RUN = {**TINY, "policy.init": "random", "train.torch_threads": 1, "grpo.dynamic_sampling": False}


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: browser tests of the dashboard (headless Chromium)")


def override_lines(overrides: dict) -> str:
    """The launch form's "extra overrides" text: one dotted.key=JSON per line."""
    return "\n".join(f"{key}={json.dumps(value)}" for key, value in overrides.items())


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    folder = Path(os.environ.get("PCM_E2E_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """API + one worker on SQLite and the file-system broker (single-user: loopback, no login)."""
    with ServiceStack(tmp_path_factory.mktemp("e2e-stack")) as services:
        services.start_api()
        services.start_worker("w1")
        yield services


@pytest.fixture(scope="module")
def auth_stack(stack, tmp_path_factory):
    """A second API on the same data as `stack`, with logins required (the lab profile's auth)."""
    env = {"PCM_DATA_DIR": str(stack.data_dir), "PCM_AUTH": "required", "PCM_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with ServiceStack(tmp_path_factory.mktemp("e2e-auth"), env=env) as services:
        services.start_api()
        yield services


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); .ci/run does"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """Console errors and uncaught exceptions of every page opened through `open_context`."""

    def __init__(self):
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        """Tolerate errors containing `fragment` (Chromium logs every 4xx a test provokes on purpose)."""
        self.allowed.append(fragment)

    def watch(self, page) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"{page.url}: {msg.text}"))
        page.on("pageerror", lambda err: self.errors.append(f"{page.url}: uncaught {err}"))

    def assert_clean(self) -> None:
        errors = [e for e in self.errors if not any(fragment in e for fragment in self.allowed)]
        assert not errors, "console errors:\n" + "\n".join(errors)


@pytest.fixture
def console():
    watcher = Console()
    yield watcher
    watcher.assert_clean()


@pytest.fixture
def open_context(browser, console):
    """`open_context()` -> a fresh browser context (own storage: logged out) whose pages are watched."""
    contexts = []

    def make():
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        context.on("page", console.watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shoot(artifacts_dir):
    """`shoot(page, "name")` saves a full-page screenshot to the artifacts folder."""

    def save(page, name: str) -> Path:
        path = artifacts_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
