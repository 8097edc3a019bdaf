"""Sending on PostgreSQL, where a message is stored by one statement: the room's seq, the
message, its mentions and the author's read marker; refusals store nothing and use no seq.

The unit tests cover the same action on SQLite, statement by statement.
"""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import event as sa_event

from app.actions import users
from app.extensions import db
from app.models import Membership, Mention, Message, Notification, Room, User
from tests.integration.cluster import pg_app
from tests.test_actions import count, refuse, row, send


@pytest.fixture
def app():
    """The app on a PostgreSQL database of its own (schema from the models)."""
    with pg_app("chorus_send") as app:
        with app.app_context():
            db.create_all()
        yield app


def seq_of(room) -> int:
    return db.session.get(Room, room.id).last_seq


def test_one_statement_stores_message_mentions_and_read_marker(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    emitted.clear()
    with app.app_context():
        assert db.engine.dialect.name == "postgresql"
        first = send(alice, room.id, "@carol and @bob, see **this**", "pg-1")
        second = send(alice, room.id, "and again")
        stored = db.session.get(Message, first.message.id)
        assert (stored.room_id, stored.author_id, stored.seq, stored.client_id) == (room.id, alice.id, 1, "pg-1")
        assert stored.html == first.message.html and "<strong>this</strong>" in stored.html
        assert stored.created_at == first.message.created_at
        # Mentions in the order written, each handled by the (eager) notification task.
        assert [m.user_id for m in stored.mentions] == [carol.id, bob.id]
        assert count(Notification, message_id=stored.id) == 2
        assert db.session.get(Message, second.message.id).seq == 2 and seq_of(room) == 2
        marker = db.session.execute(
            db.select(Membership.last_read_message_id).filter_by(room_id=room.id, user_id=alice.id)
        ).scalar_one()
        assert marker == second.message.id
    broadcasts = [data for event, data, _ in emitted if event == "message"]
    assert [b["id"] for b in broadcasts] == [first.message.id, second.message.id]
    assert broadcasts[0]["mentions"] == ["carol", "bob"] and broadcasts[0]["seq"] == 1
    assert broadcasts[0]["author"]["username"] == "alice" and broadcasts[0]["client_id"] == "pg-1"


def test_a_retry_returns_the_original_and_uses_no_seq(app, team, emitted):
    alice, room = team["alice"], team["room"]
    with app.app_context():
        first = send(alice, room.id, "@bob once", "pg-retry")
    emitted.clear()
    with app.app_context():
        again = send(alice, room.id, "@bob once", "pg-retry")
        assert not again.created and again.message.id == first.message.id and again.data["seq"] == 1
        assert count(Message) == 1 and count(Mention) == 1 and seq_of(room) == 1
        assert send(alice, room.id, "next").data["seq"] == 2
    assert [e for e, _, _ in emitted] == ["message"]  # only "next"


def test_refusals_store_nothing_and_use_no_seq(app, team, make_room, emitted):
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    secret = make_room(alice, "secret", is_private=True)
    emitted.clear()
    with app.app_context():
        refuse("not_member", send, dave, room.id, "let me in")
        refuse("not_found", send, bob, secret.id, "hi")
        refuse("not_found", send, bob, 10**6, "hi")
        assert send(alice, room.id, "x", "used-once").created
        refuse("conflict", send, alice, secret.id, "again", "used-once")
        users.do_disable_user(row(User, bob))
        refuse("unauthorized", send, bob, room.id, "still here?")
        assert count(Message) == 1 and seq_of(room) == 1 and seq_of(secret) == 0
    assert [e for e, _, _ in emitted] == ["message"]


def test_concurrent_sends_get_contiguous_seqs_in_id_order(app, team):
    """Twelve threads, each its own session and connection, all into one room at once."""
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    senders = [alice, bob, carol] * 4
    errors = []
    start = threading.Barrier(len(senders))

    def one(i, who):
        with app.app_context():
            try:
                start.wait()
                send(who, room.id, f"message {i}", f"c-{i}")
            except Exception as exc:  # reported below
                errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i, who)) for i, who in enumerate(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with app.app_context():
        rows = db.session.execute(db.select(Message.id, Message.seq).order_by(Message.id)).all()
        assert [seq for _, seq in rows] == list(range(1, len(senders) + 1))
        assert seq_of(room) == len(senders)


def test_a_socket_send_is_one_statement_committed_as_it_runs(app, team, live, bearer):
    """A socket send on PostgreSQL: one statement in autocommit mode, so the room lock is
    released inside PostgreSQL, not after a round trip to COMMIT. REST sends (whose request
    has already read the caller's token) store with the same statement in a transaction."""
    alice, bob, room = team["alice"], team["bob"], team["room"]
    a = live(alice)
    statements: list[tuple[str, bool]] = []

    def record(conn, cursor, statement, *args):
        statements.append((" ".join(statement.split())[:40], cursor.connection.autocommit))

    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        ack = a.emit("send", {"room_id": room.id, "body": "one round trip", "client_id": "one-1"}, callback=True)
        assert statements == [("WITH input AS ( SELECT * FROM unnest(CAS", True)]
        statements.clear()
        again = a.emit("send", {"room_id": room.id, "body": "one round trip", "client_id": "one-1"}, callback=True)
        refused = a.emit("send", {"room_id": room.id + 1, "body": "nowhere"}, callback=True)
        response = app.test_client().post(
            f"/api/v1/rooms/{room.id}/messages", json={"body": "by REST"}, headers=bearer(bob)
        )
        rest = [autocommit for statement, autocommit in statements if statement.startswith("WITH input")]
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
    assert ack["ok"] is True and ack["message"]["seq"] == 1
    assert again["ok"] is True and again["duplicate"] is True and again["message"]["id"] == ack["message"]["id"]
    assert refused["ok"] is False and refused["error"]["code"] == "not_found"
    assert response.status_code == 201 and response.get_json()["seq"] == 2
    assert rest == [True, True, False]  # the retry, the refused send, the REST send


# The group-commit contract, on PostgreSQL (the same tests run on SQLite in tests/).
from tests.test_group_commit import (  # noqa: E402,F401
    test_a_batch_gets_consecutive_seqs_ids_in_order_and_is_broadcast_in_order,
    test_a_send_the_room_refuses_takes_no_seq_and_the_rest_of_its_batch_is_stored,
    test_a_used_client_id_sends_its_batch_back_to_be_stored_one_by_one,
    test_sends_queued_behind_a_store_in_flight_are_stored_by_one_batch,
)
