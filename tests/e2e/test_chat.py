"""What a person sees in the room page: live messages, mentions, safe text, history, @ autocomplete."""
from __future__ import annotations

import time

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or under CI fails, naming what is missing
    expect = None

HOSTILE = [
    "<script>window.__pwned = 1; alert('script')</script>",
    '<img src=x onerror="window.__pwned = 2; alert(\'img\')">',
    '<a href="javascript:alert(\'href\')" onclick="alert(\'click\')">click me</a>',
    "[a markdown link](javascript:alert('md'))",
    '<svg onload="alert(\'svg\')"></svg><iframe src="javascript:alert(\'frame\')"></iframe>',
    "\"><body onload=alert('attr')> <style>body{display:none}</style>",
]


def message(page, text: str):
    """The stored message (not a pending echo) whose body contains text."""
    return page.locator("#message-list .msg[data-id]").filter(has_text=text)


def test_two_users_see_a_message_live(browsing, make_team, server):
    """Alice types "Hello team" and presses Enter; Bob sees it within a second, sent to everyone."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)

    composer = alice.get_by_role("combobox", name=f"Message #{team.room['name']}")
    composer.fill("Hello team")
    started = time.monotonic()
    composer.press("Enter")

    seen = message(bob, "Hello team")
    expect(seen).to_be_visible(timeout=1500)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"Bob saw the message after {elapsed:.2f}s"
    # To everyone in the room, from someone else.
    expect(seen.locator(".msg-audience-text")).to_have_text(f"to #{team.room['name']} · all 2")
    expect(seen.locator(".msg-audience")).to_have_attribute("title", f"Sent to everyone in #{team.room['name']} (2 members)")
    expect(seen.locator(".msg-author")).to_have_text("Alice Archer")
    expect(seen).not_to_contain_class("msg-own")
    expect(seen.locator(".tag-you")).to_have_count(0)

    # Alice's own copy: confirmed by the server (an id, no longer pending) and marked as hers.
    own = message(alice, "Hello team")
    expect(own).to_have_count(1)
    expect(own).to_contain_class("msg-own")
    expect(own.locator(".tag-you")).to_have_text("you")
    expect(alice.locator(".msg-pending")).to_have_count(0)
    expect(composer).to_have_value("")
    # Times are local and the day is labelled.
    expect(seen.locator("time")).to_have_attribute("data-localized", "1")
    expect(bob.locator(".day-sep").last).to_have_text("Today")

    browsing.shoot(alice, "alice")
    browsing.shoot(bob, "bob")

    # Someone joins and leaves: the member count and "all N" follow at once.
    dave = server.register(f"dave{team.suffix}", "Dave Diaz")
    server.api("POST", f"/rooms/{room_id}/members", team.alice.token, json={"username": dave.username})
    for page in (alice, bob):
        expect(page.locator("#member-count")).to_have_text("3")
        expect(message(page, "Hello team").locator(".msg-audience-text")).to_have_text(f"to #{team.room['name']} · all 3")
        expect(page.locator("#member-list")).to_contain_text(f"@{dave.username}")
    server.api("DELETE", f"/rooms/{room_id}/members/me", dave.token)
    for page in (alice, bob):
        expect(page.locator("#member-count")).to_have_text("2")
        expect(page.locator("#message-list .sys-note").last).to_contain_text("Dave Diaz left")


def test_a_mention_rings_only_the_mentioned_person(browsing, make_team, server):
    """Bob's bell goes up and the message stands out for Bob, and for nobody else."""
    team = make_team("alice", "bob", "carol")
    room_id = team.room["id"]
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)
    carol = browsing.room(team.carol, room_id)
    expect(bob.locator("#bell-count")).to_be_hidden()

    composer = alice.get_by_role("combobox", name=f"Message #{team.room['name']}")
    composer.fill(f"@{team.bob.username} could you review the release notes before Thursday?")
    composer.press("Escape")  # the member list may be open
    composer.press("Enter")

    for_bob = message(bob, "review the release notes")
    expect(for_bob).to_be_visible()
    expect(bob.locator("#bell-count")).to_have_text("1")
    expect(bob.locator("#bell-link")).to_have_attribute("aria-label", "Notifications, 1 unread")
    expect(for_bob).to_contain_class("msg-mentions-me")
    expect(for_bob.locator(".tag-mention")).to_have_text("mentions you")
    expect(for_bob.locator(".mention.mention-me")).to_have_text(f"@{team.bob.username}")

    for page in (alice, carol):
        seen = message(page, "review the release notes")
        expect(seen).to_be_visible()
        expect(seen).not_to_contain_class("msg-mentions-me")
        expect(seen.locator(".tag-mention")).to_have_count(0)
        expect(seen.locator(".mention")).to_have_text(f"@{team.bob.username}")
        expect(seen.locator(".mention-me")).to_have_count(0)
        expect(page.locator("#bell-count")).to_be_hidden()

    # The bell's list names the message; the count survives a reload.
    bob.locator("#bell-link").click()
    item = bob.locator("#bell-list .bell-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Alice Archer mentioned you")
    expect(item).to_contain_text("review the release notes")
    browsing.shoot(bob, "bob")
    browsing.shoot(carol, "carol")
    bob.reload()
    expect(bob.locator("#bell-count")).to_have_text("1")
    expect(message(bob, "review the release notes")).to_contain_class("msg-mentions-me")


def test_hostile_text_is_shown_as_text_and_runs_nothing(browsing, make_team):
    """Script tags, event handlers and javascript: links arrive as words on the screen."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)

    composer = alice.get_by_role("combobox", name=f"Message #{team.room['name']}")
    for text in HOSTILE + [f"@{team.bob.username} <img src=x onerror=alert('mention')> look"]:
        composer.fill(text)
        composer.press("Escape")
        composer.press("Enter")
    expect(alice.locator(".msg-pending")).to_have_count(0)

    def check(page):
        bodies = page.locator("#message-list .msg[data-id] .msg-body")
        expect(bodies).to_have_count(len(HOSTILE) + 1)
        expect(bodies.nth(0)).to_have_text(HOSTILE[0])
        expect(bodies.nth(1)).to_have_text(HOSTILE[1])
        expect(bodies.nth(3)).to_contain_text("[a markdown link](javascript:")
        # Nothing but text and the markdown allowlist made it into the page.
        dangerous = "script, img, iframe, svg, object, embed, style, body, [onerror], [onload], [onclick]"
        expect(page.locator(f"#message-list .msg-body :is({dangerous})")).to_have_count(0)
        expect(page.locator('#message-list a[href^="javascript" i]')).to_have_count(0)
        # Clicking where a link would be does nothing either.
        bodies.nth(2).get_by_text("click me").click()
        bodies.nth(3).click()
        assert page.evaluate("window.__pwned") is None
        assert "/rooms/" in page.url

    check(bob)  # arrived live
    check(alice)  # the sender's own copies
    bob.locator("#bell-link").click()
    expect(bob.locator("#bell-list .bell-item-excerpt")).to_contain_text("<img src=x onerror=alert('mention')>")
    bob.keyboard.press("Escape")
    browsing.shoot(bob, "bob")
    bob.reload()  # and rendered by the server
    expect(bob.locator("#conn-status")).to_have_attribute("data-state", "connected")
    check(bob)
    bob.goto("/notifications")
    expect(bob.locator(".notification-excerpt")).to_contain_text("<img src=x onerror=alert('mention')>")
    expect(bob.locator(".notification-list img")).to_have_count(0)

    for page, watch in browsing.watches.items():
        assert watch.dialogs == [], f"a dialog opened on {page.url}: {watch.dialogs}"
        assert watch.console_errors == [], f"console errors on {page.url}: {watch.console_errors}"


def test_scrolling_up_loads_older_history(browsing, make_team, server):
    """The page starts with the latest 50; scrolling up brings the rest, in order, once each."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    for i in range(1, 121):
        server.post(team.alice if i % 3 else team.bob, room_id, f"history {i:03d}")
    bob = browsing.room(team.bob, room_id)
    stored = bob.locator("#message-list .msg[data-id]")
    expect(stored).to_have_count(50)
    expect(stored.first).to_contain_text("history 071")
    expect(stored.last).to_contain_text("history 120")
    expect(bob.locator("#jump-latest")).to_be_hidden()

    bob.locator("#timeline").hover()
    for _ in range(40):
        if stored.count() == 120 and bob.locator(".room-start").is_visible():
            break
        bob.mouse.wheel(0, -4000)
        bob.wait_for_timeout(100)
    expect(stored).to_have_count(120)
    expect(bob.locator(".room-start")).to_contain_text(f"This is the very beginning of #{team.room['name']}.")
    expect(stored.first).to_contain_text("history 001")
    ids = [int(i) for i in stored.evaluate_all("els => els.map(el => el.dataset.id)")]
    assert ids == sorted(set(ids)), "messages out of order or shown twice"
    texts = bob.locator("#message-list .msg[data-id] .msg-body").all_inner_texts()
    assert texts == [f"history {i:03d}" for i in range(1, 121)]
    # Away from the bottom, a way back is offered.
    expect(bob.locator("#jump-latest")).to_be_visible()
    browsing.shoot(bob, "bob")
    bob.locator("#jump-latest").click()
    expect(stored.last).to_be_in_viewport()
    expect(bob.locator("#jump-latest")).to_be_hidden()


def test_mention_autocomplete_picks_a_member_with_the_keyboard(browsing, make_team):
    """After "@" the room's members are offered; arrows move, Tab or Enter picks, Escape closes."""
    team = make_team("alice", "bob", "carol", "dave")
    room_id = team.room["id"]
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)
    composer = alice.get_by_role("combobox", name=f"Message #{team.room['name']}")
    listbox = alice.get_by_role("listbox", name="Members to mention")
    options = listbox.get_by_role("option")

    composer.click()
    composer.press_sequentially("Thanks @")
    expect(composer).to_have_attribute("aria-expanded", "true")
    expect(options).to_have_count(3)  # everyone but Alice herself
    expect(options.nth(0)).to_contain_text(f"@{team.bob.username}")

    def active():
        chosen = listbox.locator('[role="option"][aria-selected="true"]')
        expect(chosen).to_have_count(1)
        expect(composer).to_have_attribute("aria-activedescendant", chosen.get_attribute("id"))
        return chosen

    expect(active()).to_contain_text("Bob Baker")
    composer.press("ArrowDown")
    expect(active()).to_contain_text("Carol Chen")
    composer.press("ArrowUp")
    composer.press("ArrowUp")  # wraps round to the last
    expect(active()).to_contain_text("Dave Diaz")

    composer.press_sequentially("c")  # narrows the list
    expect(options).to_have_count(1)
    expect(active()).to_contain_text("Carol Chen")
    composer.press("Escape")
    expect(listbox).to_be_hidden()
    expect(composer).to_have_attribute("aria-expanded", "false")
    expect(composer).to_have_value("Thanks @c")  # Escape only closed the list

    composer.press("Backspace")
    composer.press("Backspace")
    composer.press_sequentially("@ca")
    expect(options).to_have_count(1)
    composer.press("Tab")
    expect(composer).to_have_value(f"Thanks @{team.carol.username} ")
    expect(composer).to_be_focused()
    composer.press_sequentially("and @bak")  # a word of the display name matches too
    expect(options).to_have_count(1)
    expect(active()).to_contain_text("Bob Baker")
    composer.press("Enter")  # picks, does not send
    expect(composer).to_have_value(f"Thanks @{team.carol.username} and @{team.bob.username} ")
    expect(listbox).to_be_hidden()
    composer.press_sequentially("for the review")
    browsing.shoot(alice, "composing")
    composer.press("Enter")  # now sends

    sent = message(bob, "for the review")
    expect(sent).to_be_visible()
    expect(sent.locator(".mention")).to_have_text([f"@{team.carol.username}", f"@{team.bob.username}"])
    expect(sent).to_contain_class("msg-mentions-me")
    expect(bob.locator("#bell-count")).to_have_text("1")


def test_desktop_notification_for_a_mention_while_hidden(browsing, make_team):
    """Asked from the bell; shown only while the tab is hidden, tagged with the message id."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    context = browsing.context()
    # The test controls visibility and observes notifications through a stand-in.
    context.add_init_script("""
      window.__shown = [];
      window.__hidden = false;
      Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => window.__hidden });
      Object.defineProperty(Document.prototype, "visibilityState", {
        configurable: true, get: () => (window.__hidden ? "hidden" : "visible"),
      });
      window.Notification = class {
        static permission = "default";
        static requestPermission() { window.Notification.permission = "granted"; return Promise.resolve("granted"); }
        constructor(title, options) { window.__shown.push({ title, ...options }); }
        addEventListener() {}
        close() {}
      };
    """)
    bob = browsing.room(team.bob, room_id, context=context)
    bob.locator("#bell-link").click()
    button = bob.get_by_role("button", name="Turn on desktop notifications")
    expect(button).to_be_visible()
    button.click()
    expect(bob.locator("#desktop-notify-state")).to_contain_text("Desktop notifications are on")
    expect(button).to_be_hidden()
    bob.keyboard.press("Escape")

    visible = server_post_mention(browsing, team, "while you look")
    expect(message(bob, "while you look")).to_be_visible()
    expect(bob.locator("#bell-count")).to_have_text("1")  # its notification event was handled
    bob.evaluate("window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))")
    hidden = server_post_mention(browsing, team, "while you are away")
    expect(bob.locator("#bell-count")).to_have_text("2")
    bob.wait_for_function("() => window.__shown.length > 0")
    shown = bob.evaluate("window.__shown")
    assert [n["tag"] for n in shown] == [f"chorus-mention-{hidden['id']}"]
    assert shown[0]["title"] == f"Alice Archer mentioned you in #{team.room['name']}"
    assert "while you are away" in shown[0]["body"]
    assert visible["id"] != hidden["id"]


def server_post_mention(browsing, team, text: str) -> dict:
    """Alice mentions Bob over REST."""
    return browsing.server.post(team.alice, team.room["id"], f"@{team.bob.username} {text}")


def test_the_room_on_a_phone_in_dark_mode(browsing, make_team, server):
    """A phone-sized screen with a dark system theme: rooms behind a button, nothing cut off."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    server.post(team.alice, room_id, "Morning! The **release branch** is cut: `release/2.4`.")
    phone = browsing.context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, color_scheme="dark",
    )
    bob = browsing.room(team.bob, room_id, context=phone)

    assert bob.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(23, 23, 29)"
    assert bob.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    sidebar = bob.get_by_role("navigation", name="Rooms")
    expect(sidebar).to_be_hidden()
    bob.get_by_role("button", name="Show rooms").tap()
    expect(sidebar).to_be_visible()
    expect(sidebar.get_by_role("link", name=team.room["name"])).to_be_visible()
    bob.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()

    composer = bob.get_by_role("combobox", name=f"Message #{team.room['name']}")
    expect(composer).to_be_in_viewport()
    composer.tap()
    composer.fill("On my way, reading it on the train")
    bob.get_by_role("button", name="Send").tap()
    expect(message(bob, "reading it on the train")).to_be_in_viewport()
    expect(message(bob, "release branch").locator("strong")).to_have_text("release branch")
    browsing.shoot(bob, "bob")
