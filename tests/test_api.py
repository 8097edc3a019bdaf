"""The REST API: status codes, JSON bodies, authentication and error mapping."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import session
from flask_wtf.csrf import generate_csrf

from app import create_app
from app.actions import messages
from app.config import TestConfig
from app.extensions import db
from app.models import ApiToken, Membership, Message, Notification, Room, User
from tests.conftest import events_named, payload
from tests.factories import PASSWORD, UserFactory

HUGE = 2**64
PROTECTED = [
    ("get", "/me"),
    ("get", "/rooms"),
    ("post", "/rooms"),
    ("get", "/rooms/1"),
    ("get", "/rooms/1/members"),
    ("post", "/rooms/1/members"),
    ("delete", "/rooms/1/members/me"),
    ("get", "/rooms/1/messages"),
    ("post", "/rooms/1/messages"),
    ("post", "/rooms/1/read"),
    ("get", "/notifications"),
    ("post", "/notifications/read"),
]


class Api:
    """A test client speaking JSON to /api/v1 with fixed headers."""

    def __init__(self, client, headers=None):
        self.client = client
        self.headers = headers or {}

    def call(self, method: str, path: str, **kwargs):
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return getattr(self.client, method)(f"/api/v1{path}", headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.call("get", path, **kwargs)

    def post(self, path, **kwargs):
        return self.call("post", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("delete", path, **kwargs)


@pytest.fixture
def api(app, bearer):
    """api(user): a JSON client authenticated with the user's bearer token; api() is anonymous."""

    def _for(user=None) -> Api:
        return Api(app.test_client(), bearer(user) if user is not None else {})

    return _for


def error_of(response, status: int) -> dict:
    """The {code, message} of an error response with the given status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    return error


def send_raw(api_client: Api, method: str, path: str, raw: str | bytes):
    """A request whose body is sent exactly as given, labelled as JSON."""
    return api_client.call(method, path, data=raw, content_type="application/json")


# --- Accounts and tokens ------------------------------------------------------------------

def test_register(app, api, fast_hashing):
    response = api().post("/users", json={"username": "Newbie", "password": "long-enough-pw", "display_name": "New B"})
    assert response.status_code == 201
    body = response.get_json()
    assert body == {"id": body["id"], "username": "Newbie", "display_name": "New B"}
    with app.app_context():
        assert db.session.get(User, body["id"]).check_password("long-enough-pw")


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        ({"username": "bad name", "password": "long-enough-pw"}, 400, "invalid", "username"),
        ({"username": "ok", "password": "short"}, 400, "invalid", "password"),
        ({"username": "ALICE", "password": "long-enough-pw"}, 409, "conflict", "username"),
        ({"password": "long-enough-pw"}, 400, "invalid", "username"),
        ({"username": "ok"}, 400, "invalid", "password"),
        ({"username": 12, "password": "long-enough-pw"}, 400, "invalid", "username"),
        ({"username": "ok", "password": ["long-enough-pw"]}, 400, "invalid", "password"),
        ({"username": "ok", "password": "long-enough-pw", "display_name": 5}, 400, "invalid", "display_name"),
    ],
)
def test_register_errors(app, api, make_user, fast_hashing, payload, status, code, field):
    make_user("alice")
    error = error_of(api().post("/users", json=payload), status)
    assert error["code"] == code and error.get("field") == field
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 1


def test_register_closed(app, api, fast_hashing):
    app.config["REGISTRATION_OPEN"] = False
    error = error_of(api().post("/users", json={"username": "newbie", "password": "long-enough-pw"}), 403)
    assert error["code"] == "registration_closed"


def test_token_login_then_bearer_calls(app, api, make_user):
    alice = make_user("alice")
    response = api().post("/auth/token", json={"username": "ALICE", "password": PASSWORD, "name": "cli"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == {"id": alice.id, "username": "alice", "display_name": "Alice"}
    token = body["token"]
    with app.app_context():
        stored = db.session.execute(db.select(ApiToken)).scalar_one()
        assert stored.name == "cli" and stored.token_hash != token
    me = Api(app.test_client(), {"Authorization": f"Bearer {token}"}).get("/me")
    assert me.status_code == 200
    assert me.get_json() == {
        "id": alice.id, "username": "alice", "display_name": "Alice", "time_zone": "", "status_text": "",
        "status_emoji": "", "dnd_until": None, "is_admin": False, "unread_notifications": 0,
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "alice", "password": "wrong-password"},
        {"username": "nobody", "password": PASSWORD},
        {"username": "not valid!", "password": PASSWORD},
        {"username": "disabled", "password": PASSWORD},
    ],
)
def test_token_login_bad_credentials(app, api, make_user, payload):
    make_user("alice")
    make_user("disabled", is_disabled=True)
    error = error_of(api().post("/auth/token", json=payload), 401)
    assert error == {"code": "unauthorized", "message": "Wrong username or password."}
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(ApiToken.id))).scalar_one() == 0


@pytest.mark.parametrize(
    "payload",
    [{}, {"username": "alice"}, {"password": PASSWORD}, {"username": ["alice"], "password": PASSWORD},
     {"username": "alice", "password": 12345678}, {"username": "alice", "password": PASSWORD, "name": 5}],
)
def test_token_login_bad_payloads(app, api, make_user, payload):
    make_user("alice")
    assert error_of(api().post("/auth/token", json=payload), 400)["code"] == "invalid"
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(ApiToken.id))).scalar_one() == 0


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_unauthenticated_calls_get_401(api, method, path):
    error = error_of(api().call(method, path, json={}), 401)
    assert error["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header", ["Bearer nope", "Bearer ", "Bearer " + "x" * 300, "Basic YWxpY2U6cHc=", "bearer lowercase"]
)
def test_bad_authorization_headers_get_401(api, header):
    assert error_of(api().get("/me", headers={"Authorization": header}), 401)["code"] == "unauthorized"


def test_tokens_of_disabled_users_stop_working(app, api, make_user):
    alice = make_user("alice")
    client = api(alice)
    assert client.get("/me").status_code == 200
    with app.app_context():
        from app.actions.users import do_disable_user

        do_disable_user(db.session.get(User, alice.id))
    assert error_of(client.get("/me"), 401)["code"] == "unauthorized"


# --- Rooms ---------------------------------------------------------------------------------

def test_rooms_list_and_get(api, team, make_room):
    alice, bob, dave, room = (team[k] for k in ("alice", "bob", "dave", "room"))
    secret = make_room(alice, "secret", is_private=True)
    body = api(alice).get("/rooms").get_json()
    assert [(r["name"], r["is_member"], r["member_count"]) for r in body["rooms"]] == [
        ("general", True, 3), ("secret", True, 1),
    ]
    listed = api(dave).get("/rooms").get_json()["rooms"]
    assert [(r["id"], r["is_member"]) for r in listed] == [(room.id, False)]
    assert "unread" not in listed[0]

    got = api(bob).get(f"/rooms/{room.id}")
    assert got.status_code == 200
    assert got.get_json() == {
        "id": room.id, "kind": "room", "name": "general", "topic": "", "is_private": False, "owner_id": alice.id,
        "wildcard_policy": "members", "is_member": True, "member_count": 3,
        "created_at": got.get_json()["created_at"], "unread": 0,
    }
    assert got.get_json()["created_at"].endswith("Z")
    assert api(dave).get(f"/rooms/{room.id}").get_json()["is_member"] is False
    assert error_of(api(dave).get(f"/rooms/{secret.id}"), 404)["code"] == "not_found"


def test_create_room(app, api, make_user):
    alice = make_user("alice")
    response = api(alice).post("/rooms", json={"name": "Dev-Ops", "topic": "builds", "is_private": True})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["name"], body["topic"], body["is_private"], body["owner_id"]) == ("Dev-Ops", "builds", True, alice.id)
    assert body["is_member"] is True and body["member_count"] == 1
    with app.app_context():
        assert db.session.get(Room, body["id"]).name_key == "dev-ops"
    # A private room's name is nobody else's business: a public room may take it.
    assert api(alice).post("/rooms", json={"name": "DEV-OPS"}).status_code == 201
    error = error_of(api(alice).post("/rooms", json={"name": "dev-ops"}), 409)
    assert error["code"] == "conflict" and error["field"] == "name"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": 5}, "name"),
        ({"name": ["general"]}, "name"),
        ({"name": "ok", "topic": 5}, "topic"),
        ({"name": "ok", "topic": "t" * 251}, "topic"),
        ({"name": "ok", "is_private": "yes"}, "is_private"),
        ({"name": "ok", "is_private": 1}, "is_private"),
        ({"name": "ok", "is_private": None}, "is_private"),
    ],
)
def test_create_room_invalid(app, api, make_user, payload, field):
    alice = make_user("alice")
    error = error_of(api(alice).post("/rooms", json=payload), 400)
    assert error["code"] == "invalid" and error.get("field") == field
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Room.id))).scalar_one() == 0


def test_members_join_invite_leave(app, api, team, make_user):
    alice, bob, dave, room = (team[k] for k in ("alice", "bob", "dave", "room"))
    erin = make_user("erin")
    members = api(bob).get(f"/rooms/{room.id}/members")
    assert members.status_code == 200
    assert [m["username"] for m in members.get_json()["members"]] == ["alice", "bob", "carol"]
    assert error_of(api(dave).get(f"/rooms/{room.id}/members"), 403)["code"] == "not_member"

    joined = api(dave).post(f"/rooms/{room.id}/members", json={})
    assert joined.status_code == 200
    assert joined.get_json()["is_member"] is True and joined.get_json()["member_count"] == 4

    invited = api(dave).post(f"/rooms/{room.id}/members", json={"username": "ERIN"})
    assert invited.status_code == 201
    assert invited.get_json() == {"room_id": room.id, "user": {"id": erin.id, "username": "erin", "display_name": "Erin"}}
    assert error_of(api(dave).post(f"/rooms/{room.id}/members", json={"username": "erin"}), 409)["code"] == "conflict"
    assert error_of(api(dave).post(f"/rooms/{room.id}/members", json={"username": "ghost"}), 404)["code"] == "not_found"

    left = api(bob).delete(f"/rooms/{room.id}/members/me")
    assert left.status_code == 204 and left.get_data() == b""
    assert error_of(api(bob).delete(f"/rooms/{room.id}/members/me"), 403)["code"] == "not_member"
    with app.app_context():
        assert sorted(db.session.execute(db.select(Membership.user_id).filter_by(room_id=room.id)).scalars()) == sorted(
            [alice.id, team["carol"].id, dave.id, erin.id]
        )


def test_private_room_invites_owner_only(api, team, make_room):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    secret = make_room(alice, "secret", members=[bob], is_private=True)
    error = error_of(api(bob).post(f"/rooms/{secret.id}/members", json={"username": "carol"}), 403)
    assert error["code"] == "forbidden"
    assert api(alice).post(f"/rooms/{secret.id}/members", json={"username": "carol"}).status_code == 201
    assert api(carol).get(f"/rooms/{secret.id}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "/rooms/{id}", None),
        ("get", "/rooms/{id}/members", None),
        ("post", "/rooms/{id}/members", {}),
        ("post", "/rooms/{id}/members", {"username": "carol"}),
        ("delete", "/rooms/{id}/members/me", None),
        ("get", "/rooms/{id}/messages", None),
        ("post", "/rooms/{id}/messages", {"body": "hi"}),
        ("post", "/rooms/{id}/read", {}),
    ],
)
def test_private_room_of_others_is_404_everywhere(app, api, team, make_room, method, path, payload):
    alice, bob = team["alice"], team["bob"]
    secret = make_room(alice, "secret", is_private=True)
    with app.app_context():
        messages.do_send_message(db.session.get(User, alice.id), secret.id, "classified")
    kwargs = {"json": payload} if payload is not None else {}
    hidden = error_of(api(bob).call(method, path.format(id=secret.id), **kwargs), 404)
    missing = error_of(api(bob).call(method, path.format(id=secret.id + 1000), **kwargs), 404)
    assert hidden == missing == {"code": "not_found", "message": "No such room."}
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 1
        assert db.session.execute(db.select(db.func.count(Membership.id)).filter_by(room_id=secret.id)).scalar_one() == 1


# --- Messages ------------------------------------------------------------------------------

def test_post_message_broadcasts_to_members(app, api, team, live):
    alice, bob, dave, room = (team[k] for k in ("alice", "bob", "dave", "room"))
    bob_socket, dave_socket, alice_tab = live(bob), live(dave), live(alice)
    for client in (bob_socket, dave_socket, alice_tab):
        client.get_received()

    response = api(alice).post(f"/rooms/{room.id}/messages", json={"body": "Hello *REST*", "client_id": "r-1"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["body"] == "Hello *REST*" and body["html"] == "<p>Hello <em>REST</em></p>"
    assert body["author"]["username"] == "alice" and body["room_id"] == room.id
    assert body["client_id"] == "r-1" and body["mentions"] == [] and body["created_at"].endswith("Z")
    assert events_named(bob_socket, "message") == [body]
    assert events_named(alice_tab, "message") == [body]
    assert dave_socket.get_received() == []

    retry = api(alice).post(f"/rooms/{room.id}/messages", json={"body": "Hello *REST*", "client_id": "r-1"})
    assert retry.status_code == 200
    assert retry.get_json()["id"] == body["id"]
    assert bob_socket.get_received() == []
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 1


def test_post_message_events_reach_mentioned_member(app, api, team, live):
    bob_socket = live(team["bob"])
    bob_socket.get_received()
    response = api(team["alice"]).post(f"/rooms/{team['room'].id}/messages", json={"body": "@Bob look"})
    assert response.status_code == 201
    received = bob_socket.get_received()
    assert [e["name"] for e in received] == ["message", "notification"]
    assert payload(received[1])["message"]["id"] == response.get_json()["id"]
    unread = api(team["bob"]).get("/me").get_json()["unread_notifications"]
    assert unread == 1


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"body": None}, 400, "invalid"),
        ({"body": ""}, 400, "invalid"),
        ({"body": "   \n"}, 400, "invalid"),
        ({"body": 5}, 400, "invalid"),
        ({"body": ["hi"]}, 400, "invalid"),
        ({"body": {"text": "hi"}}, 400, "invalid"),
        ({"body": True}, 400, "invalid"),
        ({"body": "hi", "client_id": 7}, 400, "invalid"),
        ({"body": "hi", "client_id": "has space"}, 400, "invalid"),
        ({"body": "hi", "client_id": "x" * 65}, 400, "invalid"),
        ({"body": "x" * 4001}, 413, "too_large"),
    ],
)
def test_post_message_invalid(app, api, team, payload, status, code):
    error = error_of(api(team["alice"]).post(f"/rooms/{team['room'].id}/messages", json=payload), status)
    assert error["code"] == code
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 0


def test_post_message_length_bound(api, team):
    response = api(team["alice"]).post(f"/rooms/{team['room'].id}/messages", json={"body": "x" * 4000})
    assert response.status_code == 201 and len(response.get_json()["body"]) == 4000


def test_post_message_as_non_member(api, team):
    error = error_of(api(team["dave"]).post(f"/rooms/{team['room'].id}/messages", json={"body": "hi"}), 403)
    assert error == {"code": "not_member", "message": "Join the room first."}


def test_oversized_request_is_413(api, team):
    response = send_raw(api(team["alice"]), "post", f"/rooms/{team['room'].id}/messages",
                        '{"body": "' + "x" * 70000 + '"}')
    assert error_of(response, 413)["code"] == "too_large"


def _fill(app, user, room_id, n) -> list[int]:
    with app.app_context():
        author = db.session.get(User, user.id)
        return [messages.do_send_message(author, room_id, f"m{i}").message.id for i in range(n)]


def test_list_messages_paging(app, api, team):
    ids = _fill(app, team["alice"], team["room"].id, 5)
    client = api(team["bob"])
    base = f"/rooms/{team['room'].id}/messages"

    def page(query=""):
        response = client.get(base + query)
        assert response.status_code == 200
        body = response.get_json()
        return [m["id"] for m in body["messages"]], body["has_more"]

    assert page() == (ids, False)
    assert page("?limit=2") == (ids[-2:], True)
    assert page(f"?limit=2&before={ids[-2]}") == (ids[1:3], True)
    assert page(f"?limit=2&before={ids[1]}") == (ids[:1], False)
    assert page(f"?after={ids[2]}") == (ids[3:], False)
    assert page(f"?after={ids[0]}&limit=2") == (ids[1:3], True)
    assert page("?limit=200") == (ids, False)
    assert page("?limit=&before=") == (ids, False)
    first = client.get(base + "?limit=1").get_json()["messages"][0]
    assert set(first) == {"id", "room_id", "seq", "rev", "author", "body", "html", "created_at", "edited_at",
                          "mentions", "client_id", "reactions", "thread_root_id", "also_in_room", "thread",
                          "quote_of", "quote"}


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=-1", "limit=abc", "limit=1.5", "limit=%201", "before=x", "before=-5",
     "after=-0", "since=00x", f"after={HUGE}", f"before={HUGE}", "before=1&after=2", "limit=true"],
)
def test_list_messages_bad_query(api, team, query):
    response = api(team["alice"]).get(f"/rooms/{team['room'].id}/messages?{query}")
    assert error_of(response, 400)["code"] == "invalid"


@pytest.mark.parametrize("query", ["limit=%C2%B2", "before=%C2%B9", "after=%E2%91%A0"])
def test_list_messages_unicode_digits_are_400(api, team, query):
    response = api(team["alice"]).get(f"/rooms/{team['room'].id}/messages?{query}")
    assert error_of(response, 400)["code"] == "invalid"


def test_list_messages_needs_membership(api, team):
    assert error_of(api(team["dave"]).get(f"/rooms/{team['room'].id}/messages"), 403)["code"] == "not_member"


# --- Read markers --------------------------------------------------------------------------

def test_mark_room_read(app, api, team):
    ids = _fill(app, team["alice"], team["room"].id, 3)
    client = api(team["bob"])
    path = f"/rooms/{team['room'].id}/read"
    assert client.get("/rooms").get_json()["rooms"][0]["unread"] == 3
    assert client.post(path, json={"message_id": ids[0]}).get_json() == {"last_read_message_id": ids[0]}
    assert client.get("/rooms").get_json()["rooms"][0]["unread"] == 2
    assert client.post(path, json={}).get_json() == {"last_read_message_id": ids[-1]}
    response = client.post(path)  # no body at all: up to the latest
    assert response.status_code == 200 and response.get_json() == {"last_read_message_id": ids[-1]}
    assert error_of(api(team["dave"]).post(path, json={}), 403)["code"] == "not_member"


@pytest.mark.parametrize(
    "payload",
    [{"message_id": "1"}, {"message_id": True}, {"message_id": 1.5}, {"message_id": -1}, {"message_id": 0},
     {"message_id": HUGE}, {"message_id": [1]}, {"message_id": {"id": 1}}],
)
def test_mark_room_read_invalid(api, team, payload):
    response = api(team["bob"]).post(f"/rooms/{team['room'].id}/read", json=payload)
    error = error_of(response, 400)
    assert error["code"] == "invalid" and error["field"] == "message_id"


@pytest.mark.parametrize("raw", ["[1]", '"text"', "[1, 2]"])
def test_mark_room_read_non_object_json(api, team, raw):
    response = send_raw(api(team["bob"]), "post", f"/rooms/{team['room'].id}/read", raw)
    assert error_of(response, 400)["code"] == "invalid"


@pytest.mark.parametrize("raw", ["{not json", "0", "false", "[]"])
def test_mark_room_read_malformed_json_is_400(api, team, raw):
    response = send_raw(api(team["bob"]), "post", f"/rooms/{team['room'].id}/read", raw)
    assert error_of(response, 400)["code"] == "invalid"


# --- Malformed bodies everywhere ----------------------------------------------------------

JSON_ROUTES = [
    ("post", "/users"),
    ("post", "/auth/token"),
    ("post", "/rooms"),
    ("post", "/rooms/{id}/members"),
    ("post", "/rooms/{id}/messages"),
    ("post", "/notifications/read"),
]
MALFORMED = ["", "{", "{'single': 'quotes'}", '{"a": }', "nul", "[", '{"body": "x"', b"\xff\xfe{}", "NaN x"]
NON_OBJECTS = ["[]", "[1, 2]", '"string"', "42", "true", "null", '[{"body": "hi"}]']


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_malformed_and_non_object_json_is_400(app, api, team, method, path):
    client = api(team["alice"])
    for raw in MALFORMED + NON_OBJECTS:
        response = send_raw(client, method, path.format(id=team["room"].id), raw)
        assert response.status_code == 400, (raw, response.get_data(as_text=True))
        assert error_of(response, 400)["code"] == "invalid", raw
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 0
        assert db.session.execute(db.select(db.func.count(Room.id))).scalar_one() == 1


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_json_without_json_content_type_is_400(api, team, method, path):
    response = api(team["alice"]).call(method, path.format(id=team["room"].id), data='{"body": "hi"}',
                                       content_type="text/plain")
    assert error_of(response, 400)["code"] == "invalid"


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "/rooms/{id}", None),
        ("get", "/rooms/{id}/members", None),
        ("post", "/rooms/{id}/members", {}),
        ("delete", "/rooms/{id}/members/me", None),
        ("get", "/rooms/{id}/messages", None),
        ("post", "/rooms/{id}/messages", {"body": "hi"}),
        ("post", "/rooms/{id}/read", {}),
    ],
)
def test_huge_room_ids_in_the_path_are_not_500(api, team, method, path, payload):
    kwargs = {"json": payload} if payload is not None else {}
    response = api(team["alice"]).call(method, path.format(id=HUGE), **kwargs)
    assert response.status_code in (400, 404)
    assert response.get_json()["error"]["code"] in ("invalid", "not_found")


@pytest.mark.parametrize("path", ["/rooms/-1", "/rooms/abc", "/rooms/1.5", "/nope", "/rooms/1/nope"])
def test_unknown_api_paths_are_json_404(api, team, path):
    assert error_of(api(team["alice"]).get(path), 404)["code"] == "not_found"


def test_wrong_method_is_json_405(api, team):
    assert error_of(api(team["alice"]).get("/auth/token"), 405)["code"] == "method_not_allowed"
    assert error_of(api(team["alice"]).call("put", "/rooms"), 405)["code"] == "method_not_allowed"


# --- Notifications -------------------------------------------------------------------------

def _mention_bob(app, team, n) -> list[int]:
    with app.app_context():
        author = db.session.get(User, team["alice"].id)
        for i in range(n):
            messages.do_send_message(author, team["room"].id, f"@bob @carol #{i}")
        return list(db.session.execute(
            db.select(Notification.id).filter_by(user_id=team["bob"].id).order_by(Notification.id)
        ).scalars())


def test_notifications_list_and_mark_read(app, api, team):
    bob_ids = _mention_bob(app, team, 3)
    client = api(team["bob"])
    body = client.get("/notifications").get_json()
    assert body["unread"] == 3
    assert [n["id"] for n in body["notifications"]] == bob_ids[::-1]
    first = body["notifications"][0]
    assert set(first) == {"id", "kind", "room_id", "message", "created_at", "read_at"}
    assert first["kind"] == "mention" and first["read_at"] is None and first["message"]["body"] == "@bob @carol #2"

    response = client.post("/notifications/read", json={"ids": [bob_ids[0]]})
    assert response.status_code == 200 and response.get_json() == {"marked": 1, "unread": 2}
    unread = client.get("/notifications?unread=1").get_json()
    assert [n["id"] for n in unread["notifications"]] == bob_ids[:0:-1] and unread["unread"] == 2
    assert client.get("/notifications?unread=true").get_json()["notifications"] == unread["notifications"]

    assert client.post("/notifications/read", json={"all": True}).get_json() == {"marked": 2, "unread": 0}
    assert api(team["carol"]).get("/notifications").get_json()["unread"] == 3
    read = client.get("/notifications").get_json()["notifications"]
    assert all(n["read_at"] is not None for n in read)


def test_mark_other_users_notifications_does_nothing(app, api, team):
    _mention_bob(app, team, 2)
    with app.app_context():
        carol_ids = list(db.session.execute(
            db.select(Notification.id).filter_by(user_id=team["carol"].id)
        ).scalars())
    response = api(team["bob"]).post("/notifications/read", json={"ids": carol_ids})
    assert response.get_json() == {"marked": 0, "unread": 2}
    assert api(team["carol"]).get("/notifications").get_json()["unread"] == 2


@pytest.mark.parametrize(
    "payload",
    [{}, {"ids": []}, {"ids": None}, {"ids": "1"}, {"ids": 1}, {"ids": [True]}, {"ids": [0]}, {"ids": [-1]},
     {"ids": [1.5]}, {"ids": ["1"]}, {"ids": [HUGE]}, {"ids": [[1]]}, {"ids": list(range(1, 502))},
     {"all": "true"}, {"all": 1}, {"all": None}, {"all": False}],
)
def test_mark_notifications_read_invalid(app, api, team, payload):
    _mention_bob(app, team, 1)
    assert error_of(api(team["bob"]).post("/notifications/read", json=payload), 400)["code"] == "invalid"
    assert api(team["bob"]).get("/notifications").get_json()["unread"] == 1


# --- CSRF ----------------------------------------------------------------------------------

@pytest.fixture
def csrf_app(tmp_path):
    """An app that checks CSRF tokens, as in production."""
    config = type("CsrfCfg", (TestConfig,), {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'csrf.db'}", "WTF_CSRF_ENABLED": True,
    })
    app = create_app(config)
    with app.app_context():
        db.create_all()
        user = UserFactory(username="alice")
        ref = SimpleNamespace(id=user.id, username=user.username)
    yield app, ref
    with app.app_context():
        db.engine.dispose()


def _cookie_client(app, user):
    """A client whose session cookie logs the user in, and the CSRF token for that session."""
    client = app.test_client()
    with app.test_request_context():
        token = generate_csrf()
        raw = session["csrf_token"]
    with app.app_context():
        from app.actions import users

        login_id = users.do_start_session(db.session.get(User, user.id)).get_id()
    with client.session_transaction() as sess:
        sess["_user_id"] = login_id
        sess["_fresh"] = True
        sess["csrf_token"] = raw
    return client, token


def test_cookie_post_without_csrf_token_is_refused(csrf_app):
    app, alice = csrf_app
    client, token = _cookie_client(app, alice)
    assert client.get("/api/v1/me").status_code == 200  # reads need no token

    refused = client.post("/api/v1/rooms", json={"name": "general"})
    error = error_of(refused, 400)
    assert error["code"] == "csrf_failed"
    refused = client.post("/api/v1/rooms", json={"name": "general"}, headers={"X-CSRFToken": "forged"})
    assert error_of(refused, 400)["code"] == "csrf_failed"
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Room.id))).scalar_one() == 0

    accepted = client.post("/api/v1/rooms", json={"name": "general"}, headers={"X-CSRFToken": token})
    assert accepted.status_code == 201, accepted.get_data(as_text=True)


def test_bearer_post_needs_no_csrf_token(csrf_app):
    from app.actions.users import do_create_api_token

    app, alice = csrf_app
    with app.app_context():
        token = do_create_api_token(db.session.get(User, alice.id))
    response = app.test_client().post(
        "/api/v1/rooms", json={"name": "general"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(db.select(Room.name)).scalar_one() == "general"
