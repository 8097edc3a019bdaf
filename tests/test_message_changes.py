"""Edits, deletes and reactions: one change sequence per room (rev), the rows each change
writes, what it broadcasts and to whom, and every refusal.

The action tests run on SQLite here and on PostgreSQL in
tests/integration/test_changes_postgres.py (the same tests, imported): one contract for the
one implementation that stores a change under the room's lock (app.actions.timeline).
"""
from __future__ import annotations

import pytest

from app.actions import message_edit, reactions
from app.extensions import db
from app.models import Mention, Message, MessageEdit, Notification, Reaction, Room, User
from app.queries import history
from app.queries import messages as message_queries
from tests.test_actions import count, refuse, row, send


def edit(user_ref, message_id, body):
    return message_edit.do_edit_message(row(User, user_ref), message_id, body)


def delete(user_ref, message_id):
    return message_edit.do_delete_message(row(User, user_ref), message_id)


def react(user_ref, message_id, emoji, on=True):
    return reactions.do_react(row(User, user_ref), message_id, emoji, on)


def head(room) -> int:
    return db.session.get(Room, room.id).last_rev


def changes(user_ref, room, since=0):
    page, has_more, top = history.get_changes(row(User, user_ref), room.id, since, limit=200)
    assert not has_more
    return page, top


def updates(emitted) -> list[dict]:
    return [data for event, data, _ in emitted if event == "message_updated"]


def test_every_change_takes_the_rooms_next_rev(app, team, emitted):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        first = send(alice, room.id, "hello").data
        second = send(bob, room.id, "hi").data
        assert (first["seq"], first["rev"], second["seq"], second["rev"]) == (1, 1, 2, 2)
        edited = edit(alice, first["id"], "hello there")
        reacted = react(bob, first["id"], "👍")
        gone = delete(bob, second["id"])
        third = send(alice, room.id, "more").data
        # seq counts messages; rev counts every change, one each, no holes.
        assert (edited["rev"], reacted["rev"], gone["rev"]) == (3, 4, 5)
        assert (third["seq"], third["rev"]) == (3, 6) and head(room) == 6
        stored = db.session.get(Message, first["id"])
        assert (stored.seq, stored.rev) == (1, 4)
    broadcast = updates(emitted)
    assert [u["rev"] for u in broadcast] == [3, 4, 5]
    assert [u["change"]["kind"] for u in broadcast] == ["edit", "reaction", "delete"]
    assert all(to == f"room:{room.id}" for event, _, to in emitted if event == "message_updated")


def test_edit_keeps_history_and_rerenders(app, team, emitted):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "first *draft*").data
        edited = edit(alice, sent["id"], "second **take**")
        assert edited["body"] == "second **take**" and "<strong>take</strong>" in edited["html"]
        assert edited["edited_at"] is not None and edited["seq"] == sent["seq"]
        edit(alice, sent["id"], "third")
        versions = message_queries.get_message_history(row(User, bob), sent["id"])["versions"]
        assert [v["body"] for v in versions] == ["first *draft*", "second **take**", "third"]
        assert "<em>draft</em>" in versions[0]["html"]
        assert versions[0]["at"] == sent["created_at"] and versions[2]["at"] == db.session.get(
            Message, sent["id"]).edited_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert {v["by"]["username"] for v in versions} == {"alice"}
        assert count(MessageEdit, message_id=sent["id"]) == 2
    update = updates(emitted)[0]
    assert update["change"] == {"kind": "edit", "by": {"id": alice.id, "username": "alice", "display_name": "Alice"}}
    assert update["body"] == "second **take**" and "me" not in str(update["reactions"])


def test_editing_to_the_same_text_changes_nothing(app, team, emitted):
    alice, room = team["alice"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "same").data
        emitted.clear()
        again = edit(alice, sent["id"], "same")
        assert again["rev"] == sent["rev"] and again["edited_at"] is None and head(room) == 1
        assert count(MessageEdit) == 0
    assert emitted == []


def test_a_mention_added_by_an_edit_notifies_once_ever(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "hello @bob").data
        assert count(Notification, user_id=bob.id) == 1
        edited = edit(alice, sent["id"], "hello @carol")  # bob out, carol in
        assert edited["mentions"] == ["carol"]
        assert count(Notification, user_id=carol.id) == 1
        assert count(Notification, user_id=bob.id) == 1  # not un-notified
        edit(alice, sent["id"], "hello @bob and @carol")  # bob back: no second notification
        assert count(Notification, user_id=bob.id) == 1 and count(Notification, user_id=carol.id) == 1
        assert [m.user_id for m in db.session.get(Message, sent["id"]).mentions] == [carol.id, bob.id]
        # The notification shows the message as it is now.
        notification = db.session.execute(db.select(Notification).filter_by(user_id=bob.id)).scalar_one()
        from app.lib import serializers
        assert serializers.notification_dict(notification)["message"]["body"] == "hello @bob and @carol"


def test_edit_refusals(app, team, make_user):
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "mine").data
        refuse("forbidden", edit, bob, sent["id"], "not yours")
        refuse("not_member", edit, dave, sent["id"], "not your room")
        refuse("invalid", edit, alice, sent["id"], "   ")
        refuse("too_large", edit, alice, sent["id"], "x" * 4001)
        refuse("not_found", edit, alice, 10**9, "nothing")
        refuse("not_found", edit, alice, 0, "nothing")
        assert db.session.get(Message, sent["id"]).body == "mine" and head(room) == 1


def test_edit_in_a_private_room_one_cannot_see_is_not_found(app, team, make_room):
    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    with app.app_context():
        secret = make_room(alice, "secret", is_private=True)
        sent = send(alice, secret.id, "hush").data
        refuse("not_found", edit, dave, sent["id"], "peek")
        refuse("not_found", react, dave, sent["id"], "👍")
        refuse("not_found", delete, dave, sent["id"])
        refuse("not_found", message_queries.get_message_history, row(User, dave), sent["id"])
        refuse("not_found", message_queries.get_message, row(User, bob), sent["id"])


def test_an_author_who_left_cannot_edit(app, team):
    from app.actions import memberships

    bob, room = team["bob"], team["room"]
    with app.app_context():
        sent = send(bob, room.id, "bye").data
        memberships.do_leave_room(row(User, bob), room.id)
        refuse("not_member", edit, bob, sent["id"], "changed my mind")
        refuse("not_member", delete, bob, sent["id"])


def test_edit_window_limits_authors_not_moderators(app, team):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    app.config["MESSAGE_EDIT_WINDOW_SECONDS"] = 60
    with app.app_context():
        sent = send(bob, room.id, "old").data
        stored = db.session.get(Message, sent["id"])
        from datetime import timedelta
        stored.created_at = stored.created_at - timedelta(seconds=61)
        db.session.commit()
        refuse("forbidden", edit, bob, sent["id"], "too late")
        refuse("forbidden", delete, bob, sent["id"])
        assert delete(alice, sent["id"])["deleted"] is True  # alice owns the room


def test_delete_leaves_a_tombstone(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        sent = send(bob, room.id, "secret plans @carol", "c-1").data
        edit(bob, sent["id"], "secret plans v2 @carol")
        react(alice, sent["id"], "👀")
        tombstone = delete(bob, sent["id"])
        assert tombstone == {
            "id": sent["id"], "room_id": room.id, "seq": 1, "rev": 4, "deleted": True,
            "author": {"id": bob.id, "username": "bob", "display_name": "Bob"},
            "created_at": sent["created_at"], "deleted_at": tombstone["deleted_at"],
            "thread_root_id": None, "also_in_room": False, "thread": None,
        }
        stored = db.session.get(Message, sent["id"])
        assert stored.body == "" and stored.html == "" and stored.deleted_by_id == bob.id
        assert count(MessageEdit) == 0 and count(Reaction) == 0 and count(Mention) == 0
        # The notification stays, without the text.
        notification = db.session.execute(db.select(Notification).filter_by(user_id=carol.id)).scalar_one()
        from app.lib import serializers
        shown = serializers.notification_dict(notification)["message"]
        assert shown["deleted"] is True and "body" not in shown
        # In history and in catch-up as a tombstone.
        page, _ = history.get_messages(row(User, carol), room.id)
        assert page == [tombstone]
        assert changes(carol, room, 3)[0] == [tombstone]
        # Deleting again answers the tombstone and changes nothing.
        emitted.clear()
        assert delete(bob, sent["id"]) == tombstone and head(room) == 4
        assert emitted == []
        refuse("gone", edit, bob, sent["id"], "back")
        refuse("gone", react, alice, sent["id"], "👍")
        refuse("gone", message_queries.get_message_history, row(User, alice), sent["id"])
        # A retried send with the same client_id finds the tombstone, not a new message.
        retry = send(bob, room.id, "secret plans @carol", "c-1")
        assert not retry.created and retry.data["deleted"] is True


def test_who_may_delete(app, team, make_user, make_room):
    alice, bob, carol, dave = team["alice"], team["bob"], team["carol"], team["dave"]
    with app.app_context():
        admin = make_user("root", is_admin=True)
        room = team["room"]
        by_bob = send(bob, room.id, "one").data
        refuse("forbidden", delete, carol, by_bob["id"])  # another member
        assert delete(alice, by_bob["id"])["deleted"]  # the owner
        other = make_room(bob, "bobs", members=[alice], is_private=True)
        in_bobs = send(bob, other.id, "two").data
        by_alice = send(alice, other.id, "three").data
        refuse("forbidden", delete, alice, in_bobs["id"])  # alice owns general, not bobs
        assert delete(admin, in_bobs["id"])["deleted"]  # an admin, not even a member
        # Moderators may delete, never edit; an admin who is no member cannot even see it to edit.
        refuse("not_found", edit, admin, by_alice["id"], "nope")
        refuse("forbidden", edit, bob, by_alice["id"], "owner cannot edit either")
        refuse("not_found", delete, dave, by_alice["id"])


def test_reactions_are_idempotent_and_counted(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "vote").data
        mine = react(bob, sent["id"], ":thumbsup:")
        assert mine["reactions"] == [{"emoji": "👍", "count": 1, "users": ["bob"], "me": True}]
        assert react(bob, sent["id"], "👍")["rev"] == mine["rev"]  # twice: no change
        theirs = react(carol, sent["id"], "👍")
        react(carol, sent["id"], "❤")  # stored fully qualified
        assert react(alice, sent["id"], "❤️")["reactions"] == [
            {"emoji": "👍", "count": 2, "users": ["bob", "carol"], "me": False},
            {"emoji": "❤️", "count": 2, "users": ["carol", "alice"], "me": True},
        ]
        assert theirs["rev"] == mine["rev"] + 1
        off = react(bob, sent["id"], "👍", on=False)
        assert off["reactions"][0] == {"emoji": "👍", "count": 1, "users": ["carol"], "me": False}
        assert react(bob, sent["id"], "👍", on=False)["rev"] == off["rev"]  # twice: no change
        assert count(Reaction, message_id=sent["id"]) == 3
        assert head(room) == off["rev"]
    reaction_updates = updates(emitted)
    assert [u["change"]["on"] for u in reaction_updates] == [True, True, True, True, False]
    assert reaction_updates[0]["change"]["emoji"] == "👍"
    assert reaction_updates[0]["change"]["by"]["username"] == "bob"
    # One payload serves the whole room: no `me` in broadcasts.
    assert all("me" not in r for u in reaction_updates for r in u["reactions"])


@pytest.mark.parametrize("bad", ["a", "👍👍", ":nope:", "", "<b>", "👍 ", "1"])
def test_reactions_must_be_one_emoji(app, team, bad):
    alice, room = team["alice"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "hi").data
        if bad == "👍 ":  # surrounding space is trimmed, not refused
            assert react(alice, sent["id"], bad)["reactions"][0]["emoji"] == "👍"
            return
        error = refuse("invalid", react, alice, sent["id"], bad)
        assert error.field == "emoji"
        assert head(room) == 1


def test_distinct_reactions_are_capped(app, team):
    import emoji as emoji_data

    alice, bob, room = team["alice"], team["bob"], team["room"]
    app.config["MAX_REACTIONS_PER_MESSAGE"] = 5
    faces = [e for e, d in emoji_data.EMOJI_DATA.items() if d["status"] == 2 and len(e) == 1][:7]
    with app.app_context():
        sent = send(alice, room.id, "react away").data
        for face in faces[:5]:
            react(bob, sent["id"], face)
        refuse("too_many", react, alice, sent["id"], faces[5])
        # An emoji already there may still be added by others.
        assert react(alice, sent["id"], faces[0])["reactions"][0]["count"] == 2
        assert count(Reaction, message_id=sent["id"]) == 6


def _concurrently_first(app, monkeypatch, change):
    """Make `change` commit from another session right before this one takes the room's lock
    (after it read the message), once: a concurrent change that got there first."""
    import threading

    from app.actions import timeline

    original, done = timeline.take_rev, []

    def take_rev(room_id):
        if not done:
            done.append(True)

            def other():
                with app.app_context():
                    change()

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(10)
        return original(room_id)

    monkeypatch.setattr(timeline, "take_rev", take_rev)
    return done


def test_a_change_that_lost_a_race_reads_again_and_leaves_no_hole(app, team, monkeypatch):
    """The same reaction made concurrently: the loser finds the message changed under the
    lock, gives its number back, reads again and sees there is nothing left to do."""
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "x").data
    raced = _concurrently_first(app, monkeypatch, lambda: react(bob, sent["id"], "👍"))
    with app.app_context():
        mine = react(bob, sent["id"], "👍")
        assert raced and mine["rev"] == 2 and mine["reactions"] == [
            {"emoji": "👍", "count": 1, "users": ["bob"], "me": True}]
        assert head(room) == 2 and count(Reaction) == 1
        assert send(alice, room.id, "next").data["rev"] == 3


def test_an_edit_that_lost_a_race_keeps_both_texts(app, team, monkeypatch, emitted):
    alice, room = team["alice"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "v0").data
    _concurrently_first(app, monkeypatch, lambda: edit(alice, sent["id"], "v1 from the other tab"))
    with app.app_context():
        mine = edit(alice, sent["id"], "v2")
        assert mine["body"] == "v2" and mine["rev"] == 3 and head(room) == 3
        stored = db.session.get(Message, sent["id"])
        assert [e.previous_body for e in stored.edits] == ["v0", "v1 from the other tab"]
    assert [u["rev"] for u in updates(emitted)] == [2, 3]


def test_a_change_racing_a_delete_is_gone(app, team, monkeypatch):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "short-lived").data
    _concurrently_first(app, monkeypatch, lambda: delete(alice, sent["id"]))
    with app.app_context():
        refuse("gone", react, bob, sent["id"], "👍")
        assert head(room) == 2 and count(Reaction) == 0


def test_a_change_holds_the_room_lock_for_its_own_writes_only(app, team):
    """Between taking the room's number and committing, a change runs only the statements
    that write it: nothing is read while every change of the room waits."""
    from sqlalchemy import event as sa_event

    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "hello @bob").data
        react(carol, sent["id"], "👀")
        edit(alice, sent["id"], "hello @bob")  # warm-up: nothing to change
        statements = []

        def record(conn, cursor, statement, parameters, context, executemany):
            words = statement.split()
            verb = words[0].upper()
            # "UPDATE t", "INSERT INTO t", "DELETE FROM t"; a read is a read, whatever it reads.
            statements.append(f"{verb} {words[1] if verb == 'UPDATE' else words[2]}" if verb != "SELECT" else verb)

        def committed(conn):
            statements.append("COMMIT")

        def under_lock():
            first = statements.index("UPDATE rooms")
            return statements[first:statements.index("COMMIT", first)]

        sa_event.listen(db.engine, "before_cursor_execute", record)
        sa_event.listen(db.engine, "commit", committed)
        try:
            react(bob, sent["id"], "👍")
            assert under_lock() == ["UPDATE rooms", "UPDATE messages", "INSERT reactions"], statements
            statements.clear()
            edit(alice, sent["id"], "hello @carol")
            assert under_lock() == ["UPDATE rooms", "UPDATE messages", "INSERT message_edits", "DELETE mentions",
                                    "INSERT mentions"], statements
            statements.clear()
            delete(alice, sent["id"])
            assert under_lock() == ["UPDATE rooms", "UPDATE messages", "DELETE mentions", "DELETE reactions",
                                    "DELETE message_edits"], statements
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", record)
            sa_event.remove(db.engine, "commit", committed)


def test_since_returns_every_change_in_rev_order(app, team):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        ids = [send(alice, room.id, f"m{i}").data["id"] for i in range(4)]  # revs 1-4
        edit(alice, ids[0], "m0 edited")  # 5
        react(bob, ids[2], "🎉")  # 6
        delete(alice, ids[1])  # 7
        page, top = changes(carol, room, 0)
        assert [(m["id"], m["rev"]) for m in page] == [(ids[3], 4), (ids[0], 5), (ids[2], 6), (ids[1], 7)]
        assert top == 7
        page, top = changes(carol, room, 5)
        assert [m["id"] for m in page] == [ids[2], ids[1]] and page[0]["reactions"][0]["me"] is False
        assert changes(carol, room, 7) == ([], 7)
        # Paging: the last rev of a page is the next cursor.
        first, more, top = history.get_changes(row(User, carol), room.id, 0, limit=2)
        assert more and [m["rev"] for m in first] == [4, 5] and top == 7
        rest, more, _ = history.get_changes(row(User, carol), room.id, first[-1]["rev"], limit=2)
        assert not more and [m["rev"] for m in rest] == [6, 7]


def test_since_and_after_zero_over_http(app, team, bearer):
    alice, dave, room = team["alice"], team["dave"], team["room"]
    with app.app_context():
        ids = [send(alice, room.id, f"m{i}").data["id"] for i in range(3)]
        edit(alice, ids[0], "changed")
    client = app.test_client()
    headers = bearer(alice)
    base = f"/api/v1/rooms/{room.id}/messages"
    body = client.get(base + "?after=0", headers=headers).get_json()
    assert [m["id"] for m in body["messages"]] == ids and body["has_more"] is False
    body = client.get(base + "?since=0", headers=headers).get_json()
    assert [m["rev"] for m in body["messages"]] == [2, 3, 4] and body["head"] == 4
    body = client.get(base + "?since=2&limit=1", headers=headers).get_json()
    assert [m["rev"] for m in body["messages"]] == [3] and body["has_more"] is True and body["head"] == 4
    for query in ("?since=-1", "?since=x", "?since=1&after=2", "?since=1&before=2", "?around=1&since=1",
                  "?after=-1", "?since=1&limit=0"):
        response = client.get(base + query, headers=headers)
        assert response.status_code == 400, query
        assert response.get_json()["error"]["code"] == "invalid"
    # Access answers first, as on every door.
    assert client.get(base + "?since=0", headers=bearer(dave)).status_code == 403
    heads = client.get("/api/v1/rooms/heads", headers=headers).get_json()["heads"]
    assert heads == {str(room.id): 4}


def test_rest_edit_delete_react_and_history(app, team, bearer):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        sent = send(bob, room.id, "typo teh").data
    client = app.test_client()
    as_bob, as_alice = bearer(bob), bearer(alice)
    url = f"/api/v1/messages/{sent['id']}"
    response = client.patch(url, json={"body": "typo the"}, headers=as_bob)
    assert response.status_code == 200 and response.get_json()["body"] == "typo the"
    assert client.patch(url, json={"body": "mine now"}, headers=as_alice).status_code == 403
    assert client.patch(url, json={"body": ""}, headers=as_bob).get_json()["error"]["code"] == "invalid"
    assert client.patch(url, json={}, headers=as_bob).status_code == 400
    assert client.patch(url, data="x", headers=as_bob).status_code == 400
    response = client.put(url + "/reactions/%F0%9F%91%8D", headers=as_alice)
    assert response.status_code == 200
    assert response.get_json()["reactions"] == [{"emoji": "👍", "count": 1, "users": ["alice"], "me": True}]
    assert client.put(url + "/reactions/:tada:", headers=as_bob).get_json()["reactions"][1]["emoji"] == "🎉"
    bad = client.put(url + "/reactions/nope", headers=as_bob)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "emoji"
    response = client.delete(url + "/reactions/%F0%9F%91%8D", headers=as_alice)
    assert [r["emoji"] for r in response.get_json()["reactions"]] == ["🎉"]
    versions = client.get(url + "/history", headers=as_alice).get_json()["versions"]
    assert [v["body"] for v in versions] == ["typo teh", "typo the"]
    assert client.get(url, headers=as_alice).get_json()["reactions"][0]["me"] is False
    assert client.get(url, headers=as_bob).get_json()["reactions"][0]["me"] is True
    response = client.delete(url, headers=as_bob)
    assert response.status_code == 200 and response.get_json()["deleted"] is True
    assert client.delete(url, headers=as_bob).status_code == 200
    gone = client.patch(url, json={"body": "back"}, headers=as_bob)
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "gone"
    assert client.put(url + "/reactions/:tada:", headers=as_bob).status_code == 410
    assert client.get(url + "/history", headers=as_bob).status_code == 410
    assert client.get("/api/v1/messages/999999", headers=as_bob).status_code == 404


def test_emoji_list_feeds_the_picker(app, team, bearer):
    response = app.test_client().get("/api/v1/emoji", headers=bearer(team["alice"]))
    thumbs = next(e for e in response.get_json()["emoji"] if e["emoji"] == "👍")
    assert thumbs == {"emoji": "👍", "name": "thumbs up", "aliases": [":thumbsup:", ":+1:"]}
    assert len(response.get_json()["emoji"]) > 1000
    # Every name and alias is one the server takes back.
    from app.lib.emoji import check_emoji
    for entry in response.get_json()["emoji"][:300]:
        for name in [f":{entry['name'].replace(' ', '_')}:", *entry["aliases"]]:
            assert check_emoji(name) == entry["emoji"], name
    # The same for everyone until an upgrade: cached a day, unlike every other API reply.
    assert response.headers["Cache-Control"] == "private, max-age=86400"


def test_socket_edit_delete_react(app, team, sock):
    from tests.conftest import events_named

    alice, bob, room = team["alice"], team["bob"], team["room"]
    a, b = sock(alice), sock(bob)
    sent = a.emit("send", {"room_id": room.id, "body": "hello", "client_id": "s-1"}, callback=True)["message"]
    events_named(a, "message"), events_named(b, "message")
    ack = a.emit("edit", {"message_id": sent["id"], "body": "hello all"}, callback=True)
    assert ack["ok"] and ack["message"]["body"] == "hello all" and ack["message"]["rev"] == 2
    ack = b.emit("react", {"message_id": sent["id"], "emoji": "👋", "on": True}, callback=True)
    assert ack["ok"] and ack["message"]["reactions"][0]["me"] is True
    ack = b.emit("edit", {"message_id": sent["id"], "body": "hijack"}, callback=True)
    assert ack == {"ok": False, "error": {"code": "forbidden", "message": "Only its author can edit a message."}}
    for payload, code in (({"message_id": "1", "body": "x"}, "invalid"), ({"message_id": sent["id"]}, "invalid"),
                          ({"message_id": sent["id"], "emoji": "x", "on": True}, "invalid"),
                          ({"message_id": sent["id"], "emoji": "👍", "on": "yes"}, "invalid")):
        event = "react" if "emoji" in payload else "edit"
        ack = b.emit(event, payload, callback=True)
        assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload)
    assert b.emit("delete", ["not", "a", "dict"], callback=True)["error"]["code"] == "invalid"
    ack = a.emit("delete", {"message_id": sent["id"]}, callback=True)
    assert ack["ok"] and ack["message"]["deleted"] is True and ack["message"]["rev"] == 4
    seen = events_named(b, "message_updated")
    assert [(u["rev"], u["change"]["kind"]) for u in seen] == [(2, "edit"), (3, "reaction"), (4, "delete")]
    assert "body" not in seen[-1]
    assert b.emit("react", {"message_id": sent["id"], "emoji": "👍"}, callback=True)["error"]["code"] == "gone"


def test_concurrent_edits_lose_nothing(app, team):
    """Two edits that both passed their checks: both land in history, the later one wins."""
    alice, room = team["alice"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "v0").data
        edit(alice, sent["id"], "v1")
        edit(alice, sent["id"], "v2")
        stored = db.session.get(Message, sent["id"])
        assert stored.body == "v2" and [e.previous_body for e in stored.edits] == ["v0", "v1"]


def test_a_deleted_messages_notification_shows_no_text(app, team, login, bearer):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        sent = send(alice, room.id, "the launch code is 1234 @bob").data
        delete(alice, sent["id"])
    page = login(bob).get("/notifications").get_data(as_text=True)
    assert "This message was deleted" in page and "launch code" not in page
    listed = app.test_client().get("/api/v1/notifications", headers=bearer(bob)).get_json()
    assert listed["notifications"][0]["message"]["deleted"] is True
    assert "launch code" not in str(listed)
