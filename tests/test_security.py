"""Security baseline: headers, secrets, CSRF, origins, rate limits, tokens, input caps."""
from __future__ import annotations

import time

import pytest

from app import create_app
from app.config import TestConfig
from app.extensions import db, socketio
from app.models import ApiToken
from app.security import ConfigError
from tests.factories import PASSWORD


def test_security_headers_on_pages_and_api(app, make_user, login):
    client = login(make_user("alice"))
    for path in ("/", "/api/v1/me", "/login", "/does-not-exist"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "'self'" in script_src
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"


def test_admin_scripts_carry_the_responses_csp_nonce(app, make_user, login):
    # Flask-Admin renders its (few) inline scripts with the nonce the CSP allows.
    response = login(make_user("root", is_admin=True)).get("/admin/user/")
    nonce = response.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    tags = [chunk.split(">")[0] for chunk in response.get_data(as_text=True).split("<script")[1:]]
    assert tags and all(f'nonce="{nonce}"' in tag for tag in tags)


def test_production_refuses_the_default_secret_key(tmp_path):
    config = type("Prod", (TestConfig,), {"CHORUS_ENV": "production", "SECRET_KEY": "chorus-embedded-dev-key",
                                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/p.db"})
    with pytest.raises(ConfigError):
        create_app(config)
    config.SECRET_KEY = "short"
    with pytest.raises(ConfigError):
        create_app(config)
    config.SECRET_KEY = "x" * 40
    assert create_app(config).config["SECRET_KEY"] == "x" * 40


def test_session_cookie_flags(app, make_user):
    response = app.test_client().post("/login", data={"username": make_user("alice").username,
                                                      "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_cookie_forms_need_a_csrf_token(tmp_path, make_user):
    config = type("Csrf", (TestConfig,), {"WTF_CSRF_ENABLED": True,
                                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/c.db"})
    app = create_app(config)
    with app.app_context():
        db.create_all()
    response = app.test_client().post("/login", data={"username": "x", "password": "y"})
    assert response.status_code == 400  # the form is refused before any credential check


def test_oversized_json_body_is_413(app, make_user, bearer, make_room):
    alice = make_user("alice")
    room = make_room(alice, "general")
    response = app.test_client().post(
        f"/api/v1/rooms/{room.id}/messages", json={"body": "x" * 70_000}, headers=bearer(alice)
    )
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "too_large"


# --- API tokens ------------------------------------------------------------------------

def test_token_page_shows_a_new_token_once_and_revokes(app, make_user, login):
    alice = make_user("alice")
    client = login(alice)
    created = client.post("/account/tokens", data={"name": "deploy-bot"})
    assert created.status_code == 200
    html = created.get_data(as_text=True)
    token = html.split('class="token-value">')[1].split("<")[0]
    api = app.test_client()
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with app.app_context():
        row = db.session.execute(db.select(ApiToken).filter_by(user_id=alice.id)).scalar_one()
        assert row.name == "deploy-bot" and token not in row.token_hash
        token_id = row.id
    listing = client.get("/account").get_data(as_text=True)
    assert "deploy-bot" in listing and token not in listing
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert not socketio.test_client(app, auth={"token": token}).is_connected()


def test_revoking_a_token_closes_the_users_sockets(app, make_user, token_for, bearer):
    alice = make_user("alice")
    token = token_for(alice)
    sock = socketio.test_client(app, auth={"token": token})
    assert sock.is_connected()
    headers = {"Authorization": f"Bearer {token}"}
    tokens = app.test_client().get("/api/v1/tokens", headers=headers).get_json()["tokens"]
    assert [t["revoked_at"] for t in tokens] == [None]
    response = app.test_client().delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=bearer(alice))
    assert response.status_code == 204
    assert not sock.is_connected()


# --- Rate limits ------------------------------------------------------------------------

@pytest.fixture
def limited_app(tmp_path):
    """An app with rate limiting on and tiny windows, so tests see limits hold and reset."""
    config = type("Limited", (TestConfig,), {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/l.db",
        "RATELIMIT_ENABLED": True,
        "LOGIN_RATE_LIMIT": "4 per 2 seconds",
        "API_RATE_LIMIT": "1000 per minute",
        "REGISTER_RATE_LIMIT": "2 per 2 seconds",
        "LOGIN_FAILURES_PER_ACCOUNT": "3 per 2 seconds",
        "LOGIN_FAILURES_PER_ADDRESS": "100 per 2 seconds",
        "SOCKET_EVENT_LIMITS": {"send": "3 per 2 seconds", "react": "4 per 2 seconds"},
        "SOCKET_DEFAULT_LIMIT": "100 per 2 seconds",
    })
    app = create_app(config)
    with app.app_context():
        db.create_all()
    return app


def _wait_for_window():
    time.sleep(2.1)


def test_socket_send_limit_holds_and_resets(limited_app):
    from tests.factories import UserFactory
    from app.actions import rooms, users

    with limited_app.app_context():
        alice = UserFactory(username="alice")
        room = rooms.do_create_room(alice, "general")
        room_id = room.id
        token = users.do_create_api_token(alice)
    client = socketio.test_client(limited_app, auth={"token": token})
    acks = [client.emit("send", {"room_id": room_id, "body": f"m{i}", "client_id": f"c{i}"}, callback=True)
            for i in range(4)]
    assert [a["ok"] for a in acks] == [True, True, True, False]
    assert acks[3]["error"]["code"] == "rate_limited" and 1 <= acks[3]["error"]["retry_after"] <= 2
    _wait_for_window()
    again = client.emit("send", {"room_id": room_id, "body": "later", "client_id": "c9"}, callback=True)
    assert again["ok"] is True
    client.disconnect()


def test_toggling_a_reaction_in_a_loop_is_rate_limited(limited_app):
    from tests.factories import UserFactory
    from app.actions import messages, rooms, users
    from app.models import Reaction

    with limited_app.app_context():
        alice = UserFactory(username="alice")
        room = rooms.do_create_room(alice, "general")
        message_id = messages.do_send_message(alice, room.id, "react to me").message.id
        token = users.do_create_api_token(alice)
    client = socketio.test_client(limited_app, auth={"token": token})
    acks = [client.emit("react", {"message_id": message_id, "emoji": "👍", "on": i % 2 == 0}, callback=True)
            for i in range(6)]
    assert [a["ok"] for a in acks] == [True, True, True, True, False, False]
    assert acks[4]["error"]["code"] == "rate_limited"
    with limited_app.app_context():  # the four accepted toggles ended with no reaction, as the acks said
        assert db.session.execute(db.select(db.func.count()).select_from(Reaction)).scalar() == 0
        assert acks[3]["message"]["reactions"] == []
    client.disconnect()


def test_login_failures_slow_down_the_account_then_reset(limited_app):
    from tests.factories import UserFactory

    with limited_app.app_context():
        UserFactory(username="alice")
    client = limited_app.test_client()
    for _ in range(3):
        assert client.post("/api/v1/auth/token", json={"username": "alice", "password": "wrong-pw!"}).status_code == 401
    blocked = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert blocked.status_code == 429  # even the right password waits
    assert blocked.get_json()["error"]["code"] == "rate_limited" and int(blocked.headers["Retry-After"]) >= 1
    _wait_for_window()
    assert client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}).status_code == 200


def test_login_route_limit_holds_and_resets(limited_app):
    client = limited_app.test_client()
    statuses = [client.post("/api/v1/auth/token", json={"username": f"nobody{i}", "password": "x" * 8}).status_code
                for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    _wait_for_window()
    assert client.post("/api/v1/auth/token", json={"username": "nobody", "password": "x" * 8}).status_code == 401


def test_registration_limit(limited_app, fast_hashing):
    client = limited_app.test_client()
    statuses = [client.post("/api/v1/users", json={"username": f"new{i}", "password": "long-enough-1"}).status_code
                for i in range(3)]
    assert statuses == [201, 201, 429]
    body = client.post("/api/v1/users", json={"username": "new9", "password": "long-enough-1"}).get_json()
    assert body["error"]["code"] == "rate_limited" and body["error"]["retry_after"] >= 1
