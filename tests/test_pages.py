"""Server-rendered pages: accounts, the lobby, a room, and the forms on them."""
from __future__ import annotations

import re

import pytest

from app import create_app
from app.actions import messages
from app.config import TestConfig
from app.extensions import db
from app.lib.access import get_membership
from app.models import Room, User
from tests.factories import PASSWORD, UserFactory


def text(response) -> str:
    return response.get_data(as_text=True)


def is_member(app, user, room_id) -> bool:
    with app.app_context():
        return get_membership(room_id, user.id) is not None


# --- Accounts ------------------------------------------------------------------------------

def test_register_creates_an_account_and_logs_in(app, fast_hashing):
    client = app.test_client()
    assert client.get("/register").status_code == 200
    response = client.post("/register", data={
        "username": "Newbie", "display_name": "New Person", "password": "long-enough-pw", "confirm": "long-enough-pw",
    })
    assert response.status_code == 302 and response.headers["Location"] == "/"
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username_key="newbie")).scalar_one()
        assert (user.username, user.display_name) == ("Newbie", "New Person")
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.get_json()["username"] == "Newbie"
    assert "New Person" in text(client.get("/"))


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"username": "taken", "password": "long-enough-pw", "confirm": "long-enough-pw"}, "That username is taken."),
        ({"username": "TAKEN", "password": "long-enough-pw", "confirm": "long-enough-pw"}, "That username is taken."),
        ({"username": "bad name", "password": "long-enough-pw", "confirm": "long-enough-pw"}, "1-32 letters"),
        ({"username": "fresh", "password": "long-enough-pw", "confirm": "different-pw"}, "Passwords differ."),
        ({"username": "fresh", "password": "short", "confirm": "short"}, "8"),
    ],
)
def test_register_errors_are_shown(app, make_user, fast_hashing, data, needle):
    make_user("taken")
    client = app.test_client()
    response = client.post("/register", data=data)
    assert response.status_code == 400
    assert needle in text(response)
    assert client.get("/api/v1/me").status_code == 401
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 1


def test_register_when_closed(app, fast_hashing):
    app.config["REGISTRATION_OPEN"] = False
    client = app.test_client()
    assert client.get("/register").status_code == 403
    data = {"username": "newbie", "password": "long-enough-pw", "confirm": "long-enough-pw"}
    assert client.post("/register", data=data).status_code == 403
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 0


def test_login_page_and_bad_password(app, make_user):
    make_user("alice")
    client = app.test_client()
    assert client.get("/login").status_code == 200
    response = client.post("/login", data={"username": "alice", "password": "wrong-password"})
    assert response.status_code == 401
    assert "Wrong username or password." in text(response)
    assert client.get("/api/v1/me").status_code == 401
    response = client.post("/login", data={"username": "nobody", "password": "whatever-pw"})
    assert response.status_code == 401 and "Wrong username or password." in text(response)
    assert client.post("/login", data={"username": "", "password": ""}).status_code == 400


def test_disabled_user_cannot_log_in(app, make_user):
    make_user("alice", is_disabled=True)
    response = app.test_client().post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("next_url", "location"),
    [("/rooms/1", "/rooms/1"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
     ("/\\evil.example", None), ("javascript:alert(1)", "/"), (None, "/")],
)
def test_login_redirects_only_to_local_paths(app, make_user, next_url, location):
    make_user("alice")
    url = "/login" if next_url is None else f"/login?next={next_url}"
    response = app.test_client().post(url, data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    target = response.headers["Location"]
    if location is not None:
        assert target == location
    # Browsers read "//host" and "/\\host" as another site.
    assert target.startswith("/") and not target.startswith(("//", "/\\"))


def test_logout_is_post_only(app, team, login):
    client = login(team["alice"])
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("url", ["/", "/rooms/1", "/notifications"])
def test_pages_need_login(app, url):
    response = app.test_client().get(url)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={url}"


# --- Lobby and rooms -----------------------------------------------------------------------

def test_lobby_lists_rooms(app, team, make_room, login):
    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    make_room(alice, "alice-secret", is_private=True)
    make_room(bob, "bob-secret", is_private=True)
    make_room(alice, "random", topic="Anything goes")
    page = text(login(bob).get("/"))
    for name in ("general", "random", "bob-secret"):
        assert name in page
    assert "alice-secret" not in page
    assert "Anything goes" in page
    lobby_for_dave = text(login(dave).get("/"))
    assert "general" in lobby_for_dave and "bob-secret" not in lobby_for_dave
    assert f'action="/rooms/{team["room"].id}/join"' in lobby_for_dave


def test_room_page_renders_the_last_50_messages(app, team, login):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        author = db.session.get(User, alice.id)
        ids = [messages.do_send_message(author, room.id, f"line-{i:03d}-end").message.id for i in range(60)]
    response = login(bob).get(f"/rooms/{room.id}")
    assert response.status_code == 200
    page = text(response)
    rendered = [int(i) for i in re.findall(r'id="message-(\d+)"', page)]
    assert rendered == ids[-50:]
    for i in range(10, 60):
        assert f"line-{i:03d}-end" in page
    for i in range(10):
        assert f"line-{i:03d}-end" not in page


def test_room_page_shows_sanitised_html(app, team, login):
    alice, room = team["alice"], team["room"]
    with app.app_context():
        author = db.session.get(User, alice.id)
        author.display_name = "<b>Alice</b>"
        db.session.commit()
        messages.do_send_message(author, room.id, "**bold** <script>alert(1)</script> @bob")
    page = text(login(team["bob"]).get(f"/rooms/{room.id}"))
    assert "<strong>bold</strong>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<span class="mention" data-username="bob">@bob</span>' in page
    assert "<b>Alice</b>" not in page and "&lt;b&gt;Alice&lt;/b&gt;" in page


def test_private_room_of_others_is_404(app, team, make_room, login):
    secret = make_room(team["alice"], "secret", is_private=True)
    with app.app_context():
        messages.do_send_message(db.session.get(User, team["alice"].id), secret.id, "top secret words")
    client = login(team["bob"])
    response = client.get(f"/rooms/{secret.id}")
    assert response.status_code == 404
    assert "top secret words" not in text(response) and "secret" not in text(response).split("<main")[-1]
    assert client.get(f"/rooms/{secret.id + 100}").status_code == 404


def test_public_room_not_joined_shows_a_join_form(app, team, login):
    room = team["room"]
    with app.app_context():
        messages.do_send_message(db.session.get(User, team["alice"].id), room.id, "members only chatter")
    response = login(team["dave"]).get(f"/rooms/{room.id}")
    assert response.status_code == 200
    page = text(response)
    assert f'action="/rooms/{room.id}/join"' in page
    assert "members only chatter" not in page
    assert 'id="composer"' not in page


# --- Forms ---------------------------------------------------------------------------------

def test_create_room_form(app, team, login):
    client = login(team["bob"])
    response = client.post("/rooms", data={"name": "design", "topic": "Pixels", "is_private": "y"})
    assert response.status_code == 302
    with app.app_context():
        room = db.session.execute(db.select(Room).filter_by(name_key="design")).scalar_one()
        assert room.is_private and room.topic == "Pixels" and room.owner_id == team["bob"].id
    assert response.headers["Location"] == f"/rooms/{room.id}"
    assert is_member(app, team["bob"], room.id)
    assert "design" in text(client.get(response.headers["Location"]))


@pytest.mark.parametrize(
    ("name", "needle"),
    [("GENERAL", "A room with that name exists."), ("bad name", "Room names are"), ("", "Give the room a name")],
)
def test_create_room_form_errors(app, team, login, name, needle):
    response = login(team["bob"]).post("/rooms", data={"name": name})
    assert response.status_code == 400
    assert needle in text(response)
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Room.id))).scalar_one() == 1


def test_join_form(app, team, login):
    room, dave = team["room"], team["dave"]
    client = login(dave)
    response = client.post(f"/rooms/{room.id}/join")
    assert response.status_code == 302 and response.headers["Location"] == f"/rooms/{room.id}"
    assert is_member(app, dave, room.id)
    assert 'id="composer"' in text(client.get(f"/rooms/{room.id}"))


def test_join_form_for_a_private_room_changes_nothing(app, team, make_room, login):
    secret = make_room(team["alice"], "secret", is_private=True)
    login(team["bob"]).post(f"/rooms/{secret.id}/join")
    assert not is_member(app, team["bob"], secret.id)


def test_invite_form(app, team, make_user, login):
    room = team["room"]
    erin = make_user("erin")
    client = login(team["bob"])
    response = client.post(f"/rooms/{room.id}/invite", data={"username": " Erin "}, follow_redirects=True)
    assert response.status_code == 200
    assert "erin was added to the room." in text(response)
    assert is_member(app, erin, room.id)
    response = client.post(f"/rooms/{room.id}/invite", data={"username": "ghost"}, follow_redirects=True)
    assert "No such user." in text(response)
    response = client.post(f"/rooms/{room.id}/invite", data={"username": "erin"}, follow_redirects=True)
    assert "erin is already a member." in text(response)


def test_invite_form_private_room_owner_only(app, team, make_room, login):
    secret = make_room(team["alice"], "secret", members=[team["bob"]], is_private=True)
    response = login(team["bob"]).post(f"/rooms/{secret.id}/invite", data={"username": "carol"}, follow_redirects=True)
    assert "Only the room" in text(response)
    assert not is_member(app, team["carol"], secret.id)


def test_leave_form(app, team, login):
    room, bob = team["room"], team["bob"]
    client = login(bob)
    response = client.post(f"/rooms/{room.id}/leave")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert not is_member(app, bob, room.id)
    assert f'action="/rooms/{room.id}/join"' in text(client.get(f"/rooms/{room.id}"))


def test_notifications_page_and_mark_all_read(app, team, login):
    with app.app_context():
        messages.do_send_message(db.session.get(User, team["alice"].id), team["room"].id, "@bob see this")
    client = login(team["bob"])
    page = text(client.get("/notifications"))
    assert "@bob see this" in page
    assert client.get("/api/v1/me").get_json()["unread_notifications"] == 1
    response = client.post("/notifications/read")
    assert response.status_code == 302 and response.headers["Location"] == "/notifications"
    assert client.get("/api/v1/me").get_json()["unread_notifications"] == 0


def test_huge_room_id_page_is_404(team, login):
    assert login(team["bob"]).get(f"/rooms/{2**64}").status_code == 404


# --- With CSRF on, as in production -------------------------------------------------------

def test_forms_need_their_csrf_token(tmp_path):
    config = type("CsrfCfg", (TestConfig,), {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'csrf.db'}", "WTF_CSRF_ENABLED": True,
    })
    app = create_app(config)
    with app.app_context():
        db.create_all()
        UserFactory(username="alice")
    try:
        client = app.test_client()
        login_page = text(client.get("/login"))
        token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
        assert client.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 400
        assert client.post(
            "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
        ).status_code == 302

        assert client.post("/rooms", data={"name": "general"}).status_code == 400
        lobby = text(client.get("/"))
        token = re.search(r'name="csrf_token" value="([^"]+)"', lobby).group(1)
        assert client.post("/rooms", data={"name": "general", "csrf_token": token}).status_code == 302
        assert client.post("/logout").status_code == 400
        assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    finally:
        with app.app_context():
            db.engine.dispose()
