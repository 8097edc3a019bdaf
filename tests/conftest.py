"""Fixtures: an app on a fresh SQLite file per test, HTTP and Socket.IO test clients.

No application context stays pushed while a test runs: requests would otherwise share
it, and with it `g` (Flask-Login's cached user) and the database session. Fixtures hand
out plain references (id, name); tests open `with app.app_context():` to read rows.
"""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from app import create_app
from app.actions import memberships, rooms
from app.config import TestConfig
from app.extensions import db, socketio
from app.models import User
from tests.factories import PASSWORD, UserFactory


@contextmanager
def sqlite_app(path):
    """The app on a fresh SQLite file at path, its schema created directly (migrations are tested on their own)."""
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    app = create_app(config)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(tmp_path):
    """The app on a SQLite file of the test's own."""
    with sqlite_app(tmp_path / "test.db") as app:
        yield app


def ref_user(user) -> SimpleNamespace:
    """A plain reference to a user, usable outside any app context."""
    return SimpleNamespace(id=user.id, username=user.username, is_admin=user.is_admin)


@pytest.fixture
def make_user(app):
    """Create a user: make_user("alice", is_admin=True)."""

    def _make(username: str | None = None, **kwargs):
        if username is not None:
            kwargs["username"] = username
        with app.app_context():
            return ref_user(UserFactory(**kwargs))

    return _make


@pytest.fixture
def make_room(app):
    """Create a room owned by owner with the given extra members."""

    def _make(owner, name="general", *, members=(), is_private=False, topic=""):
        with app.app_context():
            owner_row = db.session.get(User, owner.id)
            room = rooms.do_create_room(owner_row, name, topic, is_private)
            for member in members:
                memberships.do_invite_user(owner_row, room.id, member.username)
            return SimpleNamespace(id=room.id, name=room.name, is_private=room.is_private)

    return _make


@pytest.fixture
def login(app):
    """A logged-in HTTP test client for a user (through the real login form)."""

    def _login(user, password: str = PASSWORD):
        client = app.test_client()
        response = client.post("/login", data={"username": user.username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return _login


@pytest.fixture
def sock(app, login):
    """A Socket.IO test client connected with a user's session cookie."""
    clients = []

    def _connect(user):
        client = socketio.test_client(app, flask_test_client=login(user))
        assert client.is_connected()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        if client.is_connected():
            client.disconnect()


@pytest.fixture
def team(make_user, make_room):
    """alice, bob and carol share #general (alice owns it); dave is in no room."""
    alice, bob, carol, dave = (make_user(n) for n in ("alice", "bob", "carol", "dave"))
    room = make_room(alice, "general", members=[bob, carol])
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "room": room}


def payload(event: dict):
    """The first argument of a received event (the test client unwraps "message" events)."""
    return event["args"] if event["name"] in ("message", "json") else event["args"][0]


def events_named(client, name: str) -> list:
    """The payloads of one event type a test client received since the last call."""
    return [payload(e) for e in client.get_received() if e["name"] == name]


@pytest.fixture
def emitted(monkeypatch):
    """Every event the app emits, recorded as (event, data, to) and then sent as usual."""
    from app import events

    calls: list[tuple[str, dict, object]] = []
    original = events._emit

    def _record(event, data, to):
        calls.append((event, data, to))
        original(event, data, to)

    monkeypatch.setattr(events, "_emit", _record)
    return calls


@pytest.fixture
def token_for(app):
    """A fresh bearer token for a user, issued through the action."""
    from app.actions import users

    def _token(user) -> str:
        with app.app_context():
            return users.do_create_api_token(db.session.get(User, user.id))

    return _token


@pytest.fixture
def bearer(token_for):
    """Authorization headers carrying a fresh bearer token for a user."""

    def _headers(user) -> dict:
        return {"Authorization": f"Bearer {token_for(user)}"}

    return _headers


@pytest.fixture
def fast_hashing(monkeypatch):
    """Cheap password hashes for tests that register many accounts through the action."""
    from werkzeug.security import generate_password_hash

    import app.models.users as user_models

    monkeypatch.setattr(
        user_models, "generate_password_hash",
        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1"),
    )


@pytest.fixture
def live(app, token_for):
    """A Socket.IO test client connected with a user's bearer token (`auth={"token": ...}`)."""
    clients = []

    def _connect(user):
        client = socketio.test_client(app, auth={"token": token_for(user)})
        assert client.is_connected()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        if client.is_connected():
            client.disconnect()


@pytest.fixture
def keep_logging():
    """Running the migrations applies alembic.ini's logging (root level, handlers): undo it after."""
    import logging

    root_level, root_handlers = logging.root.level, list(logging.root.handlers)
    yield
    logging.root.setLevel(root_level)
    logging.root.handlers[:] = root_handlers
