"""Threads in the room page: replies beside the room, the root's live counter, replies also
sent to the room, quote-replies, thread links and notifications, and the panel on a phone."""
from __future__ import annotations

import json
import re
import time

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or under CI fails, naming what is missing
    expect = None

from tests.e2e.test_message_changes import SAME_MARKUP, first_difference


def message(page, text: str):
    """A stored message of the main timeline whose body contains text."""
    return page.locator("#message-list .msg[data-id]").filter(has_text=text)


def by_id(page, message_id: int):
    """A message of the main timeline by its id."""
    return page.locator(f"#message-{message_id}")


def panel_of(page):
    """The thread panel."""
    return page.get_by_role("complementary", name="Thread")


def reply_in_panel(page, text: str):
    """A stored reply in the open thread whose body contains text."""
    return page.locator("#thread-list .msg[data-id]").filter(has_text=text)


def thread_composer(page):
    """The thread panel's message box."""
    return page.get_by_role("combobox", name="Reply to the thread")


def toolbar_of(page, message_id: int):
    """Hover a message of the main timeline and return its toolbar."""
    by_id(page, message_id).locator(".msg-body").hover()
    toolbar = page.get_by_role("toolbar", name="Message actions")
    expect(toolbar).to_be_visible()
    return toolbar


def reply_over_rest(server, user, room_id: int, root_id: int, body: str, **extra) -> dict:
    """A thread reply sent as a bot would."""
    payload = {"body": body, "thread_root_id": root_id, **extra}
    return server.api("POST", f"/rooms/{room_id}/messages", user.token, json=payload)


def send_reply(page, text: str) -> None:
    """Type a reply in the open thread and send it with Enter."""
    box = thread_composer(page)
    box.fill(text)
    if page.locator("#thread-mention-list").is_visible():
        box.press("Escape")  # closes the member list (with no list open, Escape closes the thread)
    box.press("Enter")


def wait_for(check, timeout: float = 10.0, what: str = "a condition"):
    """Poll the server until check() is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_talk_in_a_thread_while_the_third_sees_the_counter_move(browsing, make_team, server):
    """Alice and Bob reply in a thread; Carol sees only the root's counter and repliers move,
    none of the replies in her timeline, until Bob mentions her and she opens it from the bell."""
    team = make_team("alice", "bob", "carol")
    room_id = team.room["id"]
    root = server.post(team.alice, room_id, "Release plan for Friday: who takes what?")
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)
    carol = browsing.room(team.carol, room_id)

    # Alice replies from the message's actions: the thread opens beside the room.
    toolbar_of(alice, root["id"]).get_by_role("button", name="Reply in thread").click()
    expect(panel_of(alice)).to_be_visible()
    expect(panel_of(alice).locator(f"#thread-message-{root['id']}")).to_contain_text("Release plan for Friday")
    expect(thread_composer(alice)).to_be_focused()
    assert f"thread={root['id']}" in alice.url
    send_reply(alice, "I can take the release notes")
    expect(reply_in_panel(alice, "I can take the release notes")).to_be_visible()
    expect(alice.locator("#thread-list .msg-pending")).to_have_count(0)

    # Everyone's root shows one reply, by Alice; nobody's main timeline shows the reply.
    for page in (alice, bob, carol):
        summary = by_id(page, root["id"]).locator(".thread-summary")
        expect(summary.locator(".thread-count")).to_have_text("1 reply")
        expect(summary.locator(".thread-repliers .avatar")).to_have_count(1)
        expect(summary.locator(".thread-last time")).to_have_attribute("data-localized", "1")
        expect(message(page, "release notes")).to_have_count(0)

    # Bob opens the thread from the counter and answers; Alice sees it live in her panel.
    by_id(bob, root["id"]).locator(".thread-summary").click()
    expect(panel_of(bob)).to_be_visible()
    expect(reply_in_panel(bob, "I can take the release notes")).to_be_visible()
    send_reply(bob, "Then I do the changelog")
    expect(reply_in_panel(alice, "Then I do the changelog")).to_be_visible()
    expect(panel_of(bob).get_by_role("button", name="Following", exact=True)).to_be_visible()

    # Carol: the counter and the repliers moved, the replies stayed out of her timeline.
    carol_summary = by_id(carol, root["id"]).locator(".thread-summary")
    expect(carol_summary.locator(".thread-count")).to_have_text("2 replies")
    expect(carol_summary.locator(".thread-repliers .avatar")).to_have_count(2)
    expect(carol_summary.locator(".thread-repliers .avatar").nth(1)).to_have_attribute("title", f"@{team.bob.username}")
    expect(message(carol, "changelog")).to_have_count(0)
    expect(panel_of(carol)).to_be_hidden()
    expect(carol.locator("#bell-count")).to_be_hidden()
    browsing.shoot(alice, "alice-panel")
    browsing.shoot(carol, "carol-counter")

    # Bob mentions Carol in the thread: her bell rings, and the notification opens the thread.
    send_reply(bob, f"@{team.carol.username} could you check the date?")
    expect(carol.locator("#bell-count")).to_have_text("1")
    expect(carol_summary.locator(".thread-count")).to_have_text("3 replies")
    expect(message(carol, "check the date")).to_have_count(0)
    carol.locator("#bell-link").click()
    item = carol.locator("#bell-list .bell-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Bob Baker mentioned you in a thread")
    expect(item.locator("a")).to_have_attribute("href", f"/rooms/{room_id}?thread={root['id']}")
    item.locator("a").click()
    carol.wait_for_url(f"**/rooms/{room_id}?thread={root['id']}")
    expect(panel_of(carol)).to_be_visible()
    for text in ("I can take the release notes", "Then I do the changelog", "could you check the date?"):
        expect(reply_in_panel(carol, text)).to_be_visible()
    mention = reply_in_panel(carol, "could you check the date?")
    expect(mention).to_contain_class("msg-mentions-me")
    # Being mentioned made her follow the thread.
    expect(panel_of(carol).get_by_role("button", name="Following", exact=True)).to_be_visible()
    browsing.shoot(carol, "carol-opened-from-bell")

    # Carol answers, with markdown and a mention picked from the member list, like in the room.
    box = thread_composer(carol)
    box.fill("**Friday** is fine, @ali")
    option = carol.locator("#thread-mention-list").get_by_role("option", name=f"@{team.alice.username}")
    expect(option).to_be_visible()
    box.press("Enter")  # picks
    expect(box).to_have_value(f"**Friday** is fine, @{team.alice.username} ")
    box.press("Enter")  # sends
    answer = reply_in_panel(alice, "is fine")
    expect(answer.locator("strong")).to_have_text("Friday")
    expect(answer.locator(".mention")).to_have_text(f"@{team.alice.username}")
    expect(by_id(alice, root["id"]).locator(".thread-count")).to_have_text("4 replies")
    for page, watch in browsing.watches.items():
        assert watch.dialogs == [], f"a browser dialog opened on {page.url}: {watch.dialogs}"


def test_following_a_thread_and_opening_it_from_threads_and_notifications(browsing, make_team, server):
    """Carol follows a thread she was not in; replies then reach her bell, her Threads list
    shows it unread first, and either opens it."""
    team = make_team("alice", "bob", "carol")
    room_id = team.room["id"]
    other = server.post(team.bob, room_id, "Another topic")
    root = server.post(team.alice, room_id, "Offsite location ideas?")
    reply_over_rest(server, team.bob, room_id, root["id"], "The lake house")
    reply_over_rest(server, team.alice, room_id, other["id"], "Not this one")
    carol = browsing.room(team.carol, room_id)

    by_id(carol, root["id"]).locator(".thread-summary").click()
    panel = panel_of(carol)
    follow = panel.get_by_role("button", name="Follow", exact=True)
    expect(follow).to_be_visible()
    follow.click()
    expect(panel.get_by_role("button", name="Following", exact=True)).to_have_attribute("aria-pressed", "true")
    panel.get_by_role("button", name="Close thread").click()
    expect(panel).to_be_hidden()
    assert "thread=" not in carol.url

    reply_over_rest(server, team.alice, room_id, root["id"], "Or the old mill")
    expect(carol.locator("#bell-count")).to_have_text("1")
    expect(carol.locator("#threads-unread")).to_have_text("1")
    expect(by_id(carol, root["id"]).locator(".thread-count")).to_have_text("2 replies")

    # The Threads list: the unread thread, opened in place (same room).
    carol.get_by_role("button", name="Threads").click()
    dialog = carol.get_by_role("dialog", name="Threads you follow")
    expect(dialog).to_be_visible()
    first = dialog.locator(".thread-item").first
    expect(first).to_contain_text("Offsite location ideas?")
    expect(first).to_contain_class("is-unread")
    expect(first).to_contain_text("1 new")
    browsing.shoot(carol, "threads-list")
    first.locator("a").click()
    expect(dialog).to_be_hidden()
    expect(panel).to_be_visible()
    expect(reply_in_panel(carol, "Or the old mill")).to_be_visible()
    # The newest reply is on screen: the thread is read, here and on the server.
    expect(carol.locator("#threads-unread")).to_be_hidden()
    wait_for(lambda: all(t["unread"] == 0 for t in server.api("GET", "/threads", team.carol.token)["threads"]),
             what="the thread to be read")

    # The notification of the reply links to the thread, and opens it on the notifications page too.
    carol.goto("/notifications")
    link = carol.locator(".notification-link").first
    expect(link).to_contain_text("replied in a thread")
    expect(link).to_have_attribute("href", f"/rooms/{room_id}?thread={root['id']}")
    link.click()
    carol.wait_for_url(f"**/rooms/{room_id}?thread={root['id']}")
    expect(reply_in_panel(carol, "Or the old mill")).to_be_visible()


def test_a_reply_also_sent_to_the_room(browsing, make_team, server):
    """"Also send to the room" puts one reply in both places, with a link back to its thread."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    root = server.post(team.alice, room_id, "Which day for the demo?")
    alice = browsing.room(team.alice, room_id, query=f"?thread={root['id']}")
    bob = browsing.room(team.bob, room_id)
    expect(panel_of(alice)).to_be_visible()

    also = panel_of(alice).get_by_role("checkbox", name=f"Also send to #{team.room['name']}")
    send_reply(alice, "Only in the thread")
    also.check()
    send_reply(alice, "Decided: the demo is on Tuesday")
    expect(also).not_to_be_checked()  # per reply
    expect(reply_in_panel(alice, "Decided: the demo is on Tuesday")).to_be_visible()
    expect(reply_in_panel(alice, "Decided").locator(".tag-also")).to_have_text(f"also in #{team.room['name']}")

    for page in (alice, bob):
        shared = message(page, "Decided: the demo is on Tuesday")
        expect(shared).to_be_visible()
        expect(shared.locator(".msg-thread-link")).to_have_text("replied to a thread")
        expect(message(page, "Only in the thread")).to_have_count(0)
        expect(by_id(page, root["id"]).locator(".thread-count")).to_have_text("2 replies")
    browsing.shoot(bob, "bob-also-in-room")

    # The link opens the thread in place.
    message(bob, "Decided").locator(".msg-thread-link").click()
    expect(panel_of(bob)).to_be_visible()
    expect(reply_in_panel(bob, "Only in the thread")).to_be_visible()
    expect(reply_in_panel(bob, "Decided")).to_be_visible()
    assert f"thread={root['id']}" in bob.url

    # Deleting it from the panel removes it from both places.
    shared_id = int(message(bob, "Decided").get_attribute("data-id"))
    reply_in_panel(alice, "Decided").locator(".msg-body").hover()
    panel_of(alice).get_by_role("toolbar", name="Message actions").get_by_role("button", name="Delete message").click()
    alice.get_by_role("dialog", name="Delete this message?").get_by_role("button", name="Delete").click()
    for page in (alice, bob):
        expect(by_id(page, shared_id)).to_contain_text("This message was deleted")
        expect(page.locator(f"#thread-message-{shared_id}")).to_contain_text("This message was deleted")
        expect(by_id(page, root["id"]).locator(".thread-count")).to_have_text("1 reply")


def test_a_quote_reply_shows_the_quote_and_links_to_it(browsing, make_team, server):
    """Bob quotes Alice's message: a compact quote above his composer (which he can drop),
    then above his message, linking to hers."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    quoted = server.post(team.alice, room_id, "The build is green again, <b>finally</b>")
    for n in range(30):
        server.post(team.alice, room_id, f"filler {n}")
    alice = browsing.room(team.alice, room_id)
    bob = browsing.room(team.bob, room_id)

    by_id(bob, quoted["id"]).scroll_into_view_if_needed()
    toolbar_of(bob, quoted["id"]).get_by_role("button", name="Quote").click()
    draft = bob.get_by_role("group", name="Quoted message")
    expect(draft).to_be_visible()
    expect(draft).to_contain_text("Alice Archer")
    expect(draft).to_contain_text("The build is green again, <b>finally</b>")  # text, not HTML
    composer = bob.get_by_role("combobox", name=f"Message #{team.room['name']}")
    expect(composer).to_be_focused()
    draft.get_by_role("button", name="Cancel quote").click()
    expect(draft).to_be_hidden()

    toolbar_of(bob, quoted["id"]).get_by_role("button", name="Quote").click()
    composer.fill("Great news")
    composer.press("Enter")
    expect(draft).to_be_hidden()
    for page in (alice, bob):
        sent = message(page, "Great news")
        expect(sent).to_be_visible()
        quote = sent.locator(".msg-quote")
        expect(quote.locator(".msg-quote-author")).to_have_text("Alice Archer")
        expect(quote.locator(".msg-quote-excerpt")).to_have_text("The build is green again, <b>finally</b>")
        expect(quote).to_have_attribute("href", f"/rooms/{room_id}?around={quoted['id']}#message-{quoted['id']}")
        assert page.locator(".msg-quote b").count() == 0
    browsing.shoot(alice, "alice-quote")

    # A click on the quote goes to the quoted message.
    message(alice, "Great news").locator(".msg-quote").click()
    expect(by_id(alice, quoted["id"])).to_contain_class("msg-linked")
    expect(by_id(alice, quoted["id"])).to_be_in_viewport()

    # Once the quoted message is deleted, the quote says so.
    server.api("DELETE", f"/messages/{quoted['id']}", team.alice.token)
    bob.reload()
    gone = message(bob, "Great news").locator(".msg-quote")
    expect(gone).to_contain_class("msg-quote-deleted")
    expect(gone.locator(".msg-quote-excerpt")).to_have_text("deleted message")


def test_a_thread_link_opens_the_panel_with_its_unread_marker_and_history(browsing, make_team, server):
    """/rooms/<id>?thread=<root> opens the thread on load; the replies Alice has not read are
    marked; scrolling up brings the older replies; the newest on screen marks it read."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    root = server.post(team.alice, room_id, "Retro notes, one per reply")
    for n in range(1, 61):
        reply_over_rest(server, team.bob, room_id, root["id"], f"note number {n}")
    threads = server.api("GET", "/threads", team.alice.token)["threads"]
    entry = next(t for t in threads if t["root"]["id"] == root["id"])
    assert entry["unread"] == 60

    alice = browsing.room(team.alice, room_id, query=f"?thread={root['id']}")
    panel = panel_of(alice)
    expect(panel).to_be_visible()
    expect(panel.locator(f"#thread-message-{root['id']}")).to_contain_text("Retro notes")
    expect(panel.locator("#thread-count-line")).to_have_text("60 replies")
    expect(reply_in_panel(alice, "note number 60")).to_be_visible()
    expect(message(alice, "note number")).to_have_count(0)
    browsing.shoot(alice, "thread-link")

    # Scrolling back pages through the thread (?thread=&before=) down to its first reply.
    scroller = alice.locator("#thread-timeline")
    replies = alice.locator("#thread-list .msg[data-id]")
    for _ in range(10):
        if replies.count() == 60:
            break
        scroller.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        alice.wait_for_timeout(300)
    first = alice.locator("#thread-list .msg[data-id]").first
    expect(first).to_contain_text("note number 1")
    expect(alice.locator("#thread-list .msg[data-id]")).to_have_count(60)
    # Every reply was unread: the marker stands before the first.
    expect(alice.locator("#thread-list .unread-sep")).to_have_count(1)
    ids = [int(x) for x in alice.locator("#thread-list .msg[data-id]").evaluate_all("els => els.map((e) => e.dataset.id)")]
    assert ids == sorted(ids) and len(set(ids)) == 60
    after_marker = alice.evaluate("""() => {
      let el = document.querySelector("#thread-list .unread-sep");
      while (el && !el.matches(".msg[data-id]")) el = el.nextElementSibling;
      return el ? Number(el.dataset.id) : null;
    }""")
    assert after_marker == ids[0]

    # Back at the bottom, the newest reply is seen: the server has the thread read.
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }")
    wait_for(lambda: next(t for t in server.api("GET", "/threads", team.alice.token)["threads"]
                          if t["root"]["id"] == root["id"])["unread"] == 0, what="the thread to be read")

    # Opened again, nothing is new.
    alice.reload()
    expect(reply_in_panel(alice, "note number 60")).to_be_visible()
    expect(alice.locator("#thread-list .unread-sep")).to_have_count(0)

    # A new reply while it is open, at the bottom: shown live, read at once.
    reply_over_rest(server, team.bob, room_id, root["id"], "note number 61")
    expect(reply_in_panel(alice, "note number 61")).to_be_visible()
    wait_for(lambda: next(t for t in server.api("GET", "/threads", team.alice.token)["threads"]
                          if t["root"]["id"] == root["id"])["last_read_id"] > ids[-1], what="the new reply to be read")


def test_the_panel_knows_a_followed_thread_the_threads_list_does_not_hold(browsing, make_team, server):
    """The Threads list holds the latest 100 followed threads only; a thread past them still
    opens as followed, with "New" after the reader's marker and read once seen, because the
    panel takes where the reader stands from the thread's own page."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    root = server.post(team.alice, room_id, "Budget questions, one per reply")
    first, second, third = (reply_over_rest(server, team.bob, room_id, root["id"], f"question {n}")
                            for n in (1, 2, 3))
    server.api("POST", f"/threads/{root['id']}/read", team.alice.token, json={"message_id": first["id"]})

    context = browsing.context()
    # As if Alice followed 100 threads with later replies: the list she gets does not hold this one.
    context.route(re.compile(r"/api/v1/threads(\?|$)"), lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"threads": [], "has_more": True})))
    alice = browsing.room(team.alice, room_id, context=context, query=f"?thread={root['id']}")
    panel = panel_of(alice)
    expect(reply_in_panel(alice, "question 3")).to_be_visible()
    expect(panel.get_by_role("button", name="Following", exact=True)).to_have_attribute("aria-pressed", "true")
    expect(alice.locator("#thread-list .unread-sep")).to_have_count(1)
    after_marker = alice.evaluate("""() => {
      let el = document.querySelector("#thread-list .unread-sep");
      while (el && !el.matches(".msg[data-id]")) el = el.nextElementSibling;
      return el ? Number(el.dataset.id) : null;
    }""")
    assert after_marker == second["id"]
    # The newest reply is on screen: the thread is read up to it.
    wait_for(lambda: server.api("GET", f"/rooms/{room_id}/messages?thread={root['id']}", team.alice.token)
             ["follow"]["last_read_id"] == third["id"], what="the thread to be read")


def test_the_thread_panel_takes_the_whole_screen_on_a_phone(browsing, make_team, server):
    """On a phone-sized screen the thread covers the room; closing it gives the room back."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    root = server.post(team.alice, room_id, "Lunch order, reply with yours")
    pad_thai = reply_over_rest(server, team.alice, room_id, root["id"], "Pad thai")
    phone = browsing.context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    bob = browsing.room(team.bob, room_id, context=phone)

    by_id(bob, root["id"]).locator(".thread-summary").tap()
    panel = panel_of(bob)
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] == 0 and box["width"] == 390, box
    assert box["y"] + box["height"] >= 843, box
    assert bob.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    composer = thread_composer(bob)
    expect(composer).to_be_in_viewport()
    composer.tap()
    composer.fill("Green curry")
    bob.locator("#thread-send").tap()
    expect(reply_in_panel(bob, "Green curry")).to_be_in_viewport()
    browsing.shoot(bob, "phone-thread")

    panel.get_by_role("button", name="Close thread").tap()
    expect(panel).to_be_hidden()
    expect(by_id(bob, root["id"]).locator(".thread-count")).to_have_text("2 replies")
    expect(message(bob, "Green curry")).to_have_count(0)

    # A reply's link (what "Copy link" gives in a thread) opens the thread at that reply.
    bob.goto(f"/rooms/{room_id}?thread={root['id']}#thread-message-{pad_thai['id']}")
    expect(bob.locator(f"#thread-message-{pad_thai['id']}")).to_contain_class("msg-linked")
    expect(panel).to_be_visible()


def test_the_server_and_the_page_draw_threads_and_quotes_the_same_way(browsing, make_team, server):
    """A root with replies, a deleted root, a reply also in the room and quote-replies (one of a
    deleted message): the template's markup and the renderer's are the same."""
    team = make_team("alice", "bob")
    room_id = team.room["id"]
    root = server.post(team.alice, room_id, "A root")
    reply_over_rest(server, team.bob, room_id, root["id"], "a reply")
    reply_over_rest(server, team.alice, room_id, root["id"], "a shared reply", also_in_room=True)
    gone_root = server.post(team.bob, room_id, "A root soon deleted")
    reply_over_rest(server, team.alice, room_id, gone_root["id"], "kept")
    server.api("DELETE", f"/messages/{gone_root['id']}", team.bob.token)
    quoted = server.post(team.alice, room_id, "Quote me")
    server.api("POST", f"/rooms/{room_id}/messages", team.bob.token, json={"body": "quoting", "quote_of": quoted["id"]})
    doomed = server.post(team.alice, room_id, "Quote me, then I go")
    server.api("POST", f"/rooms/{room_id}/messages", team.bob.token, json={"body": "quoting the gone", "quote_of": doomed["id"]})
    server.api("DELETE", f"/messages/{doomed['id']}", team.alice.token)
    bob = browsing.room(team.bob, room_id)
    expect(by_id(bob, root["id"]).locator(".thread-count")).to_have_text("2 replies")

    drawn = bob.evaluate(SAME_MARKUP)
    assert len(drawn) == 7  # the two roots, the shared reply, two quoted, two quoting
    for item in drawn:
        assert item["server"] is not None, f"message {item['id']} is not on the page"
        assert item["client"] == item["server"], f"message {item['id']} differs: {first_difference(item)}"
    joined = " ".join(item["server"] for item in drawn)
    assert joined.count("thread-summary") == 2
    assert "replied to a thread" in joined
    assert joined.count("msg-quote-author") == 2 and "deleted message" in joined
