"""Browser tests: Debian's Chromium, driven by Playwright, against a real server process.

Each user gets a browser context of their own (own cookies, own socket). Screenshots of
every scenario's end state go to test-artifacts/e2e/, printed at the end of the run.
Without Chromium (or Playwright) these tests skip, naming what is missing; under CI they fail.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from tests.e2e.server import PASSWORD, ROOT, ChorusServer, User

ARTIFACTS = ROOT / "test-artifacts" / "e2e"
# Root, no display, no network beyond localhost: keep Chromium from reaching out or sandboxing.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DISPLAY_NAMES = {
    "alice": "Alice Archer",
    "bob": "Bob Baker",
    "carol": "Carol Chen",
    "dave": "Dave Diaz",
}

_screenshots: list[Path] = []
_team_numbers = itertools.count()


def _unavailable(reason: str):
    """Skip, or under CI (where the browser must be there) fail."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """CHORUS_CHROMIUM, else Debian's /usr/bin/chromium, else one on the PATH."""
    for candidate in (
        os.environ.get("CHORUS_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def pytest_terminal_summary(terminalreporter):
    """Say where the screenshots are."""
    if _screenshots:
        terminalreporter.write_sep("-", "browser test screenshots")
        terminalreporter.write_line(f"{len(_screenshots)} screenshots in {ARTIFACTS}")


# ---------------------------------------------------------------- processes

@pytest.fixture(scope="package")
def chromium_path() -> str:
    """Where Chromium is (skip or fail when it is not)."""
    path = find_chromium()
    if path is None:
        _unavailable("browser tests need Chromium at /usr/bin/chromium (make test installs it: apt-get install chromium)")
    return path


@pytest.fixture(scope="package")
def browser(chromium_path):
    """One headless Chromium for the whole package; tests open contexts in it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("browser tests need Playwright (pip install -r requirements-dev.txt)")
    playwright = sync_playwright().start()
    try:
        # Playwright's own browser download is not used: Debian's Chromium is.
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    except Exception as exc:
        playwright.stop()
        _unavailable(f"Chromium at {chromium_path} did not start: {exc}")
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="package")
def server(tmp_path_factory, browser):
    """A Chorus server process on a fresh SQLite database, migrated like a deployment."""
    server = ChorusServer(tmp_path_factory.mktemp("e2e"))
    server.migrate()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package", autouse=True)
def artifacts():
    """A clean screenshot folder for this run."""
    if ARTIFACTS.exists():
        for old in ARTIFACTS.glob("*.png"):
            old.unlink()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------- people and pages

@pytest.fixture
def make_team(server):
    """make_team("alice", "bob") -> accounts with those first names and a room they all belong to.

    Names get a number after the first team of the run, since accounts live as long as the server.
    """

    def _make(*names: str, room: str = "general", topic: str = "Company-wide announcements and chatter"):
        number = next(_team_numbers)
        suffix = "" if number == 0 else str(number)
        users = [server.register(f"{name}{suffix}", DISPLAY_NAMES.get(name, name.title())) for name in names]
        created = server.create_room(users[0], f"{room}{suffix}", topic, members=tuple(users[1:]))
        return SimpleNamespace(room=created, users=users, suffix=suffix, **dict(zip(names, users)))

    return _make


@dataclass
class Watch:
    """What a page said that a person would not want: dialogs, console errors, crashes."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


class Browsing:
    """Opens pages as users, one browser context each, and takes screenshots."""

    def __init__(self, browser, server: ChorusServer, test_name: str):
        self.browser = browser
        self.server = server
        self.test_name = test_name
        self.contexts = []
        self.watches: dict[object, Watch] = {}

    def context(self, **options):
        """A fresh browser context (own cookies and storage) on the server."""
        options.setdefault("viewport", {"width": 1280, "height": 800})
        # Still screenshots: no bell swinging or highlight fading mid-picture.
        options.setdefault("reduced_motion", "reduce")
        context = self.browser.new_context(base_url=self.server.url, locale="en-US", **options)
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        return context

    def watch(self, page) -> Watch:
        """Record dialogs (dismissed at once), console errors and uncaught exceptions of a page."""
        watch = Watch()
        self.watches[page] = watch

        def on_dialog(dialog):
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("console", lambda msg: watch.console_errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
        return watch

    def login(self, user: User, path: str = "/", *, context=None):
        """A page logged in as user (through the login form), showing path."""
        context = context or self.context()
        page = context.new_page()
        self.watch(page)
        page.goto(f"/login?next={quote(path, safe='/')}")
        page.fill("#username", user.username)
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/login" not in url)
        return page

    def room(self, user: User, room_id: int, *, context=None, query: str = ""):
        """A page of a room as user, once its socket is connected."""
        from playwright.sync_api import expect

        page = self.login(user, f"/rooms/{room_id}{query}", context=context)
        expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
        return page

    def shoot(self, page, name: str) -> Path:
        """Save a screenshot of the page as <test>-<name>.png."""
        path = ARTIFACTS / f"{self.test_name}-{name}.png"
        page.screenshot(path=str(path))
        _screenshots.append(path)
        return path

    def close(self) -> None:
        """Close every context."""
        for context in self.contexts:
            try:
                context.close()
            except Exception:  # a context of a crashed browser
                pass


@pytest.fixture
def browsing(browser, server, request):
    """Open pages as users; fails the test if any page threw an uncaught exception."""
    name = re.sub(r"^test_", "", request.node.name)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    browsing = Browsing(browser, server, name)
    yield browsing
    browsing.close()
    crashed = {str(page.url): w.page_errors for page, w in browsing.watches.items() if w.page_errors}
    if crashed:
        pytest.fail(f"uncaught errors in the page: {crashed}", pytrace=False)
