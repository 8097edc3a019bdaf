"""Login sessions that can be revoked, password changes, and a secret key nobody else has."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import event as sa_event

from app import create_app
from app.actions import users
from app.config import TestConfig
from app.extensions import db, socketio
from app.models import User, UserSession
from app.security import ConfigError
from tests.factories import PASSWORD, UserFactory

ROOT = Path(__file__).resolve().parent.parent
NEW_PASSWORD = "a-brand-new-password-1"
PUBLIC_KEY = "chorus-embedded-dev-key"


def login(app, username, password=PASSWORD, remember=False, agent="pytest-browser"):
    """A test client logged in through the form (with "keep me logged in" when remember)."""
    client = app.test_client()
    data = {"username": username, "password": password}
    if remember:
        data["remember"] = "y"
    response = client.post("/login", data=data, headers={"User-Agent": agent})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def cookie(client, name="session"):
    """The value of one cookie the client holds, or None."""
    found = client.get_cookie(name)
    return found.value if found else None


def client_with(app, **cookies):
    """A fresh client holding only the given cookies (as an attacker replaying them would)."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def logged_in(client) -> bool:
    """Whether the client's cookies still log it in, over REST."""
    status = client.get("/api/v1/me").status_code
    assert status in (200, 401)
    return status == 200


def socket_for(app, client):
    """A Socket.IO test client connected with the HTTP client's cookies (or refused)."""
    return socketio.test_client(app, flask_test_client=client)


def live_sessions(app, username) -> list[UserSession]:
    with app.app_context():
        user = users.get_user_by_username(username)
        return users.get_active_sessions(user)


@pytest.fixture
def alice(make_user):
    return make_user("alice")


# --- Logout ends the session -------------------------------------------------------------

def test_the_session_cookie_is_dead_after_logout_over_rest_pages_and_sockets(app, alice):
    client = login(app, "alice")
    old = cookie(client)
    assert logged_in(client_with(app, session=old))
    page_socket = socket_for(app, client)
    assert page_socket.is_connected()

    assert client.post("/logout").status_code == 302
    assert not page_socket.is_connected()

    replay = client_with(app, session=old)
    assert not logged_in(replay)
    page = replay.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert not socket_for(app, replay).is_connected()
    assert live_sessions(app, "alice") == []


def test_the_remember_cookie_differs_per_login_and_dies_with_logout(app, alice):
    first = login(app, "alice", remember=True)
    second = login(app, "alice", remember=True)
    remember_one, remember_two = cookie(first, "remember_token"), cookie(second, "remember_token")
    assert remember_one and remember_two and remember_one != remember_two
    # The remember cookie alone (the browser was closed) logs in, REST and socket alike.
    assert logged_in(client_with(app, remember_token=remember_one))
    assert socket_for(app, client_with(app, remember_token=remember_one)).is_connected()

    first.post("/logout")
    assert not logged_in(client_with(app, remember_token=remember_one))
    assert not socket_for(app, client_with(app, remember_token=remember_one)).is_connected()
    assert logged_in(client_with(app, remember_token=remember_two))  # the other login lives on


def test_cookies_keep_their_flags_and_the_remember_cookie_lasts_thirty_days(app, alice):
    response = app.test_client().post("/login", data={"username": "alice", "password": PASSWORD, "remember": "y"})
    cookies = response.headers.getlist("Set-Cookie")
    remember = next(c for c in cookies if c.startswith("remember_token="))
    session = next(c for c in cookies if c.startswith("session="))
    for flags in (remember, session):
        assert "HttpOnly" in flags and "SameSite=Lax" in flags
    expires = datetime.strptime(remember.split("Expires=")[1].split(";")[0], "%a, %d %b %Y %H:%M:%S GMT")
    days = (expires.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).days
    assert 29 <= days <= 30


def test_production_cookies_are_secure():
    from app.config import ProductionConfig

    assert ProductionConfig.SESSION_COOKIE_SECURE and ProductionConfig.REMEMBER_COOKIE_SECURE


def test_a_bare_user_id_in_a_signed_cookie_logs_nobody_in(app, alice):
    """Cookies from before sessions were rows (or forged with a known key) carry a bare id."""
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = str(alice.id)
        sess["_fresh"] = True
    assert not logged_in(client)
    with client.session_transaction() as sess:
        sess["_user_id"] = f"{alice.id}:not-the-secret-of-any-session"
    assert not logged_in(client)
    assert not socket_for(app, client).is_connected()


def test_sessions_expire_on_the_server(app, alice):
    client = login(app, "alice", remember=True)
    with app.app_context():
        db.session.execute(db.update(UserSession).values(
            created_at=datetime.now(timezone.utc) - app.config["SESSION_LIFETIME"] - timedelta(minutes=1)))
        db.session.commit()
    assert not logged_in(client)
    assert not logged_in(client_with(app, remember_token=cookie(client, "remember_token")))


def test_a_disabled_users_sessions_stop_and_stay_revoked(app, alice):
    client = login(app, "alice")
    with app.app_context():
        users.do_disable_user(db.session.get(User, alice.id))
    assert not logged_in(client)
    with app.app_context():
        users.do_disable_user(db.session.get(User, alice.id), disabled=False)
    assert not logged_in(client)  # re-enabling does not bring the old sessions back
    assert logged_in(login(app, "alice"))


# --- Log out everywhere, one session, the list ---------------------------------------------

def test_log_out_everywhere_ends_every_session_and_socket(app, alice):
    here, laptop = login(app, "alice"), login(app, "alice", remember=True)
    laptop_socket = socket_for(app, laptop)
    here_socket = socket_for(app, here)
    assert laptop_socket.is_connected() and here_socket.is_connected()

    done = here.post("/account/sessions/logout-all")
    assert done.status_code == 302 and "/login" in done.headers["Location"]
    assert not laptop_socket.is_connected() and not here_socket.is_connected()
    assert not logged_in(laptop) and not logged_in(here)
    assert not logged_in(client_with(app, remember_token=cookie(laptop, "remember_token")))
    assert not socket_for(app, laptop).is_connected()
    assert live_sessions(app, "alice") == []


def test_log_out_everywhere_over_the_api(app, alice, bearer):
    laptop = login(app, "alice")
    headers = bearer(alice)
    response = app.test_client().delete("/api/v1/me/sessions", headers=headers)
    assert response.status_code == 200 and response.get_json() == {"revoked_sessions": 1}
    assert not logged_in(laptop)
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200  # tokens are not sessions


def test_the_account_page_lists_sessions_and_marks_this_one(app, alice):
    login(app, "alice", agent="Firefox on the laptop")
    here = login(app, "alice", agent="Chromium here")
    page = here.get("/account").get_data(as_text=True)
    assert "Firefox on the laptop" in page and "Chromium here" in page
    rows = page.split('id="session-table"')[1].split("</table>")[0].split("<tr data-session-id=")[1:]
    assert len(rows) == 2
    current = [r for r in rows if 'aria-current="true"' in r]
    assert len(current) == 1 and "Chromium here" in current[0] and "this browser" in current[0]

    listed = here.get("/api/v1/me/sessions").get_json()["sessions"]
    assert [s["current"] for s in listed].count(True) == 1
    assert {s["user_agent"] for s in listed} == {"Firefox on the laptop", "Chromium here"}
    assert set(listed[0]) == {"id", "created_at", "last_seen_at", "user_agent", "address", "current"}


def test_one_session_can_be_logged_out_from_another(app, alice, make_user):
    laptop, here = login(app, "alice"), login(app, "alice")
    laptop_socket = socket_for(app, laptop)
    other = next(s for s in here.get("/api/v1/me/sessions").get_json()["sessions"] if not s["current"])
    assert here.post(f"/account/sessions/{other['id']}/revoke").status_code == 302
    assert not logged_in(laptop) and not laptop_socket.is_connected()
    assert logged_in(here)
    # Another user's session, or one that does not exist, is not found.
    make_user("bob")
    bob = login(app, "bob")
    bob_session = bob.get("/api/v1/me/sessions").get_json()["sessions"][0]["id"]
    missing = here.delete(f"/api/v1/me/sessions/{bob_session}")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert logged_in(bob)
    assert here.delete("/api/v1/me/sessions/999999").status_code == 404


def test_last_seen_is_written_at_most_every_few_minutes(app, alice):
    client = login(app, "alice")
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    with app.app_context():
        db.session.execute(db.update(UserSession).values(last_seen_at=long_ago))
        db.session.commit()
    assert logged_in(client)
    seen = live_sessions(app, "alice")[0].last_seen_at
    assert seen > long_ago + timedelta(minutes=59)
    assert logged_in(client)
    assert live_sessions(app, "alice")[0].last_seen_at == seen  # not again within SESSION_TOUCH_SECONDS


def test_a_cookie_request_loads_user_and_session_in_one_query(app, alice):
    client = login(app, "alice")
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/api/v1/tokens").status_code == 200
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
    loads = [s for s in statements if "user_sessions" in s]
    assert len(loads) == 1 and "JOIN user_sessions" in loads[0], statements
    assert not [s for s in statements if s.startswith("SELECT users.") and s not in loads], statements


def test_socket_events_keep_the_session_without_queries_and_recheck_it(app, alice, make_room):
    room = make_room(alice, "general")
    client = login(app, "alice")
    sock = socket_for(app, client)
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        assert sock.emit("read", {"room_id": room.id}, callback=True)["ok"] is True
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
    assert not [s for s in statements if "user_sessions" in s or s.lstrip().startswith("SELECT users.")]

    # Revoked behind the socket's back (no disconnect sent): the next re-check ends it.
    with app.app_context():
        db.session.execute(db.update(UserSession).values(revoked_at=datetime.now(timezone.utc)))
        db.session.commit()
    assert sock.emit("read", {"room_id": room.id}, callback=True)["ok"] is True  # not yet due
    app.config["SESSION_TOUCH_SECONDS"] = 0
    ack = sock.emit("read", {"room_id": room.id}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
    assert not sock.is_connected()


# --- Changing the password ---------------------------------------------------------------

def test_a_wrong_current_password_is_refused_over_the_api(app, alice):
    client = login(app, "alice")
    response = client.post("/api/v1/me/password", json={"current_password": "not-it-at-all",
                                                         "new_password": NEW_PASSWORD})
    assert response.status_code == 403
    assert response.get_json()["error"] == {"code": "wrong_password", "message": "The current password is not right.",
                                            "field": "current_password"}
    for body, field in (({"new_password": NEW_PASSWORD}, "current_password"),
                        ({"current_password": PASSWORD, "new_password": "short"}, "new_password"),
                        ({"current_password": PASSWORD, "new_password": PASSWORD}, "new_password"),
                        ({"current_password": PASSWORD, "new_password": 12345678}, "new_password")):
        refused = client.post("/api/v1/me/password", json=body)
        assert refused.status_code == 400 and refused.get_json()["error"]["field"] == field, body
    assert client.post("/api/v1/me/password", data="nope").status_code == 400
    assert logged_in(client)
    with app.app_context():
        assert users.get_user_by_username("alice").check_password(PASSWORD)


def test_a_wrong_current_password_is_a_form_error_on_the_page(app, alice):
    other = login(app, "alice")
    client = login(app, "alice")
    page = client.post("/account/password", data={"current_password": "not-it-at-all",
                                                  "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert "The current password is not right." in html and 'aria-invalid="true"' in html
    mismatch = client.post("/account/password", data={"current_password": PASSWORD,
                                                      "new_password": NEW_PASSWORD, "confirm": "something else"})
    assert mismatch.status_code == 400 and "Passwords differ." in mismatch.get_data(as_text=True)
    assert logged_in(other) and logged_in(client)
    with app.app_context():
        assert users.get_user_by_username("alice").check_password(PASSWORD)


@pytest.mark.parametrize("door", ["api", "page"])
def test_a_password_change_ends_every_other_session_and_socket(app, alice, bearer, door):
    laptop, here = login(app, "alice", remember=True), login(app, "alice")
    headers = bearer(alice)
    laptop_socket, here_socket = socket_for(app, laptop), socket_for(app, here)

    if door == "api":
        done = here.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert done.status_code == 200 and done.get_json() == {"revoked_sessions": 1}
    else:
        done = here.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                    "confirm": NEW_PASSWORD})
        assert done.status_code == 302
        assert "Password changed. 1 session ended." in here.get("/account").get_data(as_text=True)

    assert not laptop_socket.is_connected()
    assert not logged_in(laptop)
    assert not logged_in(client_with(app, remember_token=cookie(laptop, "remember_token")))
    assert not socket_for(app, laptop).is_connected()
    # This session lives on; its socket was closed with the others and connects again.
    assert logged_in(here)
    assert not here_socket.is_connected()
    assert socket_for(app, here).is_connected()
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200  # tokens survive
    old = app.test_client().post("/login", data={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    assert logged_in(login(app, "alice", NEW_PASSWORD))


def test_wrong_current_passwords_are_rate_limited(tmp_path):
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'rl.db'}",
                                         "RATELIMIT_ENABLED": True, "PASSWORD_CHANGE_FAILURES": "3 per hour"})
    app = create_app(config)
    try:
        with app.app_context():
            db.create_all()
            UserFactory(username="alice")
        client = login(app, "alice")
        for _ in range(3):
            assert client.post("/api/v1/me/password", json={"current_password": "guess-guess",
                                                             "new_password": NEW_PASSWORD}).status_code == 403
        refused = client.post("/api/v1/me/password", json={"current_password": PASSWORD,
                                                            "new_password": NEW_PASSWORD})
        assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
        assert "Retry-After" in refused.headers
        with app.app_context():
            assert users.get_user_by_username("alice").check_password(PASSWORD)
    finally:
        with app.app_context():
            db.engine.dispose()


# --- The secret key ----------------------------------------------------------------------

def keyless_app(tmp_path, **settings):
    """An embedded-mode app without SECRET_KEY, keeping its key in tmp_path."""
    config = type("Keyless", (TestConfig,), {
        "SECRET_KEY": None, "SECRET_KEY_FILE": str(tmp_path / "instance" / "secret_key"),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'keyless.db'}", **settings,
    })
    return create_app(config)


def test_without_a_key_one_is_made_kept_private_and_reused(tmp_path):
    first = keyless_app(tmp_path)
    key = first.config["SECRET_KEY"]
    path = tmp_path / "instance" / "secret_key"
    assert key and len(key) >= 32 and key != PUBLIC_KEY
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyless_app(tmp_path).config["SECRET_KEY"] == key  # a restart signs with the same key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary file left

    other = tmp_path / "elsewhere"
    other.mkdir()
    assert keyless_app(other).config["SECRET_KEY"] != key


def test_processes_starting_together_agree_on_the_key(tmp_path):
    script = (
        "import sys; from pathlib import Path; from app.security import load_or_create_secret_key; "
        "print(load_or_create_secret_key(Path(sys.argv[1])))"
    )
    path = tmp_path / "secret_key"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert keys == {path.read_text().strip()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_damaged_key_file_is_a_clear_refusal(tmp_path):
    path = tmp_path / "instance" / "secret_key"
    path.parent.mkdir()
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than 32"):
        keyless_app(tmp_path)


def test_a_session_forged_with_the_old_public_key_is_refused(tmp_path):
    app = keyless_app(tmp_path)
    try:
        with app.app_context():
            db.create_all()
            UserFactory(username="root", is_admin=True)
        # Even holding a real session's id, a cookie signed with the published key is refused.
        real = login(app, "root")
        with real.session_transaction() as sess:
            login_id = sess["_user_id"]
        serializer = SecureCookieSessionInterface().get_signing_serializer(
            type("Old", (), {"secret_key": PUBLIC_KEY, "config": {"SECRET_KEY_FALLBACKS": None}})()
        )
        for user_id in (login_id, "1"):
            forged = serializer.dumps({"_user_id": user_id, "_fresh": True})
            attacker = client_with(app, session=forged)
            assert not logged_in(attacker)
            assert attacker.get("/admin/user/").status_code in (302, 403)
            assert not socket_for(app, attacker).is_connected()
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_published_key_is_refused_even_when_set_on_purpose(tmp_path):
    with pytest.raises(ConfigError, match="published"):
        keyless_app(tmp_path, SECRET_KEY=PUBLIC_KEY)


@pytest.mark.parametrize("settings", [
    {"REDIS_URL": "redis://127.0.0.1:6379/0"},
    {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg2://postgres@127.0.0.1:5432/test"},
    {"CHORUS_ENV": "production"},
])
def test_the_cluster_mode_and_production_refuse_to_serve_without_a_key(tmp_path, settings):
    with pytest.raises(ConfigError, match="SECRET_KEY must be set"):
        keyless_app(tmp_path, **settings)
    assert not (tmp_path / "instance" / "secret_key").exists()  # no key is made for them
