"""Group commit: sends into one room that queue up behind a store in flight are stored together.

These run on SQLite here and on PostgreSQL in tests/integration/test_send_postgres.py, which
imports them: one contract, both databases.
"""
from __future__ import annotations

import threading

from werkzeug.local import Local, LocalProxy

from app.actions import messages
from app.extensions import db
from app.models import Membership, Mention, Message, Room, User
from app.models.base import utcnow
from tests.test_actions import count, row, send


def draft(user_ref, room_id, body, client_id=None, mentioned=()):
    """A send as do_send_message prepares it, before it is stored."""
    return messages._Draft(row(User, user_ref), room_id, body, f"<p>{body}</p>", client_id, utcnow(),
                           [row(User, u) for u in mentioned])


def marker(user_ref, room_id) -> int:
    return db.session.execute(
        db.select(Membership.last_read_message_id).filter_by(room_id=room_id, user_id=user_ref.id)
    ).scalar_one()


def test_a_batch_gets_consecutive_seqs_ids_in_order_and_is_broadcast_in_order(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        send(alice, room.id, "before the batch")
        emitted.clear()
        batch = [draft(alice, room.id, "one", "g-1", mentioned=[bob, carol]),
                 draft(bob, room.id, "two"),
                 draft(alice, room.id, "three", "g-3", mentioned=[carol])]
        messages._store_batch(batch)
        results = [d.result for d in batch]
        assert all(d.outcome == messages._STORED and d.error is None for d in batch)
        assert [r.data["seq"] for r in results] == [2, 3, 4]
        ids = [r.message.id for r in results]
        assert ids == sorted(ids) and len(set(ids)) == 3
        assert db.session.get(Room, room.id).last_seq == 4
        stored = {m.id: m for m in db.session.execute(db.select(Message).where(Message.id.in_(ids))).scalars()}
        assert [(stored[i].body, stored[i].seq, stored[i].client_id) for i in ids] == [
            ("one", 2, "g-1"), ("two", 3, None), ("three", 4, "g-3")]
        assert [m.user_id for m in stored[ids[0]].mentions] == [bob.id, carol.id]
        assert [m.user_id for m in stored[ids[2]].mentions] == [carol.id]
        assert count(Mention, message_id=ids[1]) == 0
        # Each author's read marker moves to their newest message of the batch.
        assert marker(alice, room.id) == ids[2] and marker(bob, room.id) == ids[1]
    broadcasts = [data for event, data, _ in emitted if event == "message"]
    assert [b["id"] for b in broadcasts] == ids
    assert broadcasts[0]["mentions"] == ["bob", "carol"] and broadcasts[1]["author"]["username"] == "bob"


def test_a_send_the_room_refuses_takes_no_seq_and_the_rest_of_its_batch_is_stored(app, team, emitted):
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    with app.app_context():
        batch = [draft(alice, room.id, "kept"), draft(dave, room.id, "not a member"), draft(bob, room.id, "kept too")]
        messages._store_batch(batch)
        assert [d.outcome for d in batch] == [messages._STORED, messages._REFUSED, messages._STORED]
        assert batch[1].result is None and batch[1].error is None
        assert [batch[0].result.data["seq"], batch[2].result.data["seq"]] == [1, 2]
        assert count(Message, author_id=dave.id) == 0 and db.session.get(Room, room.id).last_seq == 2
    assert [data["body"] for event, data, _ in emitted if event == "message"] == ["kept", "kept too"]


def test_a_used_client_id_sends_its_batch_back_to_be_stored_one_by_one(app, team, emitted):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        original = send(alice, room.id, "first try", "again-1")
        emitted.clear()
        batch = [draft(bob, room.id, "innocent bystander"), draft(alice, room.id, "first try", "again-1")]
        messages._store_batch(batch)
        assert [d.outcome for d in batch] == [messages._ALONE, messages._ALONE]
        assert count(Message) == 1 and db.session.get(Room, room.id).last_seq == 1
        assert emitted == []
        # What do_send_message then does for each: the retry gets the original, the other is stored.
        retried = send(alice, room.id, "first try", "again-1")
        assert not retried.created and retried.message.id == original.message.id
        stored = send(bob, room.id, "innocent bystander")
        assert stored.created and stored.data["seq"] == 2


def test_sends_queued_behind_a_store_in_flight_are_stored_by_one_batch(app, team, monkeypatch):
    """The first send stores alone at once; three arriving meanwhile wait and go together."""
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    batches: list[list[str]] = []
    release = threading.Event()
    original = messages._store_messages

    def store(room_id, batch):
        batches.append([d.body for d in batch])
        if len(batches) == 1:
            release.wait(10)  # the first store is in flight until the others are queued
        return original(room_id, batch)

    monkeypatch.setattr(messages, "_store_messages", store)
    results, errors = {}, []
    local = Local()  # what current_user is: a proxy that each thread (each socket event) sees as its own

    def one(who, body):
        with app.app_context():
            try:
                # As a socket event has it: the user kept from connect, nothing read yet.
                local.user = row(User, who)
                db.session.expunge(local.user)
                db.session.close()
                results[body] = messages.do_send_message(LocalProxy(local, "user"), room.id, body)
            except Exception as exc:  # reported below
                errors.append(repr(exc))

    first = threading.Thread(target=one, args=(alice, "first"))
    first.start()
    while not batches:
        threading.Event().wait(0.01)
    # The later sends mention someone: looking them up takes a pooled connection.
    others = [threading.Thread(target=one, args=(who, body)) for who, body in
              ((bob, "second @carol"), (carol, "third @alice"), (alice, "fourth @bob"))]
    for thread in others:
        thread.start()
    queue = messages._RoomQueue._rooms[room.id]
    for _ in range(500):
        if len(queue.waiting) == 3:
            break
        threading.Event().wait(0.01)
    with app.app_context():
        # Only the store in flight holds one: sends waiting for their batch gave theirs back.
        assert db.engine.pool.checkedout() <= 1
    release.set()
    for thread in [first, *others]:
        thread.join(20)
    assert errors == []
    assert batches[0] == ["first"] and len(batches) == 2
    assert sorted(batches[1]) == ["fourth @bob", "second @carol", "third @alice"]
    # Seqs follow the order the batch was formed in, and every send got its own message back.
    seqs = {body: r.data["seq"] for body, r in results.items()}
    assert seqs["first"] == 1 and sorted(seqs[b] for b in batches[1]) == [2, 3, 4]
    assert [seqs[b] for b in batches[1]] == [2, 3, 4]
    authors = {"first": "alice", "second @carol": "bob", "third @alice": "carol", "fourth @bob": "alice"}
    assert {body: r.data["author"]["username"] for body, r in results.items()} == authors
    with app.app_context():
        stored = db.session.execute(db.select(Message.body, User.username).join(User, User.id == Message.author_id))
        assert dict(stored.all()) == authors
    assert messages._RoomQueue._rooms == {}, "an idle room keeps no queue"


def test_a_failed_commit_fails_every_send_of_the_batch_and_broadcasts_nothing(app, team, emitted, monkeypatch):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        batch = [draft(alice, room.id, "lost one"), draft(bob, room.id, "lost two")]

        def fail():
            raise OSError("disk full")

        with monkeypatch.context() as patched:
            patched.setattr(db.session, "commit", fail)
            messages._store_batch(batch)
        assert all(d.result is None and isinstance(d.error, OSError) for d in batch)
        assert count(Message) == 0 and db.session.get(Room, room.id).last_seq == 0
    assert [event for event, _, _ in emitted if event == "message"] == []
