"""The account page's sessions and password, in Chromium: what ends where, as a person sees it."""
from __future__ import annotations

import re

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or under CI fails, naming what is missing
    expect = None

NEW_PASSWORD = "e2e-new-password-2"


def account(browsing, user, *, context=None):
    """The account page as user, logged in through the form, once its socket is connected."""
    page = browsing.login(user, "/account", context=context)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
    return page


def signed_out(page):
    """The page says its session ended: the server refused its socket's reconnect."""
    expect(page.locator("#conn-status .conn-label")).to_have_text("Signed out", timeout=15_000)


def test_log_out_everywhere_ends_the_other_browsers_session(browsing, make_team):
    team = make_team("alice", "bob")
    laptop = browsing.room(team.alice, team.room["id"])
    here = account(browsing, team.alice)

    rows = here.locator("#session-table tbody tr")
    expect(rows).to_have_count(2)
    current = here.locator("#session-table tr[aria-current='true']")
    expect(current).to_have_count(1)
    expect(current).to_contain_text("this browser")
    expect(current).to_contain_text("127.0.0.1")
    browsing.shoot(here, "sessions")

    here.get_by_role("button", name="Log out everywhere").click()
    here.wait_for_url("**/login**")
    expect(here.locator(".flashes")).to_contain_text("Logged out everywhere. 2 sessions ended.")
    signed_out(laptop)
    browsing.shoot(laptop, "laptop-signed-out")
    laptop.reload()
    expect(laptop).to_have_url(re.compile(r"/login"))


def test_a_password_change_keeps_this_browser_and_ends_the_other(browsing, make_team, server):
    team = make_team("carol", "dave")
    laptop = browsing.room(team.carol, team.room["id"])
    here = account(browsing, team.carol)

    here.fill("#current_password", "not-the-password")
    here.fill("#new_password", NEW_PASSWORD)
    here.fill("#confirm", NEW_PASSWORD)
    here.get_by_role("button", name="Change password").click()
    expect(here.locator("#current_password-errors")).to_have_text("The current password is not right.")
    expect(here.locator("#current_password")).to_have_attribute("aria-invalid", "true")
    browsing.shoot(here, "wrong-password")
    expect(laptop.locator("#conn-status")).to_have_attribute("data-state", "connected")

    here.fill("#current_password", "e2e-password-1")
    here.fill("#new_password", NEW_PASSWORD)
    here.fill("#confirm", NEW_PASSWORD)
    here.get_by_role("button", name="Change password").click()
    expect(here.locator(".flashes")).to_contain_text("Password changed. 1 session ended.")
    signed_out(laptop)
    # This browser stays logged in: its socket was closed with the others and is back.
    expect(here.locator("#conn-status")).to_have_attribute("data-state", "connected", timeout=15_000)
    expect(here.locator("#session-table tbody tr")).to_have_count(1)
    browsing.shoot(here, "changed")

    fresh = browsing.context().new_page()
    browsing.watch(fresh)
    fresh.goto("/login")
    fresh.fill("#username", team.carol.username)
    fresh.fill("#password", NEW_PASSWORD)
    fresh.get_by_role("button", name="Log in").click()
    fresh.wait_for_url(lambda url: "/login" not in url)
    expect(fresh.locator("#conn-status")).to_have_attribute("data-state", "connected")
