"""The core promise, end to end through Socket.IO: every member gets every message; mentions notify."""
from app.extensions import db
from app.models import Message, Notification
from tests.conftest import events_named, payload


def test_team_scenario(app, team, sock):
    alice, bob, carol, dave, room = (team[k] for k in ("alice", "bob", "carol", "dave", "room"))
    a, b, c, d = sock(alice), sock(bob), sock(carol), sock(dave)
    a2 = sock(alice)  # alice's second tab
    for client in (a, b, c, d, a2):
        client.get_received()

    ack = a.emit("send", {"room_id": room.id, "body": "Hello team", "client_id": "c-1"}, callback=True)
    assert ack["ok"] is True
    assert ack["message"]["body"] == "Hello team"
    for client in (a, b, c, a2):
        got = events_named(client, "message")
        assert [m["body"] for m in got] == ["Hello team"]
        assert got[0]["id"] == ack["message"]["id"]
        assert got[0]["author"]["username"] == "alice"
        assert got[0]["client_id"] == "c-1"
    assert events_named(d, "message") == []

    ack = a.emit("send", {"room_id": room.id, "body": "@bob please review", "client_id": "c-2"}, callback=True)
    assert ack["ok"] is True and ack["message"]["mentions"] == ["bob"]
    assert '<span class="mention" data-username="bob">@bob</span>' in ack["message"]["html"]
    received = {name: client.get_received() for name, client in (("a", a), ("b", b), ("c", c), ("d", d))}
    for name in ("a", "b", "c"):
        assert [payload(e)["body"] for e in received[name] if e["name"] == "message"] == ["@bob please review"]
    bob_notes = [payload(e) for e in received["b"] if e["name"] == "notification"]
    assert len(bob_notes) == 1
    assert bob_notes[0]["kind"] == "mention"
    assert bob_notes[0]["message"]["id"] == ack["message"]["id"]
    assert bob_notes[0]["room_id"] == room.id and bob_notes[0]["read_at"] is None
    for name in ("a", "c", "d"):
        assert [e for e in received[name] if e["name"] == "notification"] == []
    assert received["d"] == []

    ack = a.emit("send", {"room_id": room.id, "body": "@nobody hi", "client_id": "c-3"}, callback=True)
    assert ack["ok"] is True and ack["message"]["mentions"] == []
    for client in (a, b, c):
        assert [m["body"] for m in events_named(client, "message")] == ["@nobody hi"]

    ack = d.emit("send", {"room_id": room.id, "body": "let me in", "client_id": "d-1"}, callback=True)
    assert ack == {"ok": False, "error": {"code": "not_member", "message": "Join the room first."}}
    assert d.get_received() == []
    for client in (a, b, c):
        assert events_named(client, "message") == []

    with app.app_context():
        bodies = db.session.execute(db.select(Message.body).order_by(Message.id)).scalars().all()
        assert bodies == ["Hello team", "@bob please review", "@nobody hi"]
        notes = db.session.execute(db.select(Notification)).scalars().all()
        assert [(n.user_id, n.kind) for n in notes] == [(bob.id, "mention")]
