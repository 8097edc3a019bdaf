"""Logins, tokens and HTTP edges: lockouts, bearer-only requests, 4xx for hostile input, caching, /metrics."""
from __future__ import annotations

import re
import time

import pytest
from flask import session
from flask_wtf.csrf import generate_csrf

from app import create_app
from app.actions import users
from app.config import TestConfig
from app.extensions import db, socketio
from app.models import Message, Room, User
from tests.factories import PASSWORD, UserFactory

STRANGER = {"REMOTE_ADDR": "198.51.100.7"}
OWNER = {"REMOTE_ADDR": "192.0.2.10"}


def _app(tmp_path, name="h", **settings):
    config = type("Hardening", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / (name + '.db')}",
                                               **settings})
    app = create_app(config)
    with app.app_context():
        db.create_all()
        UserFactory(username="alice")
        UserFactory(username="bob")
    return app


@pytest.fixture
def limited(tmp_path):
    """Rate limits on, failed logins locked for 15 minutes after 3 per account and address."""
    return _app(tmp_path, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="100 per minute", API_RATE_LIMIT="1000 per minute",
                LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS="3 per 15 minutes",
                LOGIN_FAILURES_PER_ACCOUNT="5 per 15 minutes", LOGIN_FAILURES_PER_ADDRESS="100 per 15 minutes")


def _token_login(client, username, password, environ=None):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       environ_base=environ or OWNER)


def _form_login(client, username, password, environ=None):
    return client.post("/login", data={"username": username, "password": password}, environ_base=environ or OWNER)


def _token(app, username) -> str:
    with app.app_context():
        return users.do_create_api_token(users.get_user_by_username(username))


# --- Failed logins: per account and address, a ceiling per account, a true Retry-After ------

def test_a_strangers_wrong_passwords_do_not_lock_the_owner_out(limited):
    client = limited.test_client()
    statuses = [_token_login(client, "alice", "wrong-pw!", STRANGER).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]  # the stranger is locked out of alice's account
    assert _token_login(client, "alice", PASSWORD).status_code == 200  # alice, from her address, is not
    assert _form_login(limited.test_client(), "alice", PASSWORD).status_code == 302


def test_the_per_account_ceiling_holds_across_addresses(limited):
    client = limited.test_client()
    for i in range(5):  # five addresses, one failure each: none reaches its own limit
        assert _token_login(client, "alice", "wrong-pw!", {"REMOTE_ADDR": f"203.0.113.{i}"}).status_code == 401
    refused = _token_login(client, "alice", PASSWORD)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert _token_login(client, "bob", PASSWORD).status_code == 200  # other accounts are untouched


def test_retry_after_tells_how_long_the_lock_lasts_on_the_api_and_the_form(limited):
    client = limited.test_client()
    for _ in range(3):
        _token_login(client, "alice", "wrong-pw!")
    refused = _token_login(client, "alice", PASSWORD)
    body = refused.get_json()["error"]
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == body["retry_after"]
    assert 15 * 60 - 5 <= body["retry_after"] <= 15 * 60  # the lock's length, not the route's minute
    assert "15 minutes" in body["message"]

    form = _form_login(client, "alice", PASSWORD)
    assert form.status_code == 429
    assert 15 * 60 - 5 <= int(form.headers["Retry-After"]) <= 15 * 60
    assert "try again in 15 minutes" in form.get_data(as_text=True)


def test_a_login_is_accepted_once_retry_after_has_passed(tmp_path):
    app = _app(tmp_path, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="100 per minute",
               LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS="2 per 2 seconds")
    client = app.test_client()
    for _ in range(2):
        _token_login(client, "alice", "wrong-pw!")
    refused = _token_login(client, "alice", PASSWORD)
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait + 0.05)
    assert _token_login(client, "alice", PASSWORD).status_code == 200


# --- A bearer header authenticates alone ---------------------------------------------------

@pytest.fixture
def csrf_app(tmp_path):
    """CSRF checked as in production."""
    return _app(tmp_path, "csrf", WTF_CSRF_ENABLED=True)


def _cookie_client(app, username):
    """A client logged in as username by its session cookie (no CSRF token sent)."""
    client = app.test_client()
    with app.test_request_context():
        generate_csrf()
        raw = session["csrf_token"]
    with app.app_context():
        login_id = users.do_start_session(users.get_user_by_username(username)).get_id()
    with client.session_transaction() as sess:
        sess["_user_id"] = login_id
        sess["_fresh"] = True
        sess["csrf_token"] = raw
    return client


def test_a_junk_bearer_token_beside_a_valid_cookie_is_401_not_a_csrf_bypass(csrf_app):
    client = _cookie_client(csrf_app, "alice")
    assert client.get("/api/v1/me").get_json()["username"] == "alice"
    junk = {"Authorization": "Bearer junk"}
    assert client.get("/api/v1/me", headers=junk).status_code == 401
    refused = client.post("/api/v1/rooms", json={"name": "forged"}, headers=junk)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
    with csrf_app.app_context():
        assert db.session.execute(db.select(db.func.count(Room.id))).scalar_one() == 0


def test_a_good_bearer_token_acts_as_its_user_whatever_the_cookie(csrf_app):
    client = _cookie_client(csrf_app, "alice")
    bob = {"Authorization": f"Bearer {_token(csrf_app, 'bob')}"}
    assert client.get("/api/v1/me", headers=bob).get_json()["username"] == "bob"
    created = client.post("/api/v1/rooms", json={"name": "bobs"}, headers=bob)
    assert created.status_code == 201
    with csrf_app.app_context():
        room = db.session.execute(db.select(Room)).scalar_one()
        assert db.session.get(User, room.owner_id).username == "bob"


# --- Login and registration attempts count per address, whoever is logged in ---------------

def test_a_bearer_token_does_not_lift_the_login_limit_of_the_address(tmp_path):
    app = _app(tmp_path, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="4 per minute")
    client = app.test_client()
    alice = {"Authorization": f"Bearer {_token(app, 'alice')}"}
    bob = {"Authorization": f"Bearer {_token(app, 'bob')}"}
    statuses = [client.post("/api/v1/auth/token", json={"username": f"guess{i}", "password": "x" * 8},
                            headers=alice).status_code for i in range(4)]
    assert statuses == [401] * 4
    again = client.post("/api/v1/auth/token", json={"username": "guess9", "password": "x" * 8}, headers=bob)
    assert again.status_code == 429
    assert client.post("/login", data={"username": "guess9", "password": "x" * 8}).status_code == 429


def test_the_registration_form_and_the_api_share_one_allowance(tmp_path, fast_hashing):
    app = _app(tmp_path, RATELIMIT_ENABLED=True, REGISTER_RATE_LIMIT="2 per hour")
    client = app.test_client()
    form = client.post("/register", data={"username": "new1", "password": "long-enough-1",
                                          "confirm": "long-enough-1"})
    assert form.status_code == 302, form.get_data(as_text=True)
    api = app.test_client()
    assert api.post("/api/v1/users", json={"username": "new2", "password": "long-enough-1"}).status_code == 201
    refused = api.post("/api/v1/users", json={"username": "new3", "password": "long-enough-1"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 60
    refused = app.test_client().post("/register", data={"username": "new4", "password": "long-enough-1",
                                                        "confirm": "long-enough-1"})
    assert refused.status_code == 429


# --- Hostile input is a 4xx, never a 500 ---------------------------------------------------

@pytest.fixture
def plain(tmp_path):
    return _app(tmp_path)


DEEP = ["[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000]


@pytest.mark.parametrize("body", DEEP, ids=["arrays", "objects"])
@pytest.mark.parametrize("route", ["/api/v1/users", "/api/v1/auth/token", "/api/v1/rooms"])
def test_deeply_nested_json_is_a_json_400(plain, route, body):
    headers = {"Authorization": f"Bearer {_token(plain, 'alice')}", "Content-Type": "application/json"}
    response = plain.test_client().post(route, data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == {"code": "invalid", "message": "The JSON is nested too deeply."}


def test_malformed_json_is_a_json_400(plain):
    response = plain.test_client().post("/api/v1/users", data=b'{"username": "x"', content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid"


def test_a_lone_surrogate_is_refused_over_rest(plain):
    token = _token(plain, "alice")
    client = plain.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    room = client.post("/api/v1/rooms", json={"name": "general"}, headers=headers).get_json()
    for route, body in [
        (f"/api/v1/rooms/{room['id']}/messages", '{"body": "hi \\ud800"}'),
        ("/api/v1/rooms", '{"name": "ok", "topic": "\\udfff"}'),
        ("/api/v1/users", '{"username": "carol", "password": "long-enough-1", "display_name": "\\ud800"}'),
        ("/api/v1/auth/token", '{"username": "alice", "password": "\\ud800\\ud800\\ud800\\ud800"}'),
    ]:
        response = client.post(route, data=body, headers=headers)
        assert response.status_code == 400, (route, response.get_data(as_text=True))
        assert response.get_json()["error"]["code"] == "invalid"
    with plain.app_context():
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 0


def test_a_lone_surrogate_is_refused_over_the_socket(plain):
    token = _token(plain, "alice")
    client = plain.test_client()
    room = client.post("/api/v1/rooms", json={"name": "general"},
                       headers={"Authorization": f"Bearer {token}"}).get_json()
    sock = socketio.test_client(plain, auth={"token": token})
    ack = sock.emit("send", {"room_id": room["id"], "body": "hi \ud800", "client_id": "c1"}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid" and ack["error"]["field"] == "body"
    assert sock.emit("send", {"room_id": room["id"], "body": "hi", "client_id": "c2"}, callback=True)["ok"] is True
    sock.disconnect()


@pytest.mark.parametrize("target", ["/rooms/1%0d%0aSet-Cookie:%20x=y", "/x%0aLocation:%20//evil.example",
                                    "/%5Cevil.example", "/%09/evil.example"])
def test_a_hostile_next_after_login_goes_to_the_index(plain, target):
    response = plain.test_client().post(f"/login?next={target}", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_a_safe_next_after_login_is_kept(plain):
    response = plain.test_client().post("/login?next=/rooms/1%3Faround%3D5", data={"username": "alice",
                                                                                "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/rooms/1?around=5"


@pytest.mark.parametrize("page", ["99999999999999999999", "9223372036854775807", "-1"])
def test_an_admin_page_number_beyond_any_offset_is_400(plain, page):
    with plain.app_context():
        UserFactory(username="root", is_admin=True)
    client = plain.test_client()
    assert _form_login(client, "root", PASSWORD).status_code == 302
    assert client.get(f"/admin/user/?page={page}").status_code == 400
    assert client.get("/admin/user/?page=1").status_code == 200


# --- Caching and /metrics --------------------------------------------------------------------

def test_token_bearing_and_authenticated_responses_are_not_stored(plain):
    client = plain.test_client()
    issued = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    bearer = {"Authorization": f"Bearer {issued.get_json()['token']}"}
    assert client.get("/api/v1/tokens", headers=bearer).headers["Cache-Control"] == "no-store"
    assert _form_login(client, "alice", PASSWORD).status_code == 302
    page = client.post("/account/tokens", data={"name": "bot"})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    for path in ("/", "/account", "/login", "/api/v1/me"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    static = client.get("/static/js/room.js")
    assert static.status_code == 200 and "no-store" not in static.headers["Cache-Control"]


def test_metrics_are_served_to_local_scrapers_only_by_default(plain):
    client = plain.test_client()
    local = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.status_code == 200 and b"chorus_connected_sockets" in local.data
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403 and b"chorus_" not in remote.data
    # A proxy on the same host forwards for somebody else.
    proxied = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                         headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403


def test_metrics_with_a_token_need_it_from_everywhere(tmp_path):
    app = _app(tmp_path, METRICS_TOKEN="scrape-secret-123")
    client = app.test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 401
    assert client.get("/metrics").status_code == 401  # local too: the token is the rule
    wrong = client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer scrape-secret-12"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    right = client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer scrape-secret-123"})
    assert right.status_code == 200 and b"chorus_connected_sockets" in right.data


def test_forwarded_host_is_dropped_without_a_trusted_proxy(plain):
    seen = {}

    @plain.get("/_probe_host")
    def probe():
        from flask import request

        seen.update(host=request.host, forwarded=request.headers.get("X-Forwarded-Host"))
        return ""

    plain.test_client().get("/_probe_host", headers={"Host": "chat.example", "X-Forwarded-Host": "evil.example",
                                                      "X-Forwarded-Proto": "https"})
    assert seen == {"host": "chat.example", "forwarded": None}


def test_the_lone_surrogate_check_leaves_real_text_alone(plain):
    token = _token(plain, "alice")
    client = plain.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    room = client.post("/api/v1/rooms", json={"name": "general"}, headers=headers).get_json()
    body = "emoji \U0001F600 and accents é, CJK 漢字"
    sent = client.post(f"/api/v1/rooms/{room['id']}/messages", json={"body": body}, headers=headers)
    assert sent.status_code == 201 and sent.get_json()["body"] == body


def test_failed_login_form_pages_count_like_the_api(limited):
    # One set of counters for both doors: failures on the form lock the API for that address too.
    client = limited.test_client()
    for _ in range(3):
        assert _form_login(client, "alice", "wrong-pw!", STRANGER).status_code == 401
    assert _token_login(client, "alice", PASSWORD, STRANGER).status_code == 429
    assert re.search(r"\d", _form_login(client, "alice", PASSWORD, STRANGER).headers["Retry-After"])
