"""Following threads, their read markers and the list of followed threads (REST), and the
notifications of thread replies made by the one notification task: followers get
`thread_reply`, a mentioned follower only the mention, nobody twice, and the sweep finds
a reply whose task was lost.

Celery runs eagerly here (the embedded mode): the task runs right after the sender's commit.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import events, tasks
from app.actions import memberships, message_edit, notifications, users
from app.extensions import db
from app.models import Message, Notification, ThreadFollow, User
from app.queries import history
from tests.conftest import events_named
from tests.test_actions import row
from tests.test_threads import reply


@pytest.fixture
def call(app, bearer):
    """call(user, method, path, json=None) -> the response of an authenticated /api/v1 request."""

    def _call(user, method, path, **kwargs):
        return getattr(app.test_client(), method)(f"/api/v1{path}", headers=bearer(user), **kwargs)

    return _call


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()["error"]
    assert body["code"] == code and body["message"]
    return body


def follow_rows(app, root_id) -> dict[int, tuple[bool, int]]:
    with app.app_context():
        return {f.user_id: (f.following, f.last_read_id)
                for f in db.session.execute(sa.select(ThreadFollow).filter_by(root_id=root_id)).scalars()}


def notified(app, message_id) -> list[tuple[int, str]]:
    """(user id, kind) of a message's notifications, in the order they were made."""
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            sa.select(Notification.user_id, Notification.kind).filter_by(message_id=message_id)
            .order_by(Notification.id))]


def send_as(app, user_ref, room_id, body, root_id=None, **kwargs) -> dict:
    with app.app_context():
        return reply(user_ref, room_id, body, root_id, **kwargs)


def age(app, message_id, seconds):
    """Make a message look older than it is (the sweep leaves young ones to their task)."""
    with app.app_context():
        message = db.session.get(Message, message_id)
        message.created_at = message.created_at - timedelta(seconds=seconds)
        db.session.commit()


# --- Following ----------------------------------------------------------------------------

def test_follow_and_unfollow_answer_the_root_and_keep_the_marker(app, team, call):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    # A message without replies may be followed: that makes the row.
    assert ok(call(carol, "put", f"/threads/{root}/follow")) == {"root_id": root, "following": True}
    assert follow_rows(app, root) == {carol.id: (True, 0)}
    first = send_as(app, bob, room.id, "first", root)["id"]
    ok(call(carol, "post", f"/threads/{root}/read"))
    # The id of a reply means its root.
    assert ok(call(carol, "delete", f"/threads/{first}/follow")) == {"root_id": root, "following": False}
    assert follow_rows(app, root)[carol.id] == (False, first)  # the marker stays
    assert ok(call(carol, "delete", f"/threads/{root}/follow")) == {"root_id": root, "following": False}
    assert ok(call(carol, "put", f"/threads/{first}/follow")) == {"root_id": root, "following": True}
    assert follow_rows(app, root)[carol.id] == (True, first)


def test_an_unfollow_without_a_row_is_remembered_through_mentions_until_a_reply(app, team, call):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    assert ok(call(carol, "delete", f"/threads/{root}/follow")) == {"root_id": root, "following": False}
    send_as(app, bob, room.id, "what do you think @carol?", root)
    assert follow_rows(app, root)[carol.id] == (False, 0)
    mine = send_as(app, carol, room.id, "fine", root)["id"]
    assert follow_rows(app, root)[carol.id] == (True, mine)


def test_following_is_for_members_of_the_room_only(app, team, call, make_room, make_user):
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    secret = make_room(dave, "secret", is_private=True)
    hidden = send_as(app, dave, secret.id, "hidden")["id"]
    for method in ("put", "delete"):
        # A public room one has not joined answers as a private one: not found.
        error(call(dave, method, f"/threads/{root}/follow"), 404, "not_found")
        error(call(bob, method, f"/threads/{hidden}/follow"), 404, "not_found")
        error(call(bob, method, "/threads/999999/follow"), 404, "not_found")
        error(call(bob, method, "/threads/0/follow"), 404, "not_found")
        error(call(bob, method, f"/threads/{2**63}/follow"), 404, "not_found")
        error(call(bob, method, "/threads/abc/follow"), 404, "not_found")
        response = getattr(app.test_client(), method)(f"/api/v1/threads/{root}/follow")
        error(response, 401, "unauthorized")
    error(call(bob, "post", f"/threads/{root}/follow"), 405, "method_not_allowed")
    assert follow_rows(app, root) == {}
    assert follow_rows(app, hidden) == {}


# --- Reading ------------------------------------------------------------------------------

def test_reading_moves_the_marker_forward_only_and_tells_my_sockets(app, team, call, live):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    r1 = send_as(app, bob, room.id, "one", root)["id"]
    r2 = send_as(app, carol, room.id, "two", root)["id"]
    mine = send_as(app, alice, room.id, "three", root)["id"]  # moves alice's own marker
    r4 = send_as(app, bob, room.id, "four", root)["id"]
    assert follow_rows(app, root)[alice.id] == (True, mine)
    alice_socket, bob_socket = live(alice), live(bob)
    alice_socket.get_received(), bob_socket.get_received()
    # Back from my own reply: the marker stays where it is, nothing is sent.
    assert ok(call(alice, "post", f"/threads/{root}/read", json={"message_id": r1})) == {
        "root_id": root, "last_read_id": mine, "unread": 1}
    assert events_named(alice_socket, "thread_read") == []
    # The id of a reply names its thread; the default is the newest reply.
    assert ok(call(alice, "post", f"/threads/{r2}/read")) == {"root_id": root, "last_read_id": r4, "unread": 0}
    assert events_named(alice_socket, "thread_read") == [{"root_id": root, "last_read_id": r4, "unread": 0}]
    assert events_named(bob_socket, "thread_read") == []
    # A message id past the newest reply reads up to the newest reply.
    assert ok(call(bob, "post", f"/threads/{root}/read", json={"message_id": 10**12}))["last_read_id"] == r4
    assert follow_rows(app, root)[bob.id] == (True, r4)
    with app.app_context():
        # A deleted reply by someone else no longer counts as unread.
        message_edit.do_delete_message(row(User, carol), r2)
    # carol's own reply set her marker; alice's reply and r4 came after it.
    assert ok(call(carol, "post", f"/threads/{root}/read", json={"message_id": r1})) == {
        "root_id": root, "last_read_id": r2, "unread": 2}
    with app.app_context():
        message_edit.do_delete_message(row(User, alice), mine)
    assert ok(call(carol, "post", f"/threads/{root}/read"))["unread"] == 0


def test_reading_a_thread_i_do_not_follow_keeps_a_marker_without_following(app, team, call):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    # No replies: nothing to read, no row made.
    assert ok(call(carol, "post", f"/threads/{root}/read")) == {"root_id": root, "last_read_id": 0, "unread": 0}
    assert carol.id not in follow_rows(app, root)
    r1 = send_as(app, bob, room.id, "one", root)["id"]
    send_as(app, bob, room.id, "two", root)
    assert ok(call(carol, "post", f"/threads/{root}/read", json={"message_id": r1})) == {
        "root_id": root, "last_read_id": r1, "unread": 1}
    assert follow_rows(app, root)[carol.id] == (False, r1)
    assert ok(call(carol, "get", "/threads")) == {"threads": [], "has_more": False}
    assert notified(app, r1) == [(alice.id, "thread_reply")]


def test_reading_refuses_bad_input_and_strangers(app, team, call, make_room):
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    send_as(app, bob, room.id, "one", root)
    path = f"/threads/{root}/read"
    for body in ({"message_id": "1"}, {"message_id": 0}, {"message_id": -3}, {"message_id": True},
                 {"message_id": 1.5}, {"message_id": 2**63}):
        assert error(call(bob, "post", path, json=body), 400, "invalid")["field"] == "message_id"
    error(call(bob, "post", path, json=[1]), 400, "invalid")
    error(call(bob, "post", path, data="{", content_type="application/json"), 400, "invalid")
    error(call(bob, "post", path, data="x", content_type="text/plain"), 400, "invalid")
    error(call(dave, "post", path), 404, "not_found")
    error(call(bob, "post", "/threads/424242/read"), 404, "not_found")
    assert follow_rows(app, root)[bob.id][1] > 0 and dave.id not in follow_rows(app, root)


# --- The list -----------------------------------------------------------------------------

def test_the_list_puts_unread_threads_first_then_the_latest_reply(app, team, call, make_room):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    other = make_room(carol, "other", members=[alice])
    quiet = send_as(app, alice, room.id, "quiet")["id"]
    ok(call(alice, "put", f"/threads/{quiet}/follow"))  # followed, never answered
    old = send_as(app, alice, room.id, "old")["id"]
    busy = send_as(app, alice, room.id, "busy")["id"]
    elsewhere = send_as(app, carol, other.id, "elsewhere")["id"]
    send_as(app, bob, room.id, "old answer", old)
    send_as(app, bob, room.id, "busy 1", busy)
    b2 = send_as(app, carol, room.id, "busy 2", busy)["id"]
    mine = send_as(app, alice, room.id, "busy 3 (mine)", busy)["id"]
    b4 = send_as(app, bob, room.id, "busy 4", busy)["id"]
    e1 = send_as(app, alice, other.id, "my answer", elsewhere)["id"]
    ok(call(alice, "post", f"/threads/{old}/read"))
    body = ok(call(alice, "get", "/threads"))
    assert [(t["root"]["id"], t["unread"]) for t in body["threads"]] == [
        (busy, 1), (elsewhere, 0), (old, 0), (quiet, 0)]
    assert body["has_more"] is False
    first = body["threads"][0]
    with app.app_context():
        stored = db.session.get(Message, busy)
        state = history.get_message_states(db.session.connection(), [busy], viewer_id=alice.id)[busy]
        assert first == {"root": state, "reply_count": 4, "unread": 1,
                         "last_reply_at": state["thread"]["last_reply_at"], "last_read_id": mine}
        assert stored.last_reply_at is not None and first["root"]["thread"]["reply_count"] == 4
    assert body["threads"][1]["last_read_id"] == e1 and body["threads"][3]["last_reply_at"] is None
    assert body["threads"][3]["reply_count"] == 0
    # Unread only, and a page at a time.
    assert [t["root"]["id"] for t in ok(call(alice, "get", "/threads?unread=1"))["threads"]] == [busy]
    page = ok(call(alice, "get", "/threads?limit=2"))
    assert [t["root"]["id"] for t in page["threads"]] == [busy, elsewhere] and page["has_more"] is True
    assert ok(call(alice, "get", "/threads?limit=4"))["has_more"] is False
    # Unread counts replies by others, not deleted, past the marker. carol's marker is her
    # reply b2 in busy (then alice's and b4), and 0 in her own elsewhere (then alice's e1).
    carols = {t["root"]["id"]: t["unread"] for t in ok(call(carol, "get", "/threads"))["threads"]}
    assert carols == {busy: 2, elsewhere: 1}
    with app.app_context():
        message_edit.do_delete_message(row(User, alice), mine)
    carols = {t["root"]["id"]: t["unread"] for t in ok(call(carol, "get", "/threads"))["threads"]}
    assert carols == {busy: 1, elsewhere: 1}
    # Bob's own replies never count: he wrote b4, the newest.
    assert {t["root"]["id"]: t["unread"] for t in ok(call(bob, "get", "/threads"))["threads"]} == {busy: 0, old: 0}
    # Unfollowed threads and threads of rooms I left are not listed.
    ok(call(alice, "delete", f"/threads/{old}/follow"))
    with app.app_context():
        memberships.do_leave_room(row(User, alice), other.id)
    assert [t["root"]["id"] for t in ok(call(alice, "get", "/threads"))["threads"]] == [busy, quiet]


def test_the_list_shows_a_deleted_root_as_its_tombstone(app, team, call):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    send_as(app, bob, room.id, "one", root)
    with app.app_context():
        message_edit.do_delete_message(row(User, alice), root)
    [thread] = ok(call(bob, "get", "/threads"))["threads"]
    assert thread["root"]["deleted"] is True and thread["root"]["thread"]["reply_count"] == 1


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"),
    ("limit=1.5", "limit"), ("limit=%C2%B2", "limit"), (f"limit={2**64}", "limit"),
    ("unread=yes", "unread"), ("unread=2", "unread"),
])
def test_the_list_refuses_bad_paging(app, team, call, query, field):
    assert error(call(team["alice"], "get", f"/threads?{query}"), 400, "invalid")["field"] == field


def test_the_list_costs_the_same_statements_for_two_threads_or_twelve(app, team, call):
    alice, bob, room = team["alice"], team["bob"], team["room"]

    def statements_of_the_list() -> int:
        with app.app_context():
            engine = db.engine
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        sa.event.listen(engine, "before_cursor_execute", listener)
        try:
            assert ok(call(alice, "get", "/threads"))["threads"]
        finally:
            sa.event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    for i in range(2):
        root = send_as(app, alice, room.id, f"root {i}")["id"]
        send_as(app, bob, room.id, f"@alice reply {i}", root)
    few = statements_of_the_list()
    for i in range(10):
        root = send_as(app, alice, room.id, f"more {i}")["id"]
        send_as(app, bob, room.id, f"@alice reply {i}", root)
    assert len(ok(call(alice, "get", "/threads"))["threads"]) == 12
    assert statements_of_the_list() == few


# --- Notifications of replies -------------------------------------------------------------

def test_followers_get_thread_reply_and_the_author_never(app, team, call, live):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    ok(call(carol, "put", f"/threads/{root}/follow"))
    sockets = {u.id: live(u) for u in (alice, bob, carol)}
    first = send_as(app, bob, room.id, "first", root)
    # Followers in the order they came: carol followed first, alice with the first reply.
    assert notified(app, first["id"]) == [(carol.id, "thread_reply"), (alice.id, "thread_reply")]
    for user_id, client in sockets.items():
        pushed = events_named(client, "notification")
        if user_id == bob.id:
            assert pushed == []
            continue
        [notification] = pushed
        assert notification["kind"] == "thread_reply" and notification["room_id"] == room.id
        assert notification["message"]["id"] == first["id"] and notification["message"]["thread_root_id"] == root
    second = send_as(app, alice, room.id, "second", root)["id"]
    assert sorted(notified(app, second)) == sorted([(bob.id, "thread_reply"), (carol.id, "thread_reply")])
    with app.app_context():
        assert db.session.get(Message, second).notified_at is not None
        assert db.session.get(Message, root).notified_at is None  # a root is no reply


def test_a_mentioned_follower_gets_one_mention_and_nothing_else(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    send_as(app, carol, room.id, "carol follows by replying", root)
    emitted.clear()
    answer = send_as(app, bob, room.id, "@alice @carol see", root)["id"]
    assert notified(app, answer) == [(alice.id, "mention"), (carol.id, "mention")]
    pushed = [(data["kind"], to) for event, data, to in emitted if event == "notification"]
    assert pushed == [("mention", f"user:{alice.id}"), ("mention", f"user:{carol.id}")]


def test_unfollowed_left_and_disabled_followers_get_nothing(app, team, call, make_user, make_room):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    erin, frank = make_user("erin"), make_user("frank")
    with app.app_context():
        for user in (erin, frank):
            memberships.do_invite_user(row(User, alice), room.id, user.username)
    root = send_as(app, alice, room.id, "root")["id"]
    for user in (bob, carol, erin, frank):
        ok(call(user, "put", f"/threads/{root}/follow"))
    ok(call(bob, "delete", f"/threads/{root}/follow"))
    with app.app_context():
        memberships.do_leave_room(row(User, carol), room.id)
        users.do_disable_user(row(User, erin))
    answer = send_as(app, frank, room.id, "anyone?", root)["id"]
    assert notified(app, answer) == [(alice.id, "thread_reply")]


def test_the_task_is_idempotent_and_tells_nobody_who_followed_later(app, team, call, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    answer = send_as(app, bob, room.id, "answer", root)["id"]
    assert notified(app, answer) == [(alice.id, "thread_reply")]
    ok(call(carol, "put", f"/threads/{root}/follow"))
    emitted.clear()
    assert tasks.notify_mentions(answer) == 0
    assert tasks.notify_mentions.apply(args=[answer]).get() == 0
    with app.app_context():
        assert notifications.do_create_message_notifications(answer) == 0
        assert notifications.do_create_mention_notifications(answer) == 0  # the earlier name
    assert notified(app, answer) == [(alice.id, "thread_reply")]
    assert [event for event, _, _ in emitted] == []


def test_an_edit_that_mentions_a_notified_follower_adds_nothing(app, team):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    answer = send_as(app, bob, room.id, "answer", root)["id"]
    with app.app_context():
        message_edit.do_edit_message(row(User, bob), answer, "answer @alice @carol")
    # alice (a follower) already had the reply: once per user and message; carol is new.
    assert notified(app, answer) == [(alice.id, "thread_reply"), (carol.id, "mention")]


def test_the_sweep_handles_a_reply_whose_task_was_lost(app, team, call, monkeypatch):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    ok(call(carol, "put", f"/threads/{root}/follow"))
    monkeypatch.setattr(events, "enqueue_on_commit", lambda task, *args: None)  # the task is lost
    answer = send_as(app, bob, room.id, "answer", root)["id"]
    mentioning = send_as(app, bob, room.id, "and @alice", root)["id"]
    assert notified(app, answer) == notified(app, mentioning) == []
    with app.app_context():
        # Too young: the task may still be on its way.
        assert notifications.do_sweep_due_messages(min_age=10) == 0
    age(app, answer, 30)
    age(app, mentioning, 30)
    with app.app_context():
        # The periodic task sweeps mentions first (that handles the mentioning reply whole),
        # then the replies left.
        assert tasks.sweep_mentions(min_age=10) == 2
        assert db.session.get(Message, answer).notified_at is not None
        assert notifications.do_sweep_due_messages(min_age=10) == 0
        assert tasks.sweep_mentions(min_age=10) == 0
    assert notified(app, answer) == [(carol.id, "thread_reply"), (alice.id, "thread_reply")]
    assert notified(app, mentioning) == [(alice.id, "mention"), (carol.id, "thread_reply")]


def test_the_sweep_leaves_old_replies_and_forgets_deleted_ones(app, team, monkeypatch):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    root = send_as(app, alice, room.id, "root")["id"]
    monkeypatch.setattr(events, "enqueue_on_commit", lambda task, *args: None)
    old = send_as(app, bob, room.id, "old", root)["id"]
    doomed = send_as(app, bob, room.id, "doomed", root)["id"]
    age(app, old, 2 * 86400)
    with app.app_context():
        message_edit.do_delete_message(row(User, bob), doomed)
    age(app, doomed, 30)
    with app.app_context():
        assert notifications.do_sweep_due_messages(min_age=10) == 1  # the deleted one
        assert db.session.get(Message, doomed).notified_at is not None
        assert db.session.get(Message, old).notified_at is None
        assert notifications.do_sweep_due_messages(min_age=10) == 0
    assert notified(app, old) == notified(app, doomed) == []
