"""A room's history, page by page: what the API and the room page show.

Read-only, and written with SQLAlchemy Core rather than the ORM: a page of 50 messages built
from model instances (the messages, their authors, their mentions and the mentioned users,
each a query of its own, then `serializers.message_dict` over the objects) cost about 5 ms of
CPU, for SQL the database answers in 0.07 ms. Here a page is one statement on PostgreSQL
(each row carries its mentions' usernames as an array) and two elsewhere (the page's
mentions in a second one); the rows go straight into `serializers.message_fields`, the
shape `message_dict` also builds, and a test checks that both give the same dicts.

The membership check rides in the page's statement. A page that comes back empty asks
`access_room_as_member` why (one more statement), so a caller who may not read the room
gets the same answer as from every other door.
"""
from __future__ import annotations

from functools import cache
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.lib import serializers
from app.lib.access import access_room_as_member
from app.lib.errors import ChatError
from app.lib.validation import MAX_ID
from app.models import Membership, Mention, Message, User

_messages = Message.__table__
_authors = User.__table__
_mentions = Mention.__table__
_mentioned = User.__table__.alias("mentioned")
_memberships = Membership.__table__


class _Statements(NamedTuple):
    newest: sa.Select
    before: sa.Select
    after: sa.Select


@cache
def _statements(mentions_inline: bool) -> _Statements:
    """The page statements, built once (their cache keys then come for free): the newest
    page, the page before an id, the page after one. Parameters: room_id, user_id, limit,
    and before or after."""
    columns = [
        _messages.c.id, _messages.c.room_id, _messages.c.seq, _messages.c.author_id, _authors.c.username,
        _authors.c.display_name, _messages.c.body, _messages.c.html, _messages.c.created_at, _messages.c.client_id,
    ]
    if mentions_inline:
        columns.append(
            sa.select(sa.func.array_agg(_mentioned.c.username).aggregate_order_by(_mentions.c.id))
            .select_from(_mentions.join(_mentioned, _mentioned.c.id == _mentions.c.user_id))
            .where(_mentions.c.message_id == _messages.c.id)
            .scalar_subquery()
        )
    is_member = sa.exists().where(
        _memberships.c.room_id == sa.bindparam("room_id"), _memberships.c.user_id == sa.bindparam("user_id")
    )
    page = (
        sa.select(*columns)
        .select_from(_messages.join(_authors, _authors.c.id == _messages.c.author_id))
        .where(_messages.c.room_id == sa.bindparam("room_id"), is_member)
        .limit(sa.bindparam("limit"))
    )
    return _Statements(
        newest=page.order_by(_messages.c.id.desc()),
        before=page.where(_messages.c.id < sa.bindparam("before")).order_by(_messages.c.id.desc()),
        after=page.where(_messages.c.id > sa.bindparam("after")).order_by(_messages.c.id.asc()),
    )


# Where the page's rows cannot carry them (SQLite has no ordered aggregate before 3.44).
_MENTIONS_OF = (
    sa.select(_mentions.c.message_id, _mentioned.c.username)
    .select_from(_mentions.join(_mentioned, _mentioned.c.id == _mentions.c.user_id))
    .where(_mentions.c.message_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_mentions.c.id)
)


def get_messages(
    user: User, room_id: int, *, before: int | None = None, after: int | None = None, limit: int | None = None
) -> tuple[list[dict], bool]:
    """A page of a room's history as message dicts, oldest first, and whether more lies beyond it.

    `before` pages backwards from an id (the newest page when neither is given);
    `after` pages forwards from an id, for catching up after a reconnect.
    """
    limit = _check_paging(user, room_id, limit, before is not None and after is not None)
    connection = db.session.connection()
    statements = _statements(_mentions_inline(connection))
    params = {"room_id": room_id, "user_id": user.id, "limit": limit + 1}
    if after is not None:
        rows = connection.execute(statements.after, {**params, "after": after}).all()
    elif before is not None:
        rows = connection.execute(statements.before, {**params, "before": before}).all()
    else:
        rows = connection.execute(statements.newest, params).all()
    if not rows:
        access_room_as_member(room_id, user)  # raises, unless the room is merely empty there
        return [], False
    has_more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return _message_dicts(connection, rows), has_more


def get_messages_around(
    user: User, room_id: int, message_id: int, *, limit: int | None = None
) -> tuple[list[dict], bool, bool]:
    """A page of message dicts centred on one message (for links to it), oldest first.

    Returns the page and whether older and newer messages lie beyond it.
    """
    limit = _check_paging(user, room_id, limit, False)
    connection = db.session.connection()
    statements = _statements(_mentions_inline(connection))
    params = {"room_id": room_id, "user_id": user.id, "limit": limit}
    # The message and up to a full page after it, then up to a full page before it.
    newer = connection.execute(statements.after, {**params, "after": message_id - 1, "limit": limit + 1}).all()
    if not newer or newer[0].id != message_id:
        if not newer:
            access_room_as_member(room_id, user)  # no rows may also mean no access: say which
        raise ChatError("not_found", "No such message in this room.", field="around")
    anchor, newer = newer[0], newer[1:]
    older = connection.execute(statements.before, {**params, "before": message_id}).all()
    # A window as centred as the room's edges allow.
    room_left = limit - 1
    n_newer = min(len(newer), max(room_left // 2, room_left - len(older)))
    n_older = min(len(older), room_left - n_newer)
    rows = older[:n_older][::-1] + [anchor] + newer[:n_newer]
    return _message_dicts(connection, rows), len(older) > n_older, len(newer) > n_newer


def _check_paging(user: User, room_id: int, limit: int | None, before_and_after: bool) -> int:
    """The page size; ChatError for bad paging, after any access refusal (which answers first)."""
    max_limit = current_app.config["HISTORY_MAX_PAGE_SIZE"]
    limit = current_app.config["HISTORY_PAGE_SIZE"] if limit is None else limit
    limit_ok = 1 <= limit <= max_limit
    if limit_ok and not before_and_after and 0 < room_id <= MAX_ID:
        return limit
    access_room_as_member(room_id, user)
    if not limit_ok:
        raise ChatError("invalid", f"'limit' must be between 1 and {max_limit}.", field="limit")
    if before_and_after:
        raise ChatError("invalid", "Give 'before' or 'after', not both.")
    return limit


def _mentions_inline(connection) -> bool:
    return connection.dialect.name == "postgresql"


def _message_dicts(connection, rows: list) -> list[dict]:
    """The rows of a page statement as `serializers.message_fields` dicts, in the rows' order."""
    message_fields, user_fields = serializers.message_fields, serializers.user_fields
    if _mentions_inline(connection):
        return [
            message_fields(id_, room_id, seq, user_fields(author_id, username, display_name), body, html,
                           created_at, mentions or [], client_id)
            for id_, room_id, seq, author_id, username, display_name, body, html, created_at, client_id, mentions
            in rows
        ]
    mentions: dict[int, list[str]] = {}
    for message_id, username in connection.execute(_MENTIONS_OF, {"ids": [row.id for row in rows]}):
        mentions.setdefault(message_id, []).append(username)
    return [
        message_fields(id_, room_id, seq, user_fields(author_id, username, display_name), body, html,
                       created_at, mentions.get(id_, []), client_id)
        for id_, room_id, seq, author_id, username, display_name, body, html, created_at, client_id in rows
    ]
