"""The Socket.IO protocol below the handlers: reserved event names, unparsable frames, headers.

Frames go in through the handler python-socketio registered with Engine.IO, as a real
transport delivers them (the test client's own emit skips that layer).
"""
from __future__ import annotations

import logging

import pytest

from app.actions import memberships, users
from app.extensions import socketio
from app.models import User
from app.queries import rooms as room_queries
from app.realtime import guard
from app.security import security_header_values
from tests.conftest import events_named


def row(model, ref):
    from app.extensions import db

    return db.session.get(model, ref.id)


def sids_of(app, user) -> list[str]:
    return app.extensions["chorus.sockets"].sids_of(user.id)


def frame(client, text: str | bytes):
    """Deliver one Socket.IO packet (an Engine.IO message's content) from the client; returns its ack, if any."""
    client.acks = None
    socketio.server.eio.handlers["message"](client.eio_sid, text)
    ack, client.acks = client.acks, None
    return ack["args"][0] if ack else None


def send(client, room_id: int, body: str) -> dict:
    return client.emit("send", {"room_id": room_id, "body": body}, callback=True)


# --- Reserved event names --------------------------------------------------------------------

def test_a_disconnect_event_leaves_the_socket_registered_and_logout_still_closes_it(app, team, login):
    bob = team["bob"]
    http = login(bob)
    client = socketio.test_client(app, flask_test_client=http)
    assert len(sids_of(app, bob)) == 1
    assert frame(client, '2["disconnect"]') is None  # no ack asked for, none sent
    ack = frame(client, '21["disconnect","io client disconnect"]')
    assert ack == {"ok": False, "error": {"code": "invalid", "message": "'disconnect' is a reserved event name."}}
    assert client.is_connected() and len(sids_of(app, bob)) == 1
    assert http.post("/logout").status_code == 302
    assert not client.is_connected() and sids_of(app, bob) == []


@pytest.mark.parametrize("action", ["disable", "revoke"])
def test_after_a_disconnect_event_disabling_and_revoking_still_close_the_socket(app, team, token_for, action):
    bob = team["bob"]
    token = token_for(bob)
    client = socketio.test_client(app, auth={"token": token})
    frame(client, '2["disconnect"]')
    with app.app_context():
        user = row(User, bob)
        if action == "disable":
            users.do_disable_user(user)
        else:
            users.do_revoke_api_token(user, users.get_api_tokens(user)[0].id)
    assert not client.is_connected() and sids_of(app, bob) == []


def test_after_a_disconnect_event_leaving_a_private_room_stops_its_messages(app, make_user, make_room, live):
    alice, dave = make_user("alice"), make_user("dave")
    secret = make_room(alice, "secret", is_private=True, members=[dave])
    a, d = live(alice), live(dave)
    frame(d, '2["disconnect"]')
    with app.app_context():
        memberships.do_leave_room(row(User, dave), secret.id)
    d.get_received()
    assert send(a, secret.id, "after dave left")["ok"] is True
    assert events_named(d, "message") == []


def test_a_connect_event_with_another_users_token_does_not_change_the_socket(app, team, live, token_for):
    alice, carol, room = team["alice"], team["carol"], team["room"]
    a = live(alice)
    carol_token = token_for(carol)
    for text in (f'2["connect",{{"token":"{carol_token}"}}]',
                 f'23["connect",{{}},{{"token":"{carol_token}"}}]'):
        ack = frame(a, text)
        assert ack is None or ack["error"]["code"] == "invalid"
    assert sids_of(app, carol) == []
    assert send(a, room.id, "still alice")["message"]["author"]["username"] == "alice"


@pytest.mark.parametrize("name", sorted(guard.RESERVED_EVENTS))
def test_every_reserved_name_gets_an_error_ack(app, team, live, monkeypatch, name):
    called = []
    monkeypatch.setattr(room_queries, "get_room_ids_for_user", lambda *a: called.append(a) or [])
    client = live(team["bob"])
    called.clear()
    ack = frame(client, f'27["{name}",{{"token":"x"}},{{"token":"y"}}]')
    assert ack["ok"] is False and ack["error"]["code"] == "invalid"
    assert called == [] and client.is_connected()
    assert len(sids_of(app, team["bob"])) == 1


def test_the_disconnect_handler_ignores_a_call_for_a_connected_socket(app, team, live):
    """Even reached some other way, the handler only forgets a socket python-socketio is closing."""
    client = live(team["bob"])
    sid = socketio.server.manager.sid_from_eio_sid(client.eio_sid, "/")
    socketio.server._trigger_event("disconnect", "/", sid, "client disconnect")
    assert client.is_connected() and sids_of(app, team["bob"]) == [sid]


def test_a_connect_that_fails_unexpectedly_is_refused(app, team, token_for, monkeypatch):
    """Accepting it would leave a socket no registry knows, out of reach of a logout."""
    token = token_for(team["bob"])

    def broken(*_args):
        raise RuntimeError("database went away")

    monkeypatch.setattr(room_queries, "get_room_ids_for_user", broken)
    client = socketio.test_client(app, auth={"token": token})
    assert not client.is_connected() and sids_of(app, team["bob"]) == []


# --- Frames that cannot be handled -----------------------------------------------------------

BAD_FRAMES = ["xyz", '2{"a"', "2[]", "2", "2[1]", "2[null,1]", '2[["send"]]', '2{"0":"send"}', "7", "4",
              "2" + "[" * 5000, b"", b"\xff\xfe", "5-[]"]


@pytest.mark.parametrize("bad", BAD_FRAMES, ids=repr)
def test_a_bad_frame_is_logged_once_without_a_traceback(app, team, live, caplog, bad):
    client = live(team["bob"])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        frame(client, bad)
        frame(client, bad)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in records] == ["app.realtime.guard"]
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert client.is_connected()
    assert send(client, team["room"].id, "fine")["ok"] is True


def test_the_connection_closes_at_the_third_bad_frame(app, team, live, monkeypatch):
    closed = []
    monkeypatch.setattr(guard, "close_connection", lambda server, eio_sid: closed.append(eio_sid))
    client = live(team["bob"])
    frame(client, "xyz")
    frame(client, "2[]")
    assert closed == []
    frame(client, '2{"')
    assert closed == [client.eio_sid]


# --- Response headers ------------------------------------------------------------------------

def test_pages_and_engineio_share_one_header_set(app):
    page = app.test_client().get("/login")
    for name, value in security_header_values("n", secure=False).items():
        if name != "Content-Security-Policy":
            assert page.headers[name] == value
    assert "'nonce-" in page.headers["Content-Security-Policy"]
    assert "nonce" not in security_header_values(None, secure=False)["Content-Security-Policy"]
    assert "Strict-Transport-Security" in security_header_values(None, secure=True)
