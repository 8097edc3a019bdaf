"""The user a socket connected as, kept for the socket's life.

Without it Flask-Login loads the user from the database on every event (one query a
message). A socket keeps the columns of the user it connected as instead, and each event
gets its own detached `User` built from them: no query, and the event's session stays
untouched until the action needs it (a send on PostgreSQL then runs in autocommit mode).
What changes a user's standing closes their sockets (logout, disabling, token revocation,
a password change; see `app.events`), and a send checks the account again in the
statement that stores it. No other field of a user changes while they are connected.

A socket opened with a session cookie also keeps the login it came through: its events
carry the same "<user id>:<secret>" id, and every SESSION_TOUCH_SECONDS (or once the
login has expired) one event goes back to the database, so a session revoked or expired
behind the socket's back ends its socket within minutes even if a disconnect was missed.
"""
from __future__ import annotations

import time

import sqlalchemy as sa
from flask import current_app, has_request_context, request
from sqlalchemy.orm import make_transient_to_detached

from app.models import Login, User
from app.models.base import utcnow

_KEY = "chorus.socket_user"
_LOGIN = "chorus.socket_login"
_NOT_KEPT = {"password_hash"}  # no socket event needs it


def remember(user: User) -> None:
    """At connect (or a re-check): keep the user's columns and login in the socket's environ."""
    request.environ[_KEY] = {
        attr.key: getattr(user, attr.key) for attr in sa.inspect(User).column_attrs if attr.key not in _NOT_KEPT
    }
    request.environ[_LOGIN] = (user.get_id(), user.login, time.monotonic())


def connected_user(user_id: str) -> User | None:
    """In a socket event: the user the socket connected as, detached, this event's own.

    None outside socket events, for another id, and when the socket's login is due for a
    re-check (the caller then loads it from the database, as at connect).
    """
    if not has_request_context() or not hasattr(request, "sid"):
        return None
    columns = request.environ.get(_KEY)
    kept = request.environ.get(_LOGIN)
    if columns is None or kept is None:
        return None
    login_id, login, checked_at = kept
    if login_id != user_id:
        return None
    if login is not None and (
        time.monotonic() - checked_at >= current_app.config["SESSION_TOUCH_SECONDS"] or login.expires_at <= utcnow()
    ):
        return None
    user = User(**columns)
    make_transient_to_detached(user)
    user.login = login
    return user


def is_socket_event() -> bool:
    """Whether this request context is a socket's (connect or event)."""
    return has_request_context() and hasattr(request, "sid")
