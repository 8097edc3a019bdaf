"""Wildcard mentions (@room, @all, @everyone, @here) and the room setting that restricts them;
finding people, profile cards and editing one's own profile over REST.

Celery runs eagerly here (the embedded mode): the notification task runs after the send."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.actions import users
from app.extensions import db
from app.models import Room, User
from tests.conftest import events_named
from tests.test_dms import send
from tests.test_actions import row
from tests.test_thread_follows import call, error, notified, ok  # noqa: F401  (call is a fixture)


@pytest.mark.parametrize("word", ["@room", "@all", "@everyone", "@ROOM"])
def test_room_wildcards_notify_every_member_but_the_author_once(app, team, call, word):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    message = send(call, alice, team["room"].id, f"{word} standup in 5, @bob")
    # bob is named too: one notification, the direct mention.
    assert sorted(notified(app, message["id"])) == sorted([(bob.id, "mention"), (carol.id, "wildcard")])
    assert 'class="mention mention-wildcard"' in message["html"] and 'data-wildcard="room"' in message["html"]


def test_a_wildcard_in_code_is_no_wildcard(app, team, call):
    message = send(call, team["alice"], team["room"].id, "type `@room` to ping everyone")
    assert notified(app, message["id"]) == []
    assert "mention-wildcard" not in message["html"]


def test_here_notifies_the_members_present_now(app, team, call, live):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    live(bob)  # connected: active or idle; carol has no socket anywhere: offline
    message = send(call, alice, team["room"].id, "@here who can review?")
    assert notified(app, message["id"]) == [(bob.id, "wildcard")]


def test_wildcard_notifications_are_pushed_live(app, team, call, live):
    carol_socket = live(team["carol"])
    message = send(call, team["alice"], team["room"].id, "@everyone lunch")
    pushed = events_named(carol_socket, "notification")
    assert [(n["kind"], n["message"]["id"]) for n in pushed] == [("wildcard", message["id"])]


def test_a_room_can_keep_wildcards_to_its_owner_and_admins(app, team, call, live, make_user):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    room_id = team["room"].id
    error(call(bob, "patch", f"/rooms/{room_id}", json={"wildcard_policy": "admins"}), 403, "forbidden")
    bob_socket = live(bob)
    changed = ok(call(alice, "patch", f"/rooms/{room_id}", json={"wildcard_policy": "admins"}))
    assert changed["wildcard_policy"] == "admins"
    assert events_named(bob_socket, "room_updated") == [
        {"room_id": room_id, "topic": "", "wildcard_policy": "admins"}]
    # Refused before anything is stored, by REST and by socket; plain messages still go.
    with app.app_context():
        before = db.session.get(Room, room_id).last_seq
    body = error(call(bob, "post", f"/rooms/{room_id}/messages", json={"body": "@here anyone?"}), 403, "forbidden")
    assert body["field"] == "body"
    ack = bob_socket.emit("send", {"room_id": room_id, "body": "@all hello"}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    # An edit that adds one is refused the same way.
    plain = send(call, bob, room_id, "hello")
    error(call(bob, "patch", f"/messages/{plain['id']}", json={"body": "hello @room"}), 403, "forbidden")
    with app.app_context():
        assert db.session.get(Room, room_id).last_seq == before + 1
    # The owner may, and so may a site administrator who is a member.
    assert notified(app, send(call, alice, room_id, "@room fire drill")["id"])
    admin = make_user("root", is_admin=True)
    ok(call(admin, "post", f"/rooms/{room_id}/members", json={}))
    assert send(call, admin, room_id, "@room maintenance tonight")["room_id"] == room_id
    error(call(alice, "patch", f"/rooms/{room_id}", json={"wildcard_policy": "nobody"}), 400, "invalid")


def test_room_settings_are_for_members_and_not_for_dms(team, call):
    alice, dave = team["alice"], team["dave"]
    error(call(dave, "patch", f"/rooms/{team['room'].id}", json={"topic": "x"}), 403, "not_member")
    assert ok(call(alice, "patch", f"/rooms/{team['room'].id}", json={"topic": " Daily  talk "}))["topic"] == "Daily  talk"
    dm = ok(call(alice, "post", "/dms", json={"usernames": ["bob"]}), 201)
    error(call(alice, "patch", f"/rooms/{dm['id']}", json={"topic": "x"}), 403, "forbidden")


@pytest.mark.parametrize("name", ["room", "All", "everyone", "here"])
def test_wildcard_words_cannot_be_usernames(app, name):
    from app.lib.errors import ChatError

    with app.app_context(), pytest.raises(ChatError) as refused:
        users.do_register_user(name, "a-long-password")
    assert refused.value.code == "invalid" and refused.value.field == "username"


def test_people_search_by_prefix_of_username_or_display_name(app, make_user, call):
    me = make_user("me")
    make_user("alice", display_name="Zoe Alpha")
    make_user("albert")
    make_user("bob", display_name="Alan Bobson")
    make_user("alfred", is_disabled=True)
    found = ok(call(me, "get", "/users?q=AL"))
    assert [u["username"] for u in found["users"]] == ["albert", "alice", "bob"]
    assert found["next"] is None
    assert [u["username"] for u in ok(call(me, "get", "/users?q=zoe"))["users"]] == ["alice"]
    assert [u["username"] for u in ok(call(me, "get", "/users?q=%25"))["users"]] == []  # no LIKE wildcards
    first = ok(call(me, "get", "/users?q=a&limit=2"))
    assert [u["username"] for u in first["users"]] == ["albert", "alice"] and first["next"] == "alice"
    rest = ok(call(me, "get", f"/users?q=a&limit=2&after={first['next']}"))
    assert [u["username"] for u in rest["users"]] == ["bob"] and rest["next"] is None
    error(call(me, "get", "/users?limit=0"), 400, "invalid")
    error(call(me, "get", "/users?limit=51"), 400, "invalid")
    error(call(me, "get", "/users?after=%20x"), 400, "invalid")
    error(call(me, "get", "/users?q=" + "x" * 65), 400, "invalid")


def test_presence_shows_only_for_people_who_share_a_room(app, team, call, live):
    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    live(bob)
    listed = {u["username"]: u["presence"] for u in ok(call(alice, "get", "/users"))["users"]}
    assert listed["bob"] in ("active", "idle") and listed["carol"] == "offline" and listed["dave"] is None
    assert ok(call(dave, "get", "/users/bob"))["presence"] is None


def test_profile_cards_and_editing_ones_own(app, team, call, live):
    alice, bob = team["alice"], team["bob"]
    card = ok(call(bob, "get", "/users/ALICE"))
    assert card == {"id": alice.id, "username": "alice", "display_name": card["display_name"], "time_zone": "",
                    "status_text": "", "status_emoji": "", "dnd_until": None, "presence": "offline"}
    error(call(bob, "get", "/users/nobody"), 404, "not_found")
    error(call(bob, "get", "/users/a%20b"), 404, "not_found")
    until = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    mine = ok(call(alice, "patch", "/me", json={
        "display_name": "Alice  Archer", "time_zone": "Europe/Paris", "status_text": "  In a meeting\n",
        "status_emoji": ":calendar:", "dnd_until": until.isoformat()}))
    assert (mine["display_name"], mine["time_zone"], mine["status_text"], mine["status_emoji"]) == (
        "Alice Archer", "Europe/Paris", "In a meeting", "📆")
    assert datetime.fromisoformat(mine["dnd_until"].replace("Z", "+00:00")) == until
    assert ok(call(bob, "get", "/users/alice"))["status_text"] == "In a meeting"
    # Clearing: empty status, null do-not-disturb; a past time turns it off too.
    cleared = ok(call(alice, "patch", "/me", json={"status_text": "", "status_emoji": "", "dnd_until": None}))
    assert (cleared["status_text"], cleared["status_emoji"], cleared["dnd_until"]) == ("", "", None)
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    assert ok(call(alice, "patch", "/me", json={"dnd_until": past}))["dnd_until"] is None


@pytest.mark.parametrize("fields, field", [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"time_zone": 5}, "time_zone"),
    ({"status_text": "x" * 101}, "status_text"),
    ({"status_emoji": "not an emoji"}, "status_emoji"),
    ({"dnd_until": "tomorrow"}, "dnd_until"),
    ({"dnd_until": "2030-01-01T10:00:00"}, "dnd_until"),  # no zone
    ({"dnd_until": (datetime.now(timezone.utc) + timedelta(days=31)).isoformat()}, "dnd_until"),
    ({"display_name": "x" * 65}, "display_name"),
    ({"is_admin": True}, "is_admin"),
])
def test_bad_profile_fields_are_refused_and_change_nothing(app, team, call, fields, field):
    body = error(call(team["alice"], "patch", "/me", json=fields), 400, "invalid")
    assert body["field"] == field
    with app.app_context():
        alice = db.session.get(User, team["alice"].id)
        assert (alice.time_zone, alice.status_text, alice.status_emoji, alice.dnd_until, alice.is_admin) == (
            "", "", "", None, False)


def test_a_display_name_that_passes_for_another_username_is_refused(team, call):
    body = error(call(team["alice"], "patch", "/me", json={"display_name": "b0b"}), 409, "conflict")
    assert body["field"] == "display_name"


def test_a_status_change_is_pushed_as_presence_to_people_sharing_a_room(app, team, call, live):
    from app.realtime import presence

    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    bob_socket, dave_socket = live(bob), live(dave)
    with app.app_context():
        presence.flush_now()
    events_named(bob_socket, "presence")
    ok(call(alice, "patch", "/me", json={"status_text": "Out to lunch", "status_emoji": "🍜"}))
    with app.app_context():
        presence.flush_now()
    pushed = [p for p in events_named(bob_socket, "presence") if p["user_id"] == alice.id]
    assert pushed and pushed[-1]["status_text"] == "Out to lunch" and pushed[-1]["status_emoji"] == "🍜"
    assert [p for p in events_named(dave_socket, "presence") if p["user_id"] == alice.id] == []


def test_disabled_users_have_no_card(app, team, call):
    with app.app_context():
        users.do_disable_user(row(User, team["bob"]))
    error(call(team["alice"], "get", "/users/bob"), 404, "not_found")
