"""The admin console in Chromium, under the real Content-Security-Policy."""
from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest

from tests.e2e.server import PASSWORD, ROOT, User

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or under CI fails, naming what is missing
    expect = None

_admin_numbers = itertools.count()


@pytest.fixture
def administrator(server) -> User:
    """A fresh administrator, made with `flask create-admin` as an operator would."""
    username = f"root{next(_admin_numbers)}"
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "create-admin", username, "--password", PASSWORD],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return User(0, username, username, "")


def open_console(browsing, admin: User, path: str):
    """A page logged in as admin showing path; it accepts every dialog and records them and the console."""
    page = browsing.context().new_page()
    seen = {"dialogs": [], "console": [], "errors": []}

    def on_dialog(dialog):
        seen["dialogs"].append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    page.on("dialog", on_dialog)
    page.on("console", lambda msg: seen["console"].append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.goto(f"/login?next={path}")
    page.fill("#username", admin.username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page, seen


def user_row(page, username: str):
    """The row of the users list showing exactly this username."""
    cell = page.locator("td.col-username", has_text=re.compile(rf"^\s*{re.escape(username)}\s*$"))
    return page.locator("table.model-list tbody tr").filter(has=cell)


def menu_item(page, label: str):
    """An entry of the "With selected" menu."""
    return page.locator(".dropdown-menu .dropdown-item", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def csp_violations(seen: dict) -> list[str]:
    """Console errors that say the Content-Security-Policy refused something."""
    return [text for text in seen["console"] if "Content Security Policy" in text]


def test_disabling_a_user_from_the_console_closes_their_socket(browsing, make_team, administrator):
    """Select a connected user, With selected > Disable, confirm: the list says disabled and
    the user's open room page loses its connection and cannot get it back."""
    team = make_team("mallory", "bob")
    victim = team.mallory
    room_page = browsing.room(victim, team.room["id"])

    console, seen = open_console(browsing, administrator, "/admin/user/")
    row = user_row(console, victim.username)
    expect(row).to_have_count(1)
    expect(row.locator("td.col-is_disabled span")).to_have_attribute("title", "is_disabled: false")
    row.locator("input.action-checkbox").check()

    console.get_by_role("button", name="With selected").click()
    with console.expect_navigation():
        menu_item(console, "Disable").click()

    assert seen["dialogs"] == ["confirm: Disable the selected users and close their live connections?"]
    expect(console.locator(".alert-success")).to_contain_text("Users disabled.")
    row = user_row(console, victim.username)
    expect(row.locator("td.col-is_disabled span")).to_have_attribute("title", "is_disabled: true")

    # The open page was disconnected and its one reconnection attempt was refused.
    expect(room_page.locator("#conn-status")).to_have_attribute("data-state", "offline", timeout=10_000)
    expect(room_page.locator("#conn-banner")).to_contain_text("Your session has ended.")
    browsing.shoot(console, "console")
    browsing.shoot(room_page, "disabled-user")

    # Enable has no confirmation and goes straight through.
    row.locator("input.action-checkbox").check()
    console.get_by_role("button", name="With selected").click()
    with console.expect_navigation():
        menu_item(console, "Enable").click()
    expect(console.locator(".alert-success")).to_contain_text("Users enabled.")
    assert len(seen["dialogs"]) == 1

    assert csp_violations(seen) == []
    assert seen["errors"] == []


def test_no_selection_says_so_and_changes_nothing(browsing, administrator):
    """Make administrator with nothing selected: an alert, no request, no CSP report."""
    console, seen = open_console(browsing, administrator, "/admin/user/")
    console.get_by_role("button", name="With selected").click()
    menu_item(console, "Make administrator").click()
    expect(console).to_have_url(re.compile(r"/admin/user/$"))
    console.wait_for_timeout(200)
    assert seen["dialogs"] == ["alert: Please select at least one record."]
    # The list's other do-nothing links (the current tab, the current page) stay quiet too.
    console.locator("ul.nav-tabs a.nav-link.active").click()
    console.wait_for_timeout(200)
    assert csp_violations(seen) == []
    assert seen["errors"] == []
