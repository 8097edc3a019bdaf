"""Edits, deletions and reactions: seen live by the others, caught up after a reconnect, and
drawn the same way by the server's template and the page's renderer."""
from __future__ import annotations

import re
from urllib.parse import quote

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or under CI fails, naming what is missing
    expect = None

SOCKET_URL = re.compile(r"/socket\.io/")


def message(page, text: str):
    """The stored message (not a pending echo) whose body contains text."""
    return page.locator("#message-list .msg[data-id]").filter(has_text=text)


def by_id(page, message_id: int):
    """A message element by its id."""
    return page.locator(f"#message-{message_id}")


def chip(page, message_id: int, emoji: str):
    """The reaction chip of emoji under a message."""
    return by_id(page, message_id).locator(f'.reaction[data-emoji="{emoji}"]')


def actions_of(page, message_id: int):
    """Hover a message and return its toolbar."""
    by_id(page, message_id).hover()
    toolbar = page.get_by_role("toolbar", name="Message actions")
    expect(toolbar).to_be_visible()
    return toolbar


def test_edits_deletions_and_reactions_show_live_for_everyone(browsing, make_team, server):
    """Alice edits, reacts and deletes; Bob sees each change as it happens, and reacts too."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)
    composer = alice.get_by_role("combobox", name=f"Message #{team.room['name']}")
    composer.fill("Lunch at noon?")
    composer.press("Enter")
    expect(message(bob, "Lunch at noon?")).to_be_visible()
    lunch_id = int(message(alice, "Lunch at noon?").get_attribute("data-id"))

    # Edit from the toolbar: Enter saves.
    actions_of(alice, lunch_id).get_by_role("button", name="Edit message").click()
    editor = alice.get_by_role("textbox", name="Edit message")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("Lunch at noon?")
    editor.fill("Lunch at 12:30?")
    editor.press("Enter")
    expect(editor).to_have_count(0)
    for page in (alice, bob):
        seen = by_id(page, lunch_id)
        expect(seen.locator(".msg-body")).to_have_text("Lunch at 12:30?")
        expect(seen.locator(".msg-edited")).to_have_text("(edited)")

    # The edit history is one click away.
    by_id(bob, lunch_id).locator(".msg-edited").click()
    dialog = bob.get_by_role("dialog", name="Edit history")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".edit-version")).to_have_count(2)
    expect(dialog.locator(".edit-version").first).to_contain_text("Lunch at noon?")
    expect(dialog.locator(".edit-version").last).to_contain_text("Lunch at 12:30?")
    browsing.shoot(bob, "bob-history")
    bob.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Bob may neither edit nor delete Alice's message (he does not own the room).
    toolbar = actions_of(bob, lunch_id)
    expect(toolbar.get_by_role("button", name="Add reaction")).to_be_visible()
    expect(toolbar.get_by_role("button", name="Copy link to message")).to_be_visible()
    expect(toolbar.get_by_role("button", name="Edit message")).to_be_hidden()
    expect(toolbar.get_by_role("button", name="Delete message")).to_be_hidden()

    # Alice reacts through the picker, found by name.
    actions_of(alice, lunch_id).get_by_role("button", name="Add reaction").click()
    picker = alice.get_by_role("dialog", name="Add a reaction")
    expect(picker).to_be_visible()
    search = picker.get_by_role("searchbox", name="Search emoji")
    expect(search).to_be_focused()
    search.fill("thumbs up")
    expect(picker.get_by_role("button", name="thumbs up", exact=True)).to_be_visible()
    search.press("Enter")
    expect(picker).to_be_hidden()
    thumbs = "👍"
    expect(chip(alice, lunch_id, thumbs)).to_have_attribute("aria-pressed", "true")
    expect(chip(alice, lunch_id, thumbs)).to_contain_text("1")
    expect(chip(bob, lunch_id, thumbs)).to_have_attribute("aria-pressed", "false")
    expect(chip(bob, lunch_id, thumbs)).to_have_attribute("title", f"{team.alice.username} reacted with {thumbs}")

    # Bob joins in with a click on the chip; both counts move, each highlights their own.
    chip(bob, lunch_id, thumbs).click()
    for page in (alice, bob):
        expect(chip(page, lunch_id, thumbs).locator(".reaction-count")).to_have_text("2")
        expect(chip(page, lunch_id, thumbs)).to_have_attribute("aria-pressed", "true")
        expect(chip(page, lunch_id, thumbs)).to_have_attribute(
            "title", f"{team.alice.username} and {team.bob.username} reacted with {thumbs}")
    browsing.shoot(alice, "alice-reactions")
    # And out again: Alice's chip stays hers.
    chip(bob, lunch_id, thumbs).click()
    expect(chip(alice, lunch_id, thumbs).locator(".reaction-count")).to_have_text("1")
    expect(chip(bob, lunch_id, thumbs)).to_have_attribute("aria-pressed", "false")
    expect(chip(alice, lunch_id, thumbs)).to_have_attribute("aria-pressed", "true")

    # The picker remembers what was used.
    actions_of(alice, lunch_id).get_by_role("button", name="Add reaction").click()
    recent = picker.get_by_role("group", name="Recently used")
    expect(recent.get_by_role("button")).to_have_count(1)
    expect(recent.get_by_role("button")).to_have_text(thumbs)
    picker.press("Escape")
    expect(picker).to_be_hidden()

    # Up in the empty composer edits the last message; Escape leaves it as it was.
    composer.click()
    composer.press("ArrowUp")
    expect(editor).to_be_focused()
    editor.fill("Never mind")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(composer).to_be_focused()
    expect(by_id(alice, lunch_id).locator(".msg-body")).to_have_text("Lunch at 12:30?")

    # Delete asks first.
    actions_of(alice, lunch_id).get_by_role("button", name="Delete message").click()
    confirm = alice.get_by_role("dialog", name="Delete this message?")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Lunch at 12:30?")
    browsing.shoot(alice, "alice-confirm-delete")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(by_id(bob, lunch_id).locator(".msg-body")).to_have_text("Lunch at 12:30?")
    actions_of(alice, lunch_id).get_by_role("button", name="Delete message").click()
    confirm.get_by_role("button", name="Delete").click()
    for page in (alice, bob):
        gone = by_id(page, lunch_id)
        expect(gone).to_contain_class("msg-deleted")
        expect(gone).to_contain_text("This message was deleted")
        expect(gone.locator(".msg-body")).to_have_count(0)
        expect(gone.locator(".reaction")).to_have_count(0)
    browsing.shoot(bob, "bob-deleted")

    # What the pages show is what the server holds.
    stored = server.api("GET", f"/messages/{lunch_id}", team.bob.token)
    assert stored["deleted"] is True
    for page, watch in browsing.watches.items():
        assert watch.dialogs == [], f"a browser dialog opened on {page.url}: {watch.dialogs}"


def test_the_room_owner_may_delete_what_others_wrote(browsing, make_team, server):
    """Alice owns the room: she is offered Delete on Bob's message, never Edit."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    posted = server.post(team.bob, room_id, "Off-topic, sorry")
    alice = browsing.room(team.alice, room_id)
    toolbar = actions_of(alice, posted["id"])
    expect(toolbar.get_by_role("button", name="Edit message")).to_be_hidden()
    toolbar.get_by_role("button", name="Delete message").click()
    alice.get_by_role("dialog", name="Delete this message?").get_by_role("button", name="Delete").click()
    expect(by_id(alice, posted["id"])).to_contain_text("This message was deleted")


def test_a_page_that_was_offline_shows_the_changes_it_missed(browsing, make_team, server):
    """Bob's connection drops; meanwhile Alice edits, deletes, reacts and writes (over REST).
    When Bob is back, his page shows all of it without a reload."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    keep = server.post(team.alice, room_id, "The plan: ship on Friday")
    drop = server.post(team.alice, room_id, "A typo-ridden mesage")
    liked = server.post(team.bob, room_id, "Sounds good")

    sockets = []
    network = {"down": False}

    def through(ws):
        # The page's socket, through the test: it can be cut, and refused while "offline".
        if network["down"]:
            ws.close()
            return
        upstream = ws.connect_to_server()
        sockets.append((ws, upstream))

    context = browsing.context()
    context.route_web_socket(SOCKET_URL, through)
    bob = browsing.room(team.bob, room_id, context=context)
    expect(by_id(bob, keep["id"])).to_be_visible()
    bob.evaluate("window.__sameDocument = true")

    network["down"] = True
    for ws, upstream in sockets:
        ws.close()
        upstream.close()
    # Only the socket's own disconnect says "reconnecting" (going offline first would say
    # "offline" at once, while the socket may still be open and get the changes live).
    expect(bob.locator("#conn-status")).to_have_attribute("data-state", "reconnecting")
    context.set_offline(True)

    server.api("PATCH", f"/messages/{keep['id']}", team.alice.token, json={"body": "The plan: ship on Monday"})
    server.api("DELETE", f"/messages/{drop['id']}", team.alice.token)
    server.api("PUT", f"/messages/{liked['id']}/reactions/{quote('🎉')}", team.alice.token)
    server.post(team.alice, room_id, "Written while Bob was away")
    bob.wait_for_timeout(500)
    expect(by_id(bob, keep["id"]).locator(".msg-body")).to_have_text("The plan: ship on Friday")

    # Online first, then the route: an attempt made in between is refused at once and retried,
    # where one let through to a browser still offline could hang until socket.io's 20 s
    # connect timeout. The wait covers that timeout and the backoff after it all the same.
    context.set_offline(False)
    network["down"] = False
    expect(bob.locator("#conn-status")).to_have_attribute("data-state", "connected", timeout=45_000)
    expect(by_id(bob, keep["id"]).locator(".msg-body")).to_have_text("The plan: ship on Monday")
    expect(by_id(bob, keep["id"]).locator(".msg-edited")).to_be_visible()
    expect(by_id(bob, drop["id"])).to_contain_text("This message was deleted")
    expect(chip(bob, liked["id"], "🎉")).to_have_attribute("aria-pressed", "false")
    expect(chip(bob, liked["id"], "🎉").locator(".reaction-count")).to_have_text("1")
    expect(message(bob, "Written while Bob was away")).to_have_count(1)
    assert bob.evaluate("window.__sameDocument") is True, "the page was reloaded"
    browsing.shoot(bob, "bob-caught-up")

    # Live again: the next change arrives as usual.
    server.api("PUT", f"/messages/{liked['id']}/reactions/{quote('🎉')}", team.bob.token)
    expect(chip(bob, liked["id"], "🎉").locator(".reaction-count")).to_have_text("2")
    expect(chip(bob, liked["id"], "🎉")).to_have_attribute("aria-pressed", "true")


# Every message of the page as the server rendered it and as render.js builds it from the
# API's states, each reduced to a canonical form: attributes sorted, whitespace between tags
# dropped, and the classes the page adds for layout (grouping, highlight) left out.
SAME_MARKUP = """
async () => {
  const { buildMessage } = await import("/static/js/room/render.js");
  const data = JSON.parse(document.getElementById("chorus-data").textContent);
  const response = await fetch(`/api/v1/rooms/${data.room.id}/messages`, { headers: { Accept: "application/json" } });
  const page = await response.json();
  const transient = new Set(["msg-cont", "msg-linked", "msg-flash", "msg-actions-open"]);
  const canon = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.textContent.replace(/\\s+/g, " ").trim();
    if (node.nodeType !== Node.ELEMENT_NODE || node.classList.contains("msg-actions")) return "";
    const attrs = Array.from(node.attributes)
      .map((a) => a.name === "class"
        ? ["class", a.value.split(/\\s+/).filter((c) => c && !transient.has(c)).sort().join(" ")]
        : [a.name, a.value])
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([k, v]) => `${k}="${v}"`).join(" ");
    const inner = Array.from(node.childNodes).map(canon).filter(Boolean).join("");
    return `<${node.localName} ${attrs}>${inner}</${node.localName}>`;
  };
  return page.messages.map((m) => {
    const server = document.getElementById(`message-${m.id}`);
    return {
      id: m.id,
      server: server ? canon(server) : null,
      client: canon(buildMessage(m, { me: data.me, room: data.room })),
    };
  });
}
"""


def first_difference(item: dict) -> str:
    """Where the two markups part, with some context."""
    server, client = item["server"], item["client"]
    at = next((i for i, (a, b) in enumerate(zip(server, client)) if a != b), min(len(server), len(client)))
    return f"server …{server[max(0, at - 80):at + 80]}… client …{client[max(0, at - 80):at + 80]}…"


def test_the_server_and_the_page_draw_a_message_the_same_way(browsing, make_team, server):
    """Plain, mentioning, edited, deleted and reacted-to messages: the template's markup and
    the renderer's are the same, element for element."""
    team = make_team("alice", "bob", "carol")
    room_id = team.room["id"]
    server.post(team.alice, room_id, "Plain **bold** and `code`, a [link](https://example.com)")
    server.post(team.alice, room_id, f"@{team.bob.username} a mention for you")
    edited = server.post(team.bob, room_id, "First words")
    server.api("PATCH", f"/messages/{edited['id']}", team.bob.token, json={"body": "Second words"})
    deleted = server.post(team.carol, room_id, "Soon gone")
    server.api("DELETE", f"/messages/{deleted['id']}", team.carol.token)
    popular = server.post(team.carol, room_id, "React to this")
    for user, emoji in ((team.alice, "👍"), (team.bob, "👍"), (team.carol, "🎉"), (team.bob, "❤️")):
        server.api("PUT", f"/messages/{popular['id']}/reactions/{quote(emoji)}", user.token)
    bob = browsing.room(team.bob, room_id)
    expect(by_id(bob, deleted["id"])).to_contain_text("This message was deleted")

    drawn = bob.evaluate(SAME_MARKUP)
    assert len(drawn) == 5
    for item in drawn:
        assert item["server"] is not None, f"message {item['id']} is not on the page"
        assert item["client"] == item["server"], f"message {item['id']} differs: {first_difference(item)}"
    # The cases the comparison is for are really there.
    by = {item["id"]: item["server"] for item in drawn}
    assert "(edited)" in by[edited["id"]]
    assert "This message was deleted" in by[deleted["id"]] and "Soon gone" not in by[deleted["id"]]
    assert by[popular["id"]].count("data-emoji=") == 3
    assert 'aria-pressed="true"' in by[popular["id"]]


# A finger held on an element (touchstart, a pause, touchend), as a phone's browser reports it.
PRESS = """
async ([selector, ms]) => {
  const el = document.querySelector(selector);
  const box = el.getBoundingClientRect();
  const touch = new Touch({ identifier: 1, target: el, clientX: box.left + 10, clientY: box.top + 5 });
  const init = { bubbles: true, cancelable: true, touches: [touch], targetTouches: [touch], changedTouches: [touch] };
  el.dispatchEvent(new TouchEvent("touchstart", init));
  await new Promise((resolve) => setTimeout(resolve, ms));
  el.dispatchEvent(new TouchEvent("touchend", { ...init, touches: [], targetTouches: [] }));
}
"""


def test_a_long_press_on_a_phone_opens_the_actions(browsing, make_team, server):
    """No hover on a touch screen: holding a message opens its actions; a tap does not."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    theirs = server.post(team.alice, room_id, "Who is in tomorrow?")
    mine = server.post(team.bob, room_id, "Me, from ten")
    phone = browsing.context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    bob = browsing.room(team.bob, room_id, context=phone)
    toolbar = bob.get_by_role("toolbar", name="Message actions")

    bob.evaluate(PRESS, [f"#message-{theirs['id']} .msg-body", 50])
    bob.wait_for_timeout(700)
    expect(toolbar).to_be_hidden()

    bob.evaluate(PRESS, [f"#message-{theirs['id']} .msg-body", 700])
    expect(toolbar).to_be_visible()
    expect(toolbar.get_by_role("button", name="Add reaction")).to_be_visible()
    expect(toolbar.get_by_role("button", name="Edit message")).to_be_hidden()

    bob.evaluate(PRESS, [f"#message-{mine['id']} .msg-body", 700])
    expect(by_id(bob, mine["id"]).get_by_role("toolbar", name="Message actions")).to_be_visible()
    toolbar.get_by_role("button", name="Edit message").tap()
    expect(bob.get_by_role("textbox", name="Edit message")).to_have_value("Me, from ten")
    expect(toolbar).to_be_hidden()
    browsing.shoot(bob, "bob-editing")
