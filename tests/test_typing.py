"""Typing notices: relayed to the room's other sockets, never to the typist's, never stored,
membership answered by the socket's subscriptions, input checked, rate limited."""
from __future__ import annotations

import pytest
from sqlalchemy import event as sa_event

from app import create_app
from app.actions import memberships, rooms, users
from app.config import TestConfig
from app.extensions import db, socketio
from app.models import Message, User
from tests.conftest import events_named
from tests.factories import UserFactory


def typing_of(client) -> list[dict]:
    return events_named(client, "typing")


def who(user) -> dict:
    return {"id": user.id, "username": user.username, "display_name": user.username.title()}


def test_typing_reaches_the_other_members_and_none_of_the_typists_sockets(app, team, live):
    alice, bob, carol, dave, room = team["alice"], team["bob"], team["carol"], team["dave"], team["room"]
    a1, a2, b, c, d = live(alice), live(alice), live(bob), live(carol), live(dave)
    for client in (a1, a2, b, c, d):
        client.get_received()
    assert a1.emit("typing", {"room_id": room.id}, callback=True) == {"ok": True}
    notice = {"room_id": room.id, "thread_root_id": None, "user": who(alice), "stop": False}
    assert typing_of(b) == [notice] and typing_of(c) == [notice]
    assert a1.get_received() == [] and a2.get_received() == [] and d.get_received() == []


def test_typing_in_a_thread_and_stopping(app, team, live):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    a, b = live(alice), live(bob)
    b.get_received()
    ack = a.emit("typing", {"room_id": room.id, "thread_root_id": 12345, "stop": False}, callback=True)
    assert ack == {"ok": True}
    assert a.emit("typing", {"room_id": room.id, "thread_root_id": 12345, "stop": True}, callback=True)["ok"]
    assert typing_of(b) == [
        {"room_id": room.id, "thread_root_id": 12345, "user": who(alice), "stop": False},
        {"room_id": room.id, "thread_root_id": 12345, "user": who(alice), "stop": True},
    ]


def test_typing_is_not_stored(app, team, live):
    a = live(team["alice"])
    assert a.emit("typing", {"room_id": team["room"].id}, callback=True)["ok"]
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 0


def test_a_members_typing_runs_no_statement(app, team, live):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    a, b = live(alice), live(bob)
    b.get_received()
    statements = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert a.emit("typing", {"room_id": room.id}, callback=True)["ok"]
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
    assert statements == []
    assert len(typing_of(b)) == 3


BAD = [
    ((), "invalid"),
    ((None,), "invalid"),
    (("typing",), "invalid"),
    (([1],), "invalid"),
    (({},), "invalid"),
    (({"room_id": "{room}"},), "invalid"),
    (({"room_id": True},), "invalid"),
    (({"room_id": 1.0},), "invalid"),
    (({"room_id": 0},), "invalid"),
    (({"room_id": -5},), "invalid"),
    (({"room_id": 2**64},), "invalid"),
    (({"room_id": 10**99},), "invalid"),
    (({"room_id": [1]},), "invalid"),
    (({"room_id": {"$gt": 0}},), "invalid"),
    (({"room_id": "{room_id}", "thread_root_id": "7"},), "invalid"),
    (({"room_id": "{room_id}", "thread_root_id": 0},), "invalid"),
    (({"room_id": "{room_id}", "thread_root_id": False},), "invalid"),
    (({"room_id": "{room_id}", "thread_root_id": 2**63},), "invalid"),
    (({"room_id": "{room_id}", "stop": "yes"},), "invalid"),
    (({"room_id": "{room_id}", "stop": 1},), "invalid"),
    (({"room_id": "{room_id}", "stop": None},), "invalid"),
    (({"room_id": 2**31},), "not_found"),
    (({"room_id": 2**63 - 1},), "not_found"),
]


@pytest.mark.parametrize("args,code", BAD)
def test_bad_typing_is_refused_and_relays_nothing(app, team, live, args, code):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    a, b = live(alice), live(bob)
    b.get_received()

    def fill(value):
        if value == "{room_id}":
            return room.id
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    ack = a.emit("typing", *[fill(x) for x in args], callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == code, ack
    assert typing_of(b) == []


def test_typing_where_not_a_member(app, team, make_room, live):
    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    public = team["room"]
    secret = make_room(alice, "secret", members=[bob], is_private=True)
    d, b = live(dave), live(bob)
    b.get_received()
    ack = d.emit("typing", {"room_id": public.id}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "not_member"
    ack = d.emit("typing", {"room_id": secret.id}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    assert ack == d.emit("typing", {"room_id": 2**31 - 1}, callback=True)  # same as a room that is not there
    assert typing_of(b) == []


def test_after_leaving_a_room_typing_there_is_refused(app, team, live):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    a, b = live(alice), live(bob)
    with app.app_context():
        memberships.do_leave_room(db.session.get(User, bob.id), room.id)
    a.get_received()
    ack = b.emit("typing", {"room_id": room.id}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "not_member"
    assert typing_of(a) == []


def test_a_member_whose_socket_is_not_subscribed_yet_is_relayed(app, team, live):
    """The subscription may lag the membership (it follows the commit): the database decides."""
    alice, bob, room = team["alice"], team["bob"], team["room"]
    a, b = live(alice), live(bob)
    b.get_received()
    socketio.server.leave_room(_sid(a), f"room:{room.id}", namespace="/")
    assert a.emit("typing", {"room_id": room.id}, callback=True) == {"ok": True}
    assert len(typing_of(b)) == 1


def _sid(client) -> str:
    return socketio.server.manager.sid_from_eio_sid(client.eio_sid, "/")


@pytest.fixture
def limited(tmp_path):
    config = type("Limited", (TestConfig,), {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/l.db",
        "RATELIMIT_ENABLED": True,
        "SOCKET_EVENT_LIMITS": {**TestConfig.SOCKET_EVENT_LIMITS, "typing": "3 per minute"},
    })
    app = create_app(config)
    with app.app_context():
        db.create_all()
        alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
        room = rooms.do_create_room(alice, "general")
        memberships.do_invite_user(alice, room.id, "bob")
        tokens = users.do_create_api_token(alice), users.do_create_api_token(bob)
        room_id = room.id
    yield app, tokens, room_id
    with app.app_context():
        db.engine.dispose()


def test_typing_is_rate_limited_per_user(limited):
    app, (alice_token, bob_token), room_id = limited
    a1 = socketio.test_client(app, auth={"token": alice_token})
    a2 = socketio.test_client(app, auth={"token": alice_token})
    b = socketio.test_client(app, auth={"token": bob_token})
    b.get_received()
    acks = [a.emit("typing", {"room_id": room_id}, callback=True) for a in (a1, a2, a1, a2)]
    assert [ack["ok"] for ack in acks] == [True, True, True, False]
    assert acks[3]["error"]["code"] == "rate_limited" and acks[3]["error"]["retry_after"] >= 1
    assert len(typing_of(b)) == 3
    for client in (a1, a2, b):
        client.disconnect()
