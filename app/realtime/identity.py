"""The user a socket connected as, kept for the socket's life.

Without it Flask-Login loads the user from the database on every event (one query a
message). A socket keeps the columns of the user it connected as instead, and each event
gets its own detached `User` built from them: no query, and the event's session stays
untouched until the action needs it (a send on PostgreSQL then runs in autocommit mode).
What changes a user's standing closes their sockets (logout, disabling, token revocation;
see `app.events`), and a send checks the account again in the statement that stores it.
No other field of a user changes while they are connected.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import has_request_context, request
from sqlalchemy.orm import make_transient_to_detached

from app.models import User

_KEY = "chorus.socket_user"
_NOT_KEPT = {"password_hash"}  # no socket event needs it


def remember(user: User) -> None:
    """At connect: keep the user's columns in the socket's environ, which every event shares."""
    request.environ[_KEY] = {
        attr.key: getattr(user, attr.key) for attr in sa.inspect(User).column_attrs if attr.key not in _NOT_KEPT
    }


def connected_user(user_id: int) -> User | None:
    """In a socket event: the user the socket connected as, detached, this event's own."""
    if not has_request_context() or not hasattr(request, "sid"):
        return None
    columns = request.environ.get(_KEY)
    if columns is None or columns["id"] != user_id:
        return None
    user = User(**columns)
    make_transient_to_detached(user)
    return user
