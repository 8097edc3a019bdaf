"""The admin console in Chromium under the real Content-Security-Policy, and the names people see."""
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


# The parts of an author line that name someone, as the page shows them.
AUTHOR_LINE = """el => Array.from(el.querySelectorAll(".msg-meta > .msg-author, .msg-meta > .msg-handle"))
  .map(part => [part.tagName, part.className, part.getAttribute("title"), part.textContent])"""


def test_a_look_alike_display_name_shows_its_username_everywhere(browsing, make_team, server):
    """Mallory calls herself "Alice Archer": her messages (from the server's history and built
    live), her place in the members list and the @ suggestions all say @mallory."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    mallory = server.register(f"mallory{team.suffix}x", "Alice Archer")
    server.api("POST", f"/rooms/{room_id}/members", team.alice.token, json={"username": mallory.username})
    server.post(mallory, room_id, "From the history")
    bob = browsing.room(team.bob, room_id)
    server.post(mallory, room_id, "Sent live")

    def author_line(text):
        seen = bob.locator("#message-list .msg[data-id]").filter(has_text=text)
        expect(seen).to_be_visible()
        return seen.evaluate(AUTHOR_LINE)

    expected = [["SPAN", "msg-author", f"@{mallory.username}", "Alice Archer"],
                ["SPAN", "msg-handle", None, f"@{mallory.username}"]]
    # The server's template and the client's renderer: one markup.
    assert author_line("From the history") == expected
    assert author_line("Sent live") == expected
    expect(bob.locator("#member-list li").filter(has_text=f"@{mallory.username}")).to_contain_text("Alice Archer")

    composer = bob.get_by_role("combobox", name=f"Message #{team.room['name']}")
    composer.click()
    composer.press_sequentially("@ali")
    options = bob.get_by_role("listbox", name="Members to mention").get_by_role("option")
    expect(options).to_have_count(2)
    expect(options.locator(".mention-option-name")).to_have_text(["Alice Archer", "Alice Archer"])
    expect(options.locator(".mention-option-handle")).to_have_text(
        sorted([f"@{team.alice.username}", f"@{mallory.username}"]))
    browsing.shoot(bob, "look-alike")
    composer.press("Escape")

    # Bob's own message, as shown before the server has it and after: the same line.
    own = [["SPAN", "msg-author", f"@{team.bob.username}", "Bob Baker"],
           ["SPAN", "msg-handle", None, f"@{team.bob.username}"]]
    pending = bob.evaluate(f"""async () => {{
      const render = await import("/static/js/room/render.js");
      const data = JSON.parse(document.getElementById("chorus-data").textContent);
      return ({AUTHOR_LINE})(render.buildPending("Mine", "c-1", data));
    }}""")
    assert pending == own
    composer.fill("Mine")
    composer.press("Enter")
    assert author_line("Mine") == own
