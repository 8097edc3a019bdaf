"""Threads: replies and quote-replies, the root's summary as a change of the room's sequence,
the main timeline and a thread's pages, follows made by replying, and every refusal.

The action tests run on SQLite here and on PostgreSQL in tests/integration/test_threads_postgres.py
(the same tests, imported).
"""
from __future__ import annotations

from app.actions import messages
from app.extensions import db
from app.models import Message, Room, ThreadFollow, User
from app.queries import history
from app.queries.rooms import room_view
from tests.test_actions import refuse, row
from tests.test_api import api  # noqa: F401  (a fixture)
from tests.test_message_changes import changes, delete, edit, react, updates


def reply(user_ref, room_id, body, root_id=None, *, also_in_room=False, quote_of=None, client_id=None):
    return messages.do_send_message(row(User, user_ref), room_id, body, client_id, thread_root_id=root_id,
                                    also_in_room=also_in_room, quote_of=quote_of).data


def main_ids(user_ref, room, **paging):
    page, _ = history.get_messages(row(User, user_ref), room.id, limit=200, **paging)
    return [m["id"] for m in page]


def thread_ids(user_ref, room, root_id, **paging):
    page, _ = history.get_messages(row(User, user_ref), room.id, limit=200, thread=root_id, **paging)
    return [m["id"] for m in page]


def follows(root_id) -> dict[str, tuple[bool, int]]:
    return {f.user.username: (f.following, f.last_read_id)
            for f in db.session.execute(db.select(ThreadFollow).filter_by(root_id=root_id)).scalars()}


def test_a_reply_and_its_roots_summary_take_the_next_two_revs(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "question?")
        first = reply(bob, room.id, "answer one", root["id"])
        assert (first["thread_root_id"], first["also_in_room"], first["rev"], first["seq"]) == (root["id"], False, 2, 2)
        summary = updates(emitted)[-1]
        assert summary["id"] == root["id"] and summary["rev"] == 3
        assert summary["change"] == {"kind": "thread", "by": {"id": bob.id, "username": "bob", "display_name": "Bob"}}
        assert summary["thread"] == {"reply_count": 1, "last_reply_at": first["created_at"], "repliers": ["bob"]}
        reply(carol, room.id, "answer two", root["id"])
        third = reply(bob, room.id, "answer three", root["id"])
        stored = db.session.get(Message, root["id"])
        assert (stored.reply_count, stored.thread_repliers, stored.rev) == (3, ["bob", "carol"], 7)
        assert db.session.get(Room, room.id).last_rev == 7
        # Catching up brings back the replies and the summary alike, each at its latest rev.
        page, top = changes(alice, room)
        assert [(m["id"], m["rev"]) for m in page][-2:] == [(third["id"], 6), (root["id"], 7)] and top == 7
        assert page[-1]["thread"]["reply_count"] == 3


def test_replies_stay_out_of_the_main_timeline_unless_also_sent_to_the_room(app, team):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")
        hidden = reply(bob, room.id, "in the thread only", root["id"])
        shown = reply(bob, room.id, "in both", root["id"], also_in_room=True)
        after = reply(alice, room.id, "top level again")
        assert shown["also_in_room"] is True
        assert main_ids(alice, room) == [root["id"], shown["id"], after["id"]]
        assert main_ids(alice, room, after=0) == [root["id"], shown["id"], after["id"]]
        assert main_ids(alice, room, before=after["id"]) == [root["id"], shown["id"]]
        # The thread: its root first, then its replies oldest first, with the same paging.
        assert thread_ids(alice, room, root["id"]) == [root["id"], hidden["id"], shown["id"]]
        assert thread_ids(alice, room, root["id"], before=shown["id"]) == [root["id"], hidden["id"]]
        assert thread_ids(alice, room, root["id"], after=root["id"]) == [hidden["id"], shown["id"]]
        page, _, _ = history.get_changes(row(User, alice), room.id, 0, limit=200, thread=root["id"])
        assert {m["id"] for m in page} == {root["id"], hidden["id"], shown["id"]}
        # Unread counts follow the main timeline: a reply in the thread only does not count.
        assert room_view(row(Room, room), row(User, team["carol"]))["unread"] == 3


def test_a_reply_to_a_reply_attaches_to_the_root(app, team):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")
        first = reply(bob, room.id, "first", root["id"])
        nested = reply(alice, room.id, "nested?", first["id"])
        assert nested["thread_root_id"] == root["id"]
        assert db.session.get(Message, first["id"]).reply_count == 0
        assert db.session.get(Message, root["id"]).reply_count == 2
        # Reading the thread of a reply reads its root's thread.
        assert history.get_thread_root(row(User, alice), room.id, first["id"])["id"] == root["id"]


def test_replies_that_cannot_be_made_are_refused(app, team, make_room):
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    other = make_room(dave, "elsewhere", is_private=True)
    with app.app_context():
        root = reply(alice, room.id, "root")
        elsewhere = reply(dave, other.id, "private")
        head = db.session.get(Room, room.id).last_rev
        assert refuse("not_found", reply, bob, room.id, "x", elsewhere["id"]).field == "thread_root_id"
        assert refuse("not_found", reply, bob, room.id, "x", 10**9).field == "thread_root_id"
        assert refuse("not_found", reply, bob, room.id, "x", quote_of=elsewhere["id"]).field == "quote_of"
        assert refuse("invalid", reply, bob, room.id, "x", also_in_room=True).field == "also_in_room"
        # A non-member learns nothing about the room's messages, deleted or not.
        assert refuse("not_found", reply, bob, other.id, "x", elsewhere["id"]).code == "not_found"
        delete(alice, root["id"])
        assert refuse("gone", reply, bob, room.id, "x", root["id"]).field == "thread_root_id"
        assert refuse("gone", reply, bob, room.id, "x", quote_of=root["id"]).field == "quote_of"
        assert db.session.get(Room, room.id).last_rev == head + 1  # the delete only


def test_a_deleted_root_keeps_its_thread_and_a_deleted_reply_leaves_the_count(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")
        first = reply(bob, room.id, "first", root["id"])
        second = reply(carol, room.id, "second", root["id"])
        gone = delete(bob, first["id"])
        assert (gone["thread_root_id"], gone["deleted"]) == (root["id"], True)
        summary = updates(emitted)[-1]
        assert summary["id"] == root["id"] and summary["change"]["kind"] == "thread"
        assert summary["thread"] == {"reply_count": 1, "last_reply_at": second["created_at"], "repliers": ["carol"]}
        assert summary["rev"] == gone["rev"] + 1
        tombstone = delete(alice, root["id"])
        assert tombstone["thread"]["reply_count"] == 1
        # The thread still opens: the root's tombstone first, then the replies as they are.
        page, _ = history.get_messages(row(User, carol), room.id, thread=root["id"])
        assert [(m["id"], m.get("deleted", False)) for m in page] == [
            (root["id"], True), (first["id"], True), (second["id"], False)]
        assert page[0]["thread"]["reply_count"] == 1


def test_changes_to_a_reply_stay_in_its_thread(app, team, emitted):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")
        answer = reply(bob, room.id, "answr", root["id"])
        edited = edit(bob, answer["id"], "answer")
        reacted = react(alice, answer["id"], "👍")
        assert edited["thread_root_id"] == reacted["thread_root_id"] == root["id"]
        # An edit or a reaction changes the reply, not the root's summary.
        assert db.session.get(Message, root["id"]).rev == 3 and reacted["rev"] == 5


def test_a_quote_reply_carries_the_start_of_the_quoted_text(app, team):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        quoted = reply(alice, room.id, "x" * 300)
        answer = reply(bob, room.id, "agreed", quote_of=quoted["id"])
        alice_face = {"id": alice.id, "username": "alice", "display_name": "Alice"}
        assert answer["quote_of"] == quoted["id"] and answer["thread_root_id"] is None
        assert answer["quote"] == {"id": quoted["id"], "author": alice_face, "excerpt": "x" * 200, "deleted": False}
        page, _ = history.get_messages(row(User, bob), room.id)
        assert page[-1]["quote"] == answer["quote"]
        assert reply(bob, room.id, "again", client_id="q-1", quote_of=quoted["id"])["quote"] == answer["quote"]
        delete(alice, quoted["id"])
        page, _ = history.get_messages(row(User, bob), room.id)
        assert page[-2]["quote"] == {"id": quoted["id"], "author": alice_face, "deleted": True}


def test_replying_follows_the_thread_with_its_root_author_and_the_mentioned(app, team):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")
        assert follows(root["id"]) == {}
        first = reply(bob, room.id, "hey @carol", root["id"])
        assert follows(root["id"]) == {"alice": (True, 0), "bob": (True, first["id"]), "carol": (True, 0)}
        db.session.execute(db.update(ThreadFollow).filter_by(user_id=carol.id).values(following=False))
        db.session.commit()
        reply(bob, room.id, "again @carol", root["id"])
        assert follows(root["id"])["carol"] == (False, 0)  # an unfollow stays through mentions
        mine = reply(carol, room.id, "ok, ok", root["id"])
        assert follows(root["id"])["carol"] == (True, mine["id"])  # replying follows again


def test_a_reply_in_a_room_one_left_is_refused(app, team):
    from app.actions import memberships
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")
        memberships.do_leave_room(row(User, bob), room.id)
        refuse("not_member", reply, bob, room.id, "late", root["id"])
        assert db.session.get(Message, root["id"]).reply_count == 0


def test_a_thread_of_a_thousand_replies_pages_whole_and_counts_exactly(app, team):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "busy thread")["id"]
        sent = [reply([bob, carol][i % 2], room.id, f"reply {i}", root)["id"] for i in range(1000)]
        assert db.session.get(Message, root).reply_count == 1000
        seen, before, more = [], None, True
        while more:
            page, more = history.get_messages(row(User, alice), room.id, thread=root, before=before, limit=200)
            seen[:0] = [m["id"] for m in page]
            before = page[0]["id"]
        assert seen == [root, *sent]
        forward, after, more = [], 0, True
        while more:
            page, more = history.get_messages(row(User, alice), room.id, thread=root, after=after, limit=200)
            forward += [m["id"] for m in page]
            after = page[-1]["id"]
        assert forward == seen
        assert main_ids(alice, room) == [root]


def test_threads_over_rest_and_sockets(app, team, api, sock, make_room):
    from tests.conftest import events_named
    from tests.test_api import error_of
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    other = make_room(dave, "elsewhere")
    root = api(alice).post(f"/rooms/{room.id}/messages", json={"body": "root"}).get_json()
    made = api(bob).post(f"/rooms/{room.id}/messages",
                         json={"body": "over REST", "thread_root_id": root["id"], "also_in_room": True})
    assert made.status_code == 201 and made.get_json()["thread_root_id"] == root["id"]
    watcher = sock(alice)
    socket = sock(bob)
    ack = socket.emit("send", {"room_id": room.id, "body": "over the socket", "thread_root_id": root["id"]},
                      callback=True)
    assert ack["ok"] and ack["message"]["thread_root_id"] == root["id"] and not ack["message"]["also_in_room"]
    over_socket = ack["message"]["id"]
    updated = events_named(watcher, "message_updated")
    assert updated[-1]["id"] == root["id"] and updated[-1]["thread"]["reply_count"] == 2
    # Hostile or wrong fields: a clear refusal, nothing stored.
    for data, field in ((dict(thread_root_id="1"), "thread_root_id"), (dict(thread_root_id=True), "thread_root_id"),
                        (dict(also_in_room="yes", thread_root_id=root["id"]), "also_in_room"),
                        (dict(quote_of=-3), "quote_of"), (dict(also_in_room=True), "also_in_room")):
        ack = socket.emit("send", {"room_id": room.id, "body": "x", **data}, callback=True)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid" and ack["error"]["field"] == field, ack
        error = error_of(api(bob).post(f"/rooms/{room.id}/messages", json={"body": "x", **data}), 400)
        assert error["field"] == field
    # The thread's page, with its root; a reply's id reads its root's thread.
    page = api(alice).get(f"/rooms/{room.id}/messages?thread={made.get_json()['id']}").get_json()
    assert page["root"]["id"] == root["id"] and [m["body"] for m in page["messages"]] == [
        "root", "over REST", "over the socket"] and page["has_more"] is False
    # Where each reader stands: alice follows (her root got replies) and has read none of them;
    # bob follows and has read up to his own latest reply.
    assert page["follow"] == {"following": True, "last_read_id": 0, "unread": 2}
    bobs = api(bob).get(f"/rooms/{room.id}/messages?thread={root['id']}").get_json()["follow"]
    assert bobs == {"following": True, "last_read_id": over_socket, "unread": 0}
    since = api(alice).get(f"/rooms/{room.id}/messages?thread={root['id']}&since=0&limit=2").get_json()
    assert since["has_more"] is True and since["root"]["id"] == root["id"] and "head" in since
    main = api(alice).get(f"/rooms/{room.id}/messages").get_json()["messages"]
    assert [m["body"] for m in main] == ["root", "over REST"]
    assert error_of(api(alice).get(f"/rooms/{room.id}/messages?thread={root['id']}&around={root['id']}"), 400)
    assert error_of(api(alice).get(f"/rooms/{room.id}/messages?thread=abc"), 400)["field"] == "thread"
    elsewhere = api(dave).post(f"/rooms/{other.id}/messages", json={"body": "not yours"}).get_json()
    assert error_of(api(alice).get(f"/rooms/{room.id}/messages?thread={elsewhere['id']}"), 404)
    assert error_of(api(alice).get(f"/rooms/{other.id}/messages?thread={elsewhere['id']}"), 403)["code"]
    with app.app_context():
        assert db.session.get(Message, root["id"]).reply_count == 2
