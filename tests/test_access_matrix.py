"""Who may do what: every REST route and socket event against every kind of caller.

Roles: anonymous; `stranger` (logged in, in no room); `member`; `owner` of the room;
`admin` (an administrator who is not a member: administration happens in /admin, and a
private room stays invisible to the API like to anyone else outside it).
"""
from __future__ import annotations

import pytest

from app.extensions import socketio

ROLES = ("anonymous", "stranger", "member", "owner", "admin")


@pytest.fixture
def world(make_user, make_room, bearer):
    """A public and a private room owned by `owner` with `member` in both; headers per role."""
    owner, member = make_user("owner"), make_user("member")
    stranger, admin = make_user("stranger"), make_user("admin", is_admin=True)
    make_user("carol")
    users = {"owner": owner, "member": member, "stranger": stranger, "admin": admin}
    public = make_room(owner, "public", members=[member])
    private = make_room(owner, "private", members=[member], is_private=True)
    headers = {role: bearer(user) for role, user in users.items()}
    headers["anonymous"] = {}
    return {"users": users, "public": public, "private": private, "headers": headers}


# route, method, JSON body, expected (status, error code or None) per role, for each room kind.
PRIVATE = [
    ("GET", "/rooms/{id}", None, ["401", "404", "200", "200", "404"]),
    ("GET", "/rooms/{id}/members", None, ["401", "404", "200", "200", "404"]),
    ("POST", "/rooms/{id}/members", {}, ["401", "404", "200", "200", "404"]),
    ("POST", "/rooms/{id}/members", {"username": "carol"}, ["401", "404", "403 forbidden", "201", "404"]),
    ("DELETE", "/rooms/{id}/members/me", None, ["401", "404", "204", "204", "404"]),
    ("GET", "/rooms/{id}/messages", None, ["401", "404", "200", "200", "404"]),
    ("POST", "/rooms/{id}/messages", {"body": "hi"}, ["401", "404", "201", "201", "404"]),
    ("POST", "/rooms/{id}/read", None, ["401", "404", "200", "200", "404"]),
]
PUBLIC = [
    ("GET", "/rooms/{id}", None, ["401", "200", "200", "200", "200"]),
    ("GET", "/rooms/{id}/members", None, ["401", "403 not_member", "200", "200", "403 not_member"]),
    ("POST", "/rooms/{id}/members", {}, ["401", "200", "200", "200", "200"]),
    ("POST", "/rooms/{id}/members", {"username": "carol"}, ["401", "403 not_member", "201", "201", "403 not_member"]),
    ("DELETE", "/rooms/{id}/members/me", None, ["401", "403 not_member", "204", "204", "403 not_member"]),
    ("GET", "/rooms/{id}/messages", None, ["401", "403 not_member", "200", "200", "403 not_member"]),
    ("POST", "/rooms/{id}/messages", {"body": "hi"}, ["401", "403 not_member", "201", "201", "403 not_member"]),
    ("POST", "/rooms/{id}/read", None, ["401", "403 not_member", "200", "200", "403 not_member"]),
]
UNSCOPED = [
    ("GET", "/rooms", None, ["401", "200", "200", "200", "200"]),
    ("POST", "/rooms", {"name": "fresh-room"}, ["401", "201", "201", "201", "201"]),
    ("GET", "/me", None, ["401", "200", "200", "200", "200"]),
    ("GET", "/notifications", None, ["401", "200", "200", "200", "200"]),
    ("POST", "/notifications/read", {"all": True}, ["401", "200", "200", "200", "200"]),
    ("GET", "/tokens", None, ["401", "200", "200", "200", "200"]),
]


def _cells(table, kind):
    for method, path, body, expected in table:
        for role, outcome in zip(ROLES, expected):
            yield pytest.param(kind, method, path, body, role, outcome, id=f"{kind}-{method}-{path}-{body}-{role}")


CELLS = [*_cells(PRIVATE, "private"), *_cells(PUBLIC, "public"), *_cells(UNSCOPED, "none")]


@pytest.mark.parametrize(("kind", "method", "path", "body", "role", "outcome"), CELLS)
def test_rest_access(app, world, kind, method, path, body, role, outcome):
    status, _, code = outcome.partition(" ")
    if kind != "none":
        path = path.format(id=world[kind].id)
    response = app.test_client().open(
        f"/api/v1{path}", method=method, json=body, headers=world["headers"][role]
    )
    assert response.status_code == int(status), response.get_data(as_text=True)
    if status.startswith("4"):
        error = response.get_json()["error"]
        assert error["code"] == (code or {"401": "unauthorized", "404": "not_found"}[status])
    if status == "404":
        # "Not found" for an outsider is word for word the answer for a room that does not exist.
        missing = app.test_client().open(
            f"/api/v1{path.replace(str(world[kind].id), '999999')}", method=method, json=body,
            headers=world["headers"][role],
        )
        assert (missing.status_code, missing.get_json()) == (404, response.get_json())


def test_revoking_someone_elses_token_is_not_found(app, world, token_for):
    token_for(world["users"]["member"])
    with app.app_context():
        from app.models import ApiToken
        from app.extensions import db

        member_token_id = db.session.execute(
            db.select(ApiToken.id).filter_by(user_id=world["users"]["member"].id)
        ).scalars().first()
    response = app.test_client().delete(f"/api/v1/tokens/{member_token_id}", headers=world["headers"]["stranger"])
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert app.test_client().get("/api/v1/me", headers=world["headers"]["member"]).status_code == 200


SOCKET = {
    "private": {"stranger": "not_found", "member": None, "owner": None, "admin": "not_found"},
    "public": {"stranger": "not_member", "member": None, "owner": None, "admin": "not_member"},
}


@pytest.mark.parametrize("event", ["send", "read"])
@pytest.mark.parametrize("kind", ["private", "public"])
@pytest.mark.parametrize("role", ["stranger", "member", "owner", "admin"])
def test_socket_access(app, world, token_for, event, kind, role):
    client = socketio.test_client(app, auth={"token": token_for(world["users"][role])})
    assert client.is_connected()
    payload = {"room_id": world[kind].id}
    if event == "send":
        payload.update(body="hello", client_id=f"{role}-{kind}")
    ack = client.emit(event, payload, callback=True)
    expected = SOCKET[kind][role]
    if expected is None:
        assert ack["ok"] is True
    else:
        assert ack["ok"] is False and ack["error"]["code"] == expected
    client.disconnect()


def test_anonymous_socket_is_refused(app):
    client = socketio.test_client(app)
    assert not client.is_connected()


@pytest.mark.parametrize(
    ("role", "status"), [("stranger", 404), ("member", 200), ("owner", 200), ("admin", 404)]
)
def test_private_room_page(app, world, login, role, status):
    response = login(world["users"][role]).get(f"/rooms/{world['private'].id}")
    assert response.status_code == status


def test_private_room_page_sends_anonymous_users_to_log_in(app, world):
    response = app.test_client().get(f"/rooms/{world['private'].id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
