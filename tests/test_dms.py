"""Direct conversations over REST and sockets: one room per set of people, the same rules as
any room for messages, closing and coming back, disabled people, and the `dm` notification
made by the one notification task (eager here: the embedded mode)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.actions import dms, users
from app.extensions import db
from app.models import Membership, Message, Room, User
from tests.conftest import events_named
from tests.test_actions import row
from tests.test_thread_follows import call, error, notified, ok  # noqa: F401  (call is a fixture)


def open_dm(call, user, *names, status=None):
    response = call(user, "post", "/dms", json={"usernames": list(names)})
    assert response.status_code in ((status,) if status else (200, 201)), response.get_data(as_text=True)
    return response.get_json()


def send(call, user, room_id, body, **extra):
    return ok(call(user, "post", f"/rooms/{room_id}/messages", json={"body": body, **extra}), 201)


def test_one_conversation_per_set_of_people_whoever_asks_and_in_any_order(team, call):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    first = open_dm(call, alice, "bob", "carol", status=201)
    assert first["kind"] == "dm" and first["is_private"] and first["name"] == ""
    assert [m["username"] for m in first["members"]] == ["alice", "bob", "carol"]
    assert first["title"] == "Bob, Carol" and first["member_count"] == 3
    assert open_dm(call, carol, "BOB", "alice", "carol", status=200)["id"] == first["id"]
    assert open_dm(call, bob, "carol", "alice", "carol", status=200)["id"] == first["id"]
    # Another set of people is another conversation.
    pair = open_dm(call, alice, "bob", status=201)
    assert pair["id"] != first["id"] and pair["title"] == "Bob"


@pytest.mark.parametrize("usernames, status, code", [
    ([], 400, "invalid"),
    (["alice"], 400, "invalid"),  # only oneself
    ("bob", 400, "invalid"),
    ([1], 400, "invalid"),
    (["nobody"], 404, "not_found"),
    (["bob", "a b"], 404, "not_found"),
    ([f"u{i}" for i in range(8)], 400, "invalid"),  # 9 people with the opener
])
def test_bad_people_lists_are_refused(team, call, usernames, status, code):
    error(call(team["alice"], "post", "/dms", json={"usernames": usernames}), status, code)


def test_eight_people_is_the_most(app, make_user, call):
    people = [make_user(f"p{i}") for i in range(8)]
    room = open_dm(call, people[0], *(p.username for p in people[1:]), status=201)
    assert room["member_count"] == 8


def test_a_dm_is_a_room_for_messages_edits_reactions_threads_and_catch_up(team, call):
    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    room = open_dm(call, alice, "bob")
    first = send(call, alice, room["id"], "hi bob")
    answer = send(call, bob, room["id"], "in a thread", thread_root_id=first["id"])
    ok(call(bob, "patch", f"/messages/{answer['id']}", json={"body": "in a thread, edited"}))
    ok(call(alice, "put", f"/messages/{first['id']}/reactions/👍"))
    changes = ok(call(bob, "get", f"/rooms/{room['id']}/messages?since=0"))
    assert {m["id"] for m in changes["messages"]} == {first["id"], answer["id"]}
    # Someone outside it cannot tell it exists, nor join it, nor be invited into it.
    error(call(dave, "get", f"/rooms/{room['id']}/messages"), 404, "not_found")
    error(call(dave, "post", f"/rooms/{room['id']}/members", json={}), 404, "not_found")
    error(call(alice, "post", f"/rooms/{room['id']}/members", json={"username": "dave"}), 403, "forbidden")
    # It is not in the room directory.
    assert room["id"] not in {r["id"] for r in ok(call(alice, "get", "/rooms"))["rooms"]}


def test_the_dm_list_is_newest_activity_first_and_counts_unread(team, call):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    with_bob = open_dm(call, alice, "bob")
    with_carol = open_dm(call, alice, "carol")
    send(call, bob, with_bob["id"], "one")
    send(call, bob, with_bob["id"], "two")
    assert [d["id"] for d in ok(call(alice, "get", "/dms"))["dms"]] == [with_bob["id"], with_carol["id"]]
    send(call, carol, with_carol["id"], "newer")
    listed = ok(call(alice, "get", "/dms"))["dms"]
    assert [d["id"] for d in listed] == [with_carol["id"], with_bob["id"]]
    assert [d["unread"] for d in listed] == [1, 2]
    assert listed[0]["last_message_at"] and listed[0]["title"] == "Carol"


def test_the_other_people_see_a_new_dm_once_it_has_a_message(team, call):
    alice, bob = team["alice"], team["bob"]
    room = open_dm(call, alice, "bob")
    assert ok(call(bob, "get", "/dms"))["dms"] == []
    assert [d["id"] for d in ok(call(alice, "get", "/dms"))["dms"]] == [room["id"]]
    send(call, alice, room["id"], "hello")
    assert [d["id"] for d in ok(call(bob, "get", "/dms"))["dms"]] == [room["id"]]


def test_closing_a_dm_hides_it_until_a_new_message_and_it_still_arrives_live(team, call, live):
    alice, bob = team["alice"], team["bob"]
    room = open_dm(call, alice, "bob")
    send(call, alice, room["id"], "hello")
    bob_socket = live(bob)
    assert call(bob, "delete", f"/rooms/{room['id']}/members/me").status_code == 204
    assert events_named(bob_socket, "room_membership")[-1] == {"action": "hidden", "room": {"id": room["id"]}}
    assert ok(call(bob, "get", "/dms"))["dms"] == []
    assert ok(call(bob, "get", f"/rooms/{room['id']}"))["hidden"] is True
    # Still a participant: the next message reaches the socket and brings the DM back.
    later = send(call, alice, room["id"], "are you there?")
    assert later["id"] in {m["id"] for m in events_named(bob_socket, "message")}
    assert [d["id"] for d in ok(call(bob, "get", "/dms"))["dms"]] == [room["id"]]
    # Opening it again from a profile card shows it at once, without a message.
    assert call(bob, "delete", f"/rooms/{room['id']}/members/me").status_code == 204
    assert open_dm(call, bob, "alice", status=200)["id"] == room["id"]
    assert [d["id"] for d in ok(call(bob, "get", "/dms"))["dms"]] == [room["id"]]


def test_opening_a_dm_subscribes_every_participant_socket(team, call, live):
    alice, bob = team["alice"], team["bob"]
    bob_socket = live(bob)
    room = open_dm(call, alice, "bob")
    joined = events_named(bob_socket, "room_membership")
    assert joined and joined[-1]["action"] == "joined" and joined[-1]["room"]["id"] == room["id"]
    assert joined[-1]["room"]["hidden"] is True  # nothing said yet
    message = send(call, alice, room["id"], "first words")
    assert message["id"] in {m["id"] for m in events_named(bob_socket, "message")}


def test_every_dm_message_notifies_each_other_person_once(app, team, call):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    room = open_dm(call, alice, "bob", "carol")
    plain = send(call, alice, room["id"], "hello both")
    assert sorted(notified(app, plain["id"])) == [(bob.id, "dm"), (carol.id, "dm")]
    # A mention inside a DM does not add a second notification, nor does @room.
    mention = send(call, bob, room["id"], "@alice and @carol, also @room")
    assert sorted(notified(app, mention["id"])) == [(alice.id, "dm"), (carol.id, "dm")]
    # A reply in a DM's thread: every other participant, once.
    answer = send(call, carol, room["id"], "threaded", thread_root_id=plain["id"])
    assert sorted(notified(app, answer["id"])) == [(alice.id, "dm"), (bob.id, "dm")]
    with app.app_context():
        assert db.session.get(Message, plain["id"]).notified_at is not None


def test_a_lost_dm_task_is_found_by_the_sweep(app, team, call, monkeypatch):
    from datetime import timedelta

    from app import tasks
    from app.actions import notifications

    alice, bob = team["alice"], team["bob"]
    room = open_dm(call, alice, "bob")
    monkeypatch.setattr(tasks.notify_mentions, "apply_async", lambda *a, **k: None)  # the task is lost
    lost = send(call, alice, room["id"], "did this reach you?")
    assert notified(app, lost["id"]) == []
    monkeypatch.undo()
    with app.app_context():
        message = db.session.get(Message, lost["id"])
        assert message.notify_due and message.notified_at is None
        message.created_at -= timedelta(seconds=60)
        db.session.commit()
        assert notifications.do_sweep_due_messages(min_age=10) == 1
        assert notifications.do_sweep_due_messages(min_age=10) == 0
    assert notified(app, lost["id"]) == [(bob.id, "dm")]


def test_disabled_people_keep_their_dms_readable_but_a_dm_of_only_disabled_others_takes_nothing(app, team, call):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    pair = open_dm(call, alice, "bob")
    group = open_dm(call, alice, "bob", "carol")
    send(call, alice, pair["id"], "before")
    with app.app_context():
        users.do_disable_user(row(User, bob))
    # Readable still, and findable again by opening it.
    assert [m["body"] for m in ok(call(alice, "get", f"/rooms/{pair['id']}/messages"))["messages"]] == ["before"]
    assert open_dm(call, alice, "bob", status=200)["id"] == pair["id"]
    # Nobody left to read it: refused before anything is stored, by REST and by socket.
    error(call(alice, "post", f"/rooms/{pair['id']}/messages", json={"body": "hello?"}), 403, "forbidden")
    # With someone still active, it works.
    assert send(call, alice, group["id"], "carol is here")["room_id"] == group["id"]
    # A new conversation with a disabled person is not started.
    error(call(carol, "post", "/dms", json={"usernames": ["bob"]}), 404, "not_found")
    with app.app_context():
        assert db.session.scalar(sa.select(Room.last_seq).where(Room.id == pair["id"])) == 1


def test_a_socket_send_to_a_dm_of_disabled_others_is_refused(app, team, call, live):
    alice, bob = team["alice"], team["bob"]
    pair = open_dm(call, alice, "bob")
    with app.app_context():
        users.do_disable_user(row(User, bob))
    ack = live(alice).emit("send", {"room_id": pair["id"], "body": "anyone?"}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"


def test_two_concurrent_first_requests_make_one_room(app, team):
    """The unique key decides: the loser of the race returns the winner's room."""
    alice, bob = team["alice"], team["bob"]
    with app.app_context():
        room, created = dms.do_open_dm(row(User, alice), ["bob"])
        assert created
        # A second request that looked before the first committed goes on to insert.
        original = dms.get_dm
        calls = []

        def blind_first_look(key):
            calls.append(key)
            return None if len(calls) == 1 else original(key)

        dms.get_dm = blind_first_look
        try:
            again, created = dms.do_open_dm(row(User, bob), ["alice"])
        finally:
            dms.get_dm = original
        assert (again.id, created) == (room.id, False)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Room).where(Room.kind == "dm")) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Membership)
                                 .where(Membership.room_id == room.id)) == 2
