"""People in the page: a DM started from a profile card, the sidebar's direct messages and
their notification, presence dots that follow a closed tab, the typing line, the New message
picker and the profile form of the account page."""
from __future__ import annotations

import re

from tests.e2e.test_threads import wait_for

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or under CI fails, naming what is missing
    expect = None


def dm_item(page, name: str):
    """A conversation of the sidebar's Direct messages, by its name."""
    return page.locator("#dm-list .dm-item").filter(has=page.locator(".dm-name", has_text=name))


def member_dot(page, user_id: int):
    """The presence dot of a member in the room's member list."""
    return page.locator(f'#member-list li[data-user-id="{user_id}"] .presence-dot')


def test_two_people_start_a_dm_from_a_profile_card(browsing, make_team, server):
    """Alice opens Bob's card from his message, messages him; Bob's sidebar, bell and page
    show the conversation, and both see each other's presence."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    server.post(team.bob, room_id, "Anyone free for a quick question?")
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)

    # Bob's name on his message opens his card: names, presence, local time, a Message button.
    alice.locator("#message-list .msg").filter(has_text="quick question").locator(".msg-author").click()
    card = alice.locator("#profile-card")
    expect(card).to_be_visible()
    expect(card.locator(".profile-name")).to_have_text("Bob Baker")
    expect(card.locator(".profile-handle")).to_have_text(f"@{team.bob.username}")
    expect(card).not_to_contain_text("null")
    expect(card.locator(".presence-dot")).to_have_attribute("data-state", re.compile("^(active|idle)$"))
    browsing.shoot(alice, "profile-card")
    card.get_by_role("button", name="Message").click()

    alice.wait_for_url(lambda url: re.search(r"/rooms/\d+$", url) and not url.endswith(f"/rooms/{room_id}"))
    dm_id = int(alice.url.rsplit("/", 1)[1])
    expect(alice.locator("#room-title")).to_contain_text("Bob Baker")
    expect(alice.get_by_role("button", name="Close conversation")).to_be_visible()
    expect(alice.locator(".leave-form")).to_have_count(0)
    expect(alice.locator(".invite-form")).to_have_count(0)
    expect(alice.locator("#conn-status")).to_have_attribute("data-state", "connected")
    # The conversation is in her sidebar, current; Bob's dot there says he is here.
    expect(dm_item(alice, "Bob Baker")).to_have_class(re.compile(r"\bis-current\b"))
    expect(dm_item(alice, "Bob Baker").locator(".presence-dot")).to_have_attribute("data-state", re.compile("^(active|idle)$"))

    box = alice.get_by_role("combobox", name="Message Bob Baker")
    box.fill("Hi Bob, got a minute?")
    box.press("Enter")
    expect(alice.locator("#message-list .msg[data-id]").filter(has_text="got a minute?")).to_be_visible()
    browsing.shoot(alice, "dm-page")

    # Bob, on the room's page: the DM comes into his sidebar with one unread, his bell rings.
    item = dm_item(bob, "Alice Archer")
    expect(item).to_be_visible()
    expect(item.locator(".dm-unread")).to_have_text("1")
    expect(bob.locator("#bell-count")).to_have_text("1")
    bob.locator("#bell-link").click()
    note = bob.locator("#bell-list .bell-item")
    expect(note).to_have_count(1)
    expect(note).to_contain_text("Alice Archer sent you a direct message")
    expect(note).to_contain_text("got a minute?")
    browsing.shoot(bob, "dm-in-sidebar")

    item.locator("a").click()
    bob.wait_for_url(f"**/rooms/{dm_id}")
    expect(bob.locator("#message-list .msg[data-id]").filter(has_text="got a minute?")).to_be_visible()
    expect(bob.locator("#room-title")).to_contain_text("Alice Archer")
    expect(dm_item(bob, "Alice Archer").locator(".dm-unread")).to_be_hidden()
    for page, watch in browsing.watches.items():
        assert watch.dialogs == [], f"a browser dialog opened on {page.url}: {watch.dialogs}"


def test_presence_follows_a_closed_tab(browsing, make_team, server):
    """Each sees the other here; when Alice closes her only tab Bob sees her go offline, and
    come back when she returns."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    alice_context = browsing.context()
    alice = browsing.room(team.alice, room_id, context=alice_context)
    bob = browsing.room(team.bob, room_id)

    here = re.compile("^(active|idle)$")
    expect(member_dot(bob, team.alice.id)).to_have_attribute("data-state", here)
    expect(member_dot(alice, team.bob.id)).to_have_attribute("data-state", here)

    alice.close()
    expect(member_dot(bob, team.alice.id)).to_have_attribute("data-state", "offline", timeout=15_000)
    browsing.shoot(bob, "alice-offline")

    # She comes back: a new tab of the same browser, still logged in.
    alice = alice_context.new_page()
    browsing.watch(alice)
    alice.goto(f"/rooms/{room_id}")
    expect(alice.locator("#conn-status")).to_have_attribute("data-state", "connected")
    expect(member_dot(bob, team.alice.id)).to_have_attribute("data-state", here, timeout=15_000)
    # Input makes her active (the page reports it, at most once a minute).
    alice.locator("#composer-input").click()
    alice.keyboard.press("Shift")
    expect(member_dot(bob, team.alice.id)).to_have_attribute("data-state", "active", timeout=15_000)


def test_typing_shows_under_the_right_composer_and_clears(browsing, make_team, server):
    """Alice typing shows under Bob's composer; sending clears it; two typists are named together."""
    team = make_team("alice", "bob", "carol")
    room_id = team.room["id"]
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)
    carol = browsing.room(team.carol, room_id)
    line = bob.locator("#composer-typing")
    expect(line).to_have_text("")

    alice_box = alice.locator("#composer-input")
    alice_box.press_sequentially("Working on the release no")
    expect(line).to_have_text("Alice Archer is typing...")
    expect(alice.locator("#composer-typing")).to_have_text("")  # never oneself

    carol.locator("#composer-input").press_sequentially("Me too")
    expect(line).to_have_text("Alice Archer and Carol Chen are typing...")
    browsing.shoot(bob, "two-typing")

    # Carol empties her box: she stops at once; Alice sends: her message clears her.
    carol.locator("#composer-input").fill("")
    expect(line).to_have_text("Alice Archer is typing...")
    alice_box.press_sequentially("tes")
    alice_box.press("Enter")
    expect(bob.locator("#message-list .msg[data-id]").filter(has_text="Working on the release notes")).to_be_visible()
    expect(line).to_have_text("")
    expect(line).to_be_hidden()
    browsing.shoot(bob, "typing-cleared")


def test_new_message_picker_starts_a_group_conversation(browsing, make_team, server):
    """Carol searches two people in the New message picker; the three of them share one DM."""
    team = make_team("alice", "bob", "carol")
    carol = browsing.login(team.carol, "/")
    expect(carol.locator("#conn-status")).to_have_attribute("data-state", "connected")
    carol.get_by_role("button", name="New message").click()
    dialog = carol.get_by_role("dialog", name="New message")
    expect(dialog).to_be_visible()
    search = dialog.get_by_role("combobox")
    # Every team's Alice is "Alice Archer": the username tells them apart.
    search.press_sequentially(team.alice.username)
    option = dialog.get_by_role("option", name=re.compile(f"@{team.alice.username}$"))
    option.click()
    expect(dialog.locator(".dm-chip")).to_have_count(1)
    search.press_sequentially(team.bob.username)
    dialog.get_by_role("option", name=re.compile(f"@{team.bob.username}$")).click()
    expect(dialog.locator(".dm-chip")).to_have_count(2)
    browsing.shoot(carol, "new-message-picker")
    dialog.get_by_role("button", name="Start conversation").click()

    carol.wait_for_url(re.compile(r"/rooms/\d+$"))
    dm_id = int(carol.url.rsplit("/", 1)[1])
    expect(carol.locator("#room-title")).to_contain_text("Alice Archer and Bob Baker")
    expect(dm_item(carol, "Alice Archer and Bob Baker")).to_be_visible()
    # The same people again open the same conversation.
    again = server.api("POST", "/dms", team.alice.token, json={"usernames": [team.bob.username, team.carol.username]})
    assert again["id"] == dm_id


def test_closing_a_dm_hides_it_until_a_new_message(browsing, make_team, server):
    """Close conversation takes a DM off the sidebar; Bob's next message brings it back on top."""
    team = make_team("alice", "bob", "carol")
    with_bob = server.api("POST", "/dms", team.alice.token, json={"usernames": [team.bob.username]})
    with_carol = server.api("POST", "/dms", team.alice.token, json={"usernames": [team.carol.username]})
    server.post(team.bob, with_bob["id"], "First")
    server.post(team.carol, with_carol["id"], "Later")
    alice = browsing.room(team.alice, with_bob["id"])
    names = alice.locator("#dm-list .dm-name")
    expect(names).to_have_text(["Carol Chen", "Bob Baker"])
    # The page marks what she saw read before she closes it.
    wait_for(lambda: server.api("GET", f"/rooms/{with_bob['id']}", team.alice.token)["unread"] == 0,
             what="Alice's read marker in the DM")

    alice.get_by_role("button", name="Close conversation").click()
    alice.wait_for_url(re.compile(r"/$"))
    expect(alice.locator("#conn-status")).to_have_attribute("data-state", "connected")
    expect(names).to_have_text(["Carol Chen"])

    server.post(team.bob, with_bob["id"], "Are you there?")
    expect(names).to_have_text(["Bob Baker", "Carol Chen"])
    expect(dm_item(alice, "Bob Baker").locator(".dm-unread")).to_have_text("1")


def test_profile_and_status_from_the_account_page(browsing, make_team, server):
    """Bob sets a status, a time zone and do not disturb; Alice's card of him shows them."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    bob = browsing.login(team.bob, "/account")
    expect(bob.locator("#profile-time-zone")).not_to_have_value("")
    bob.locator("#profile-time-zone").select_option("Asia/Tokyo")
    bob.locator("#profile-status-emoji").fill("🌴")
    bob.locator("#profile-status-text").fill("On holiday")
    bob.get_by_role("button", name="For 1 hour").click()
    bob.get_by_role("button", name="Save profile").click()
    expect(bob.locator("#profile-saved")).to_have_text("Saved.")
    profile = server.api("GET", f"/users/{team.bob.username}", team.alice.token)
    assert profile["time_zone"] == "Asia/Tokyo"
    assert profile["status_text"] == "On holiday" and profile["status_emoji"] == "🌴"
    assert profile["dnd_until"]

    alice = browsing.room(team.alice, room_id)
    alice.locator("#members-menu > summary").click()
    alice.locator(f'#member-list li[data-user-id="{team.bob.id}"] .member-name').click()
    card = alice.locator("#profile-card")
    expect(card.locator(".profile-status")).to_have_text("🌴 On holiday")
    expect(card.locator(".profile-dnd")).to_contain_text("Do not disturb until")
    expect(card.locator(".profile-time")).to_contain_text("local time")
    browsing.shoot(alice, "card-with-status")


def test_a_wildcard_in_a_big_room_asks_first(browsing, make_team, server):
    """In a room of more than WILDCARD_WARN_MEMBERS (20), @room asks before sending; the chip
    is drawn as a wildcard and Bob's bell says Alice mentioned @room."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    for i in range(20):
        extra = server.register(f"crowd{team.suffix}x{i}", f"Crowd {i}")
        server.api("POST", f"/rooms/{room_id}/members", team.alice.token, json={"username": extra.username})
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)
    expect(alice.locator("#member-count")).to_have_text("22")
    box = alice.locator("#composer-input")
    dialog = alice.get_by_role("dialog", name="Notify everyone?")

    # Plain messages and wildcards in code go without a question.
    box.fill("Lunch is in the kitchen, `@room` style")
    box.press("Enter")
    expect(alice.locator("#message-list .msg[data-id]").filter(has_text="Lunch is in the kitchen")).to_be_visible()
    expect(dialog).to_be_hidden()

    box.fill("@room the build is green")
    box.press("Enter")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("@room will notify all 22 members")
    browsing.shoot(alice, "wildcard-confirm")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(box).to_have_value("@room the build is green")
    expect(alice.locator("#message-list .msg").filter(has_text="the build is green")).to_have_count(0)

    box.press("Enter")
    dialog.get_by_role("button", name="Send and notify").click()
    sent = alice.locator("#message-list .msg[data-id]").filter(has_text="the build is green")
    expect(sent.locator("span.mention-wildcard")).to_have_text("@room")
    expect(box).to_have_value("")
    expect(bob.locator("#message-list .msg[data-id]").filter(has_text="the build is green").locator("span.mention-wildcard")).to_be_visible()
    expect(bob.locator("#bell-count")).to_have_text("1")
    bob.locator("#bell-link").click()
    expect(bob.locator("#bell-list .bell-item")).to_contain_text(f"Alice Archer mentioned @room in #{team.room['name']}")
