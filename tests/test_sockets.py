"""Socket.IO handlers: authentication at connect, channel subscriptions, acks and error mapping."""
from __future__ import annotations

import pytest
from sqlalchemy import event as sa_event

from app import create_app
from app.actions import memberships, messages, rooms, users
from app.config import TestConfig
from app.extensions import db, socketio
from app.models import Membership, Message, User
from tests.conftest import events_named
from tests.factories import UserFactory


def row(model, ref):
    """The row behind a plain reference."""
    return db.session.get(model, ref.id)


def sids_of(app, user) -> list[str]:
    """The live sockets the app's registry knows for a user."""
    return app.extensions["chorus.sockets"].sids_of(user.id)


def probe(app, channel: str, n: int) -> None:
    """Emit a probe event to one channel."""
    with app.app_context():
        socketio.emit("probe", {"n": n}, to=channel, namespace="/")


def message_count(app) -> int:
    with app.app_context():
        return db.session.execute(db.select(db.func.count(Message.id))).scalar_one()


# --- Connecting ----------------------------------------------------------------------------

def test_connect_refused_without_login(app, make_user):
    bob = make_user("bob")
    client = socketio.test_client(app)
    assert not client.is_connected()
    assert sids_of(app, bob) == []


@pytest.mark.parametrize(
    "auth",
    [{"token": "not-a-token"}, {"token": ""}, {"token": "x" * 1000}, {"token": 12345}, {"token": None},
     {"token": ["a"]}, {"other": "field"}],
)
def test_connect_refused_with_bad_token(app, make_user, auth):
    make_user("bob")
    client = socketio.test_client(app, auth=auth)
    assert not client.is_connected()


def test_bad_token_is_refused_even_with_a_session_cookie(app, make_user, login):
    bob = make_user("bob")
    client = socketio.test_client(app, flask_test_client=login(bob), auth={"token": "forged"})
    assert not client.is_connected()


def test_connect_refused_for_disabled_user(app, make_user, login, token_for):
    bob = make_user("bob")
    http = login(bob)
    token = token_for(bob)
    with app.app_context():
        users.do_disable_user(row(User, bob))
    assert not socketio.test_client(app, flask_test_client=http).is_connected()
    assert not socketio.test_client(app, auth={"token": token}).is_connected()
    assert sids_of(app, bob) == []


def test_connect_with_token(app, team, live):
    bob = team["bob"]
    client = live(bob)
    assert client.is_connected()
    assert len(sids_of(app, bob)) == 1
    client.disconnect()
    assert sids_of(app, bob) == []


def test_connect_with_session_cookie(app, team, sock):
    client = sock(team["carol"])
    assert client.is_connected()
    assert len(sids_of(app, team["carol"])) == 1


def test_socket_is_subscribed_to_its_rooms_and_user_channel(app, team, make_room, live):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    secret = make_room(alice, "secret", is_private=True)
    client = live(bob)
    client.get_received()
    for n, channel in enumerate([f"room:{room.id}", f"user:{bob.id}", f"room:{secret.id}", f"user:{alice.id}"]):
        probe(app, channel, n)
    assert [p["n"] for p in events_named(client, "probe")] == [0, 1]


# --- Live subscription changes -------------------------------------------------------------

def _send(app, user, room_id, body) -> int:
    with app.app_context():
        return messages.do_send_message(row(User, user), room_id, body).message.id


def test_joining_over_rest_subscribes_live_sockets_at_once(app, team, live, bearer):
    alice, dave, room = team["alice"], team["dave"], team["room"]
    tab1, tab2 = live(dave), live(dave)
    _send(app, alice, room.id, "before dave joined")
    assert events_named(tab1, "message") == [] and events_named(tab2, "message") == []

    client = app.test_client()
    headers = bearer(dave)
    assert client.post(f"/api/v1/rooms/{room.id}/members", json={}, headers=headers).status_code == 200
    for tab in (tab1, tab2):
        joined = events_named(tab, "room_membership")
        assert [(e["action"], e["room"]["id"]) for e in joined] == [("joined", room.id)]

    _send(app, alice, room.id, "welcome dave")
    assert [m["body"] for m in events_named(tab1, "message")] == ["welcome dave"]
    assert [m["body"] for m in events_named(tab2, "message")] == ["welcome dave"]

    assert client.delete(f"/api/v1/rooms/{room.id}/members/me", headers=headers).status_code == 204
    assert [e["action"] for e in events_named(tab1, "room_membership")] == ["left"]
    _send(app, alice, room.id, "dave is gone")
    assert events_named(tab1, "message") == [] and events_named(tab2, "message") == []
    assert tab1.is_connected() and tab2.is_connected()


def test_invite_action_subscribes_the_invitees_sockets(app, team, make_room, live):
    alice, dave = team["alice"], team["dave"]
    secret = make_room(alice, "secret", is_private=True)
    tab = live(dave)
    with app.app_context():
        memberships.do_invite_user(row(User, alice), secret.id, "dave")
    _send(app, alice, secret.id, "psst")
    assert [m["body"] for m in events_named(tab, "message")] == ["psst"]

    with app.app_context():
        memberships.do_leave_room(row(User, dave), secret.id)
    _send(app, alice, secret.id, "after dave left")
    assert events_named(tab, "message") == []


def test_creating_a_room_subscribes_the_owners_sockets(app, team, live):
    bob = team["bob"]
    tab = live(bob)
    with app.app_context():
        room_id = rooms.do_create_room(row(User, bob), "bobs-room").id
    ack = tab.emit("send", {"room_id": room_id, "body": "mine"}, callback=True)
    assert ack["ok"] is True
    assert [m["body"] for m in events_named(tab, "message")] == ["mine"]


# --- send ----------------------------------------------------------------------------------

def test_send_acks_and_broadcasts(app, team, live):
    alice, bob, dave, room = team["alice"], team["bob"], team["dave"], team["room"]
    a, a2, b, d = live(alice), live(alice), live(bob), live(dave)
    ack = a.emit("send", {"room_id": room.id, "body": "hi *all*", "client_id": "s-1"}, callback=True)
    assert ack["ok"] is True and ack["duplicate"] is False
    message = ack["message"]
    assert message["body"] == "hi *all*" and message["html"] == "<p>hi <em>all</em></p>"
    for client in (a, a2, b):
        assert events_named(client, "message") == [message]
    assert d.get_received() == []

    again = a.emit("send", {"room_id": room.id, "body": "hi *all*", "client_id": "s-1"}, callback=True)
    assert again == {"ok": True, "message": message, "duplicate": True}
    assert b.get_received() == []
    assert message_count(app) == 1


BAD_SENDS = [
    # (args given to emit, expected error code)
    ((), "invalid"),
    ((None,), "invalid"),
    (("a string",), "invalid"),
    (([1, 2, 3],), "invalid"),
    ((42,), "invalid"),
    ((True,), "invalid"),
    (({"body": "no room"},), "invalid"),
    (({"room_id": "1", "body": "x"},), "invalid"),
    (({"room_id": True, "body": "x"},), "invalid"),
    (({"room_id": 1.0, "body": "x"},), "invalid"),
    (({"room_id": 1.5, "body": "x"},), "invalid"),
    (({"room_id": 2**64, "body": "x"},), "invalid"),
    (({"room_id": 10**99, "body": "x"},), "invalid"),
    (({"room_id": -1, "body": "x"},), "invalid"),
    (({"room_id": 0, "body": "x"},), "invalid"),
    (({"room_id": None, "body": "x"},), "invalid"),
    (({"room_id": ["{room}"], "body": "x"},), "invalid"),
    (({"room_id": {"$gt": 0}, "body": "x"},), "invalid"),
    (({"room_id": "{room}"},), "invalid"),
    (({"room_id": "{room}", "body": None},), "invalid"),
    (({"room_id": "{room}", "body": 5},), "invalid"),
    (({"room_id": "{room}", "body": ["hi"]},), "invalid"),
    (({"room_id": "{room}", "body": {"text": "hi"}},), "invalid"),
    (({"room_id": "{room}", "body": ""},), "invalid"),
    (({"room_id": "{room}", "body": " \n\t "},), "invalid"),
    (({"room_id": "{room}", "body": "x" * 4001},), "too_large"),
    (({"room_id": "{room}", "body": "x", "client_id": "c" * 65},), "invalid"),
    (({"room_id": "{room}", "body": "x", "client_id": "bad chars!"},), "invalid"),
    (({"room_id": "{room}", "body": "x", "client_id": ""},), "invalid"),
    (({"room_id": "{room}", "body": "x", "client_id": 7},), "invalid"),
    (({"room_id": "{room}", "body": "x", "client_id": ["a"]},), "invalid"),
    (({"room_id": {"a": [1, {"b": None}]}, "body": {"c": [[[]]]}, "client_id": {"d": 1}},), "invalid"),
    (({"room_id": 2**63 - 1, "body": "x"},), "not_found"),
    (({"room_id": "{secret}", "body": "x"},), "not_found"),
    (({"room_id": "{other}", "body": "x"},), "not_member"),
]


def _fill_ids(value, ids: dict):
    """Put the real room ids in place of the "{room}"-style placeholders (only the whole value)."""
    if value in ("{room}", "{secret}", "{other}"):
        return ids[value]
    if isinstance(value, (list, tuple)):
        return type(value)(_fill_ids(v, ids) for v in value)
    if isinstance(value, dict):
        return {k: _fill_ids(v, ids) for k, v in value.items()}
    return value


def test_malformed_sends_get_error_acks_and_the_server_keeps_serving(app, team, make_room, live):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    secret = make_room(carol, "secret", is_private=True)
    other = make_room(carol, "other")
    ids = {"{room}": room.id, "{secret}": secret.id, "{other}": other.id}
    a, b = live(alice), live(bob)
    for args, code in BAD_SENDS:
        real_args = _fill_ids(args, ids)
        ack = a.emit("send", *real_args, callback=True)
        assert isinstance(ack, dict) and ack.get("ok") is False, (args, ack)
        assert set(ack) == {"ok", "error"}, (args, ack)
        assert ack["error"]["code"] == code, (args, ack)
        if code == "invalid" and isinstance(real_args[0] if real_args else None, dict):
            assert ack["error"].get("field") in {"room_id", "body", "client_id"}, (args, ack)
        assert isinstance(ack["error"]["message"], str) and ack["error"]["message"], (args, ack)
        assert a.is_connected(), args
    assert message_count(app) == 0
    assert events_named(b, "message") == []

    ack = a.emit("send", {"room_id": room.id, "body": "still here"}, callback=True)
    assert ack["ok"] is True
    assert [m["body"] for m in events_named(b, "message")] == ["still here"]


def test_send_with_extra_arguments_still_works(app, team, live):
    a = live(team["alice"])
    ack = a.emit("send", {"room_id": team["room"].id, "body": "extra"}, "junk", 5, callback=True)
    assert ack["ok"] is True and ack["message"]["body"] == "extra"


def test_invalid_error_ack_names_the_field(app, team, live):
    a = live(team["alice"])
    ack = a.emit("send", {"room_id": "1", "body": "x"}, callback=True)
    assert ack == {"ok": False, "error": {"code": "invalid", "field": "room_id",
                                          "message": "'room_id' must be a positive integer."}}


# --- read ----------------------------------------------------------------------------------

def test_read_event(app, team, live):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    ids = [_send(app, alice, room.id, f"m{i}") for i in range(3)]
    b1, b2 = live(bob), live(bob)
    ack = b1.emit("read", {"room_id": room.id, "message_id": ids[0]}, callback=True)
    assert ack == {"ok": True, "last_read_message_id": ids[0]}
    ack = b1.emit("read", {"room_id": room.id}, callback=True)
    assert ack == {"ok": True, "last_read_message_id": ids[-1]}
    # Every tab of the reader hears about it, so badges agree.
    for tab in (b1, b2):
        assert events_named(tab, "room_read") == [
            {"room_id": room.id, "last_read_message_id": ids[0]},
            {"room_id": room.id, "last_read_message_id": ids[-1]},
        ]
    with app.app_context():
        assert db.session.execute(
            db.select(Membership.last_read_message_id).filter_by(room_id=room.id, user_id=bob.id)
        ).scalar_one() == ids[-1]


@pytest.mark.parametrize(
    ("data", "code"),
    [(None, "invalid"), ("room", "invalid"), ({}, "invalid"), ({"room_id": "1"}, "invalid"),
     ({"room_id": "{room}", "message_id": True}, "invalid"), ({"room_id": "{room}", "message_id": -3}, "invalid"),
     ({"room_id": "{other}"}, "not_member"), ({"room_id": 999999}, "not_found")],
)
def test_read_event_errors(app, team, make_room, live, data, code):
    other = make_room(team["carol"], "other")
    b = live(team["bob"])
    ack = b.emit("read", _fill_ids(data, {"{room}": team["room"].id, "{other}": other.id}), callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == code
    assert b.is_connected()


# --- Closing sockets -----------------------------------------------------------------------

def test_disabling_a_user_disconnects_their_sockets(app, team, live, sock):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    b1, b2, a = live(bob), sock(bob), live(alice)
    assert len(sids_of(app, bob)) == 2
    with app.app_context():
        users.do_disable_user(row(User, bob))
    assert not b1.is_connected() and not b2.is_connected()
    assert a.is_connected()
    a.get_received()
    ack = a.emit("send", {"room_id": room.id, "body": "bob is out"}, callback=True)
    assert ack["ok"] is True


def test_logout_disconnects_that_users_sockets(app, team, login):
    alice, bob = team["alice"], team["bob"]
    bob_http = login(bob)
    b1 = socketio.test_client(app, flask_test_client=bob_http)
    b2 = socketio.test_client(app, flask_test_client=bob_http)
    a = socketio.test_client(app, flask_test_client=login(alice))
    try:
        assert b1.is_connected() and b2.is_connected() and a.is_connected()
        response = bob_http.post("/logout")
        assert response.status_code == 302
        assert not b1.is_connected() and not b2.is_connected()
        assert a.is_connected()
        # The HTTP session is gone too.
        assert bob_http.get("/api/v1/me").status_code == 401
    finally:
        for client in (b1, b2, a):
            if client.is_connected():
                client.disconnect()


def test_disabled_users_sockets_leave_the_registry(app, team, live):
    bob = team["bob"]
    live(bob)
    with app.app_context():
        users.do_disable_user(row(User, bob))
    assert sids_of(app, bob) == []


def test_socket_events_reuse_the_user_the_socket_connected_as(app, team, live):
    """No query for the user on each event: the socket keeps its own copy."""
    alice, room = team["alice"], team["room"]
    a = live(alice)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        ack = a.emit("send", {"room_id": room.id, "body": "hi"}, callback=True)
        read = a.emit("read", {"room_id": room.id}, callback=True)
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
    assert ack["ok"] is True and ack["message"]["author"]["username"] == "alice"
    assert read["ok"] is True and read["last_read_message_id"] == ack["message"]["id"]
    assert statements, "the events ran statements"
    assert not [s for s in statements if s.startswith("SELECT users.")], statements


def test_a_send_checks_the_account_even_before_the_socket_is_closed(app, team, live):
    """An account disabled behind the socket's back (no disconnect) can no longer send."""
    bob, room = team["bob"], team["room"]
    b = live(bob)
    with app.app_context():
        db.session.execute(db.update(User).where(User.id == bob.id).values(is_disabled=True))
        db.session.commit()
    ack = b.emit("send", {"room_id": room.id, "body": "still here?"}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
    assert message_count(app) == 0


def test_logged_out_sockets_leave_the_registry(app, team, login, live, bearer):
    """A disconnect run inside the logout request (whose user is gone) still forgets the socket."""
    bob, room = team["bob"], team["room"]
    bob_http = login(bob)
    for _ in range(3):
        socketio.test_client(app, flask_test_client=bob_http)
    bob_http.post("/logout")
    assert sids_of(app, bob) == []
    # Back with a new socket, bob joins a room: that socket, and only it, is subscribed.
    with app.app_context():
        memberships.do_leave_room(row(User, bob), room.id)
    fresh = live(bob)
    assert len(sids_of(app, bob)) == 1
    assert app.test_client().post(f"/api/v1/rooms/{room.id}/members", json={}, headers=bearer(bob)).status_code == 200
    _send(app, team["alice"], room.id, "welcome back")
    assert [m["body"] for m in events_named(fresh, "message")] == ["welcome back"]


def test_logout_is_post_only(app, team, login):
    bob_http = login(team["bob"])
    assert bob_http.get("/logout").status_code == 405
    assert bob_http.get("/api/v1/me").status_code == 200


# --- Every app gets the handlers -----------------------------------------------------------

def test_a_second_app_in_one_process_still_refuses_anonymous_sockets(tmp_path):
    """Socket handlers bind to every app's server, not only to the first one created."""
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'two.db'}"})
    first = create_app(config)
    second = create_app(config)
    try:
        with second.app_context():
            db.create_all()
            token = users.do_create_api_token(UserFactory(username="bob"))
        assert not socketio.test_client(second).is_connected()
        client = socketio.test_client(second, auth={"token": token})
        assert client.is_connected()
        ack = client.emit("send", {"room_id": 1, "body": "x"}, callback=True)
        assert ack["ok"] is False and ack["error"]["code"] == "not_found"
        client.disconnect()
    finally:
        for flask_app in (first, second):
            with flask_app.app_context():
                db.engine.dispose()
