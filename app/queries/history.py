"""A room's history, page by page: what the API and the room page show.

Read-only, and written with SQLAlchemy Core rather than the ORM: a page of 50 messages built
from model instances (the messages, their authors, their mentions and the mentioned users,
each a query of its own, then `serializers.message_dict` over the objects) cost about 5 ms of
CPU, for SQL the database answers in 0.07 ms. Here a page is one statement on PostgreSQL
(each row carries its mentions' usernames and its reactions as arrays) and three elsewhere
(the page's mentions and its reactions in statements of their own); the rows go straight
into `serializers.message_fields` (or `tombstone_fields`), the shapes `message_dict` also
builds, and a test checks that both give the same dicts.

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
from app.models import Membership, Mention, Message, Reaction, Room, User

_messages = Message.__table__
_authors = User.__table__
_mentions = Mention.__table__
_mentioned = User.__table__.alias("mentioned")
_memberships = Membership.__table__
_reactions = Reaction.__table__
_reactors = User.__table__.alias("reactor")
_rooms = Room.__table__
_quoted = Message.__table__.alias("quoted")
_quoted_authors = User.__table__.alias("quoted_author")

# Which messages a page is about: the room's main timeline (top-level messages and the
# replies also sent to the room), one thread (its root and replies), or every message of
# the room (changes since a rev: the sequence is the room's).
MAIN, THREAD, ROOM = "main", "thread", "room"


class _Statements(NamedTuple):
    newest: sa.Select
    before: sa.Select
    after: sa.Select
    since: sa.Select


@cache
def _columns(arrays_inline: bool) -> tuple[list, sa.FromClause]:
    """What a page's rows carry, and the join they are read from."""
    columns = [
        _messages.c.id, _messages.c.room_id, _messages.c.seq, _messages.c.rev, _messages.c.author_id,
        _authors.c.username, _authors.c.display_name, _messages.c.body, _messages.c.html, _messages.c.created_at,
        _messages.c.edited_at, _messages.c.deleted_at, _messages.c.client_id,
        _messages.c.thread_root_id, _messages.c.also_in_room, _messages.c.reply_count, _messages.c.last_reply_at,
        _messages.c.thread_repliers, _messages.c.quote_of_id,
        _quoted.c.body.label("quoted_body"), _quoted.c.deleted_at.label("quoted_deleted_at"),
        _quoted_authors.c.id.label("quoted_author_id"), _quoted_authors.c.username.label("quoted_username"),
        _quoted_authors.c.display_name.label("quoted_display_name"),
    ]
    if arrays_inline:
        columns.append(
            sa.select(sa.func.array_agg(_mentioned.c.username).aggregate_order_by(_mentions.c.id))
            .select_from(_mentions.join(_mentioned, _mentioned.c.id == _mentions.c.user_id))
            .where(_mentions.c.message_id == _messages.c.id)
            .scalar_subquery().label("mention_names")
        )
        # The reactions as three arrays in the order they were made: emoji, user ids, usernames.
        reacted = _reactions.join(_reactors, _reactors.c.id == _reactions.c.user_id)
        for name, column in (("reaction_emoji", _reactions.c.emoji), ("reaction_user_ids", _reactions.c.user_id),
                             ("reaction_usernames", _reactors.c.username)):
            columns.append(
                sa.select(sa.func.array_agg(column).aggregate_order_by(_reactions.c.id))
                .select_from(reacted).where(_reactions.c.message_id == _messages.c.id).scalar_subquery().label(name)
            )
    joined = (
        _messages.join(_authors, _authors.c.id == _messages.c.author_id)
        .outerjoin(_quoted, _quoted.c.id == _messages.c.quote_of_id)
        .outerjoin(_quoted_authors, _quoted_authors.c.id == _quoted.c.author_id)
    )
    return columns, joined


@cache
def _statements(arrays_inline: bool, scope: str) -> _Statements:
    """The page statements of a scope (MAIN, THREAD or ROOM), built once (their cache keys
    then come for free): the newest page, the page before an id, the page after one, the
    changes since a rev. Parameters: room_id, user_id, limit, root_id for a thread, and
    before, after or since."""
    columns, joined = _columns(arrays_inline)
    is_member = sa.exists().where(
        _memberships.c.room_id == sa.bindparam("room_id"), _memberships.c.user_id == sa.bindparam("user_id")
    )
    page = (
        sa.select(*columns).select_from(joined)
        .where(_messages.c.room_id == sa.bindparam("room_id"), is_member)
        .limit(sa.bindparam("limit"))
    )
    if scope == MAIN:
        page = page.where(Message.in_main_timeline())
    elif scope == THREAD:
        root_id = sa.bindparam("root_id")
        page = page.where(sa.or_(_messages.c.id == root_id, _messages.c.thread_root_id == root_id))
    return _Statements(
        newest=page.order_by(_messages.c.id.desc()),
        before=page.where(_messages.c.id < sa.bindparam("before")).order_by(_messages.c.id.desc()),
        after=page.where(_messages.c.id > sa.bindparam("after")).order_by(_messages.c.id.asc()),
        since=page.where(_messages.c.rev > sa.bindparam("since")).order_by(_messages.c.rev.asc()),
    )


@cache
def _by_ids(arrays_inline: bool) -> sa.Select:
    """Messages by id, whoever reads them (callers check access): parameter ids."""
    columns, joined = _columns(arrays_inline)
    return sa.select(*columns).select_from(joined).where(_messages.c.id.in_(sa.bindparam("ids", expanding=True)))


# Where the page's rows cannot carry them (SQLite has no ordered aggregate before 3.44),
# the page's mentions and reactions.
_MENTIONS_OF = (
    sa.select(_mentions.c.message_id, _mentioned.c.username)
    .select_from(_mentions.join(_mentioned, _mentioned.c.id == _mentions.c.user_id))
    .where(_mentions.c.message_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_mentions.c.id)
)
_REACTIONS_OF = (
    sa.select(_reactions.c.message_id, _reactions.c.emoji, _reactions.c.user_id, _reactors.c.username)
    .select_from(_reactions.join(_reactors, _reactors.c.id == _reactions.c.user_id))
    .where(_reactions.c.message_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_reactions.c.id)
)
_HEAD = sa.select(_rooms.c.last_rev).where(_rooms.c.id == sa.bindparam("room_id"))


def get_messages(
    user: User, room_id: int, *, before: int | None = None, after: int | None = None, limit: int | None = None,
    thread: int | None = None,
) -> tuple[list[dict], bool]:
    """A page of a room's main timeline (or of the thread of root `thread`, root first) as
    message dicts, oldest first, and whether more lies beyond it.

    `before` pages backwards from an id (the newest page when neither is given);
    `after` pages forwards from an id (0: from the first message).
    """
    limit = _check_paging(user, room_id, limit, before is not None and after is not None)
    connection = db.session.connection()
    statements = _statements(_arrays_inline(connection), MAIN if thread is None else THREAD)
    params = {"room_id": room_id, "user_id": user.id, "limit": limit + 1, "root_id": thread}
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
    return _message_dicts(connection, rows, user.id), has_more


def get_changes(
    user: User, room_id: int, since: int, *, limit: int | None = None, thread: int | None = None,
) -> tuple[list[dict], bool, int]:
    """The current state of every message of the room (or of the thread of root `thread`)
    changed after rev `since` (0: all of them), in the order of their revs: the page,
    whether more follow, and the room's head.

    The head is read before the page, so every change up to it is on this page or a later
    one (revs commit in order), and raised to the page's last rev: a client whose page says
    no more may move its cursor to the head."""
    limit = _check_paging(user, room_id, limit, False)
    connection = db.session.connection()
    head = connection.execute(_HEAD, {"room_id": room_id}).scalar()
    statements = _statements(_arrays_inline(connection), ROOM if thread is None else THREAD)
    rows = connection.execute(
        statements.since,
        {"room_id": room_id, "user_id": user.id, "limit": limit + 1, "since": since, "root_id": thread},
    ).all()
    if not rows:
        access_room_as_member(room_id, user)
        return [], False, head or 0
    has_more = len(rows) > limit
    rows = rows[:limit]
    return _message_dicts(connection, rows, user.id), has_more, max(head or 0, rows[-1].rev)


def get_messages_around(
    user: User, room_id: int, message_id: int, *, limit: int | None = None
) -> tuple[list[dict], bool, bool]:
    """A page of message dicts centred on one message (for links to it), oldest first.

    Returns the page and whether older and newer messages lie beyond it.
    """
    limit = _check_paging(user, room_id, limit, False)
    connection = db.session.connection()
    statements = _statements(_arrays_inline(connection), MAIN)
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
    return _message_dicts(connection, rows, user.id), len(older) > n_older, len(newer) > n_newer


def get_thread_root(user: User, room_id: int, message_id: int) -> dict:
    """The root (or its tombstone) of the thread a message of this room is in (the message
    itself when it is top-level), as `user` sees it; not_found if it is not in this room or
    `user` may not read the room."""
    access_room_as_member(room_id, user)
    found = db.session.execute(
        sa.select(_messages.c.room_id, _messages.c.thread_root_id).where(_messages.c.id == message_id)
    ).first() if 0 < message_id <= MAX_ID else None
    if found is None or found.room_id != room_id:
        raise ChatError("not_found", "No such message in this room.", field="thread")
    root_id = found.thread_root_id or message_id
    return get_message_states(db.session.connection(), [root_id], viewer_id=user.id)[root_id]


def get_message_states(connection, ids: list[int], *, viewer_id: int | None = None) -> dict[int, dict]:
    """The current state of some messages by id (tombstones for deleted ones), whoever asks:
    callers check access. With `viewer_id`, reactions say whether that user made them."""
    if not ids:
        return {}
    rows = connection.execute(_by_ids(_arrays_inline(connection)), {"ids": list(ids)}).all()
    return {message["id"]: message for message in _message_dicts(connection, rows, viewer_id)}


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


def _arrays_inline(connection) -> bool:
    return connection.dialect.name == "postgresql"


def _message_dicts(connection, rows: list, viewer_id: int | None) -> list[dict]:
    """The rows of a page statement as `serializers.message_fields` dicts (tombstones for
    deleted messages), in the rows' order; reactions say whether the viewer made them."""
    message_fields, user_fields, summary = serializers.message_fields, serializers.user_fields, serializers.thread_summary
    ids = [row.id for row in rows]
    reactions: dict[int, list] = {}
    if _arrays_inline(connection):
        mentions = {row.id: row.mention_names or [] for row in rows}
        for row in rows:
            if row.reaction_emoji:
                reactions[row.id] = list(zip(row.reaction_emoji, row.reaction_user_ids, row.reaction_usernames))
    else:
        for message_id, emoji, user_id, username in connection.execute(_REACTIONS_OF, {"ids": ids}):
            reactions.setdefault(message_id, []).append((emoji, user_id, username))
        mentions = {}
        for message_id, username in connection.execute(_MENTIONS_OF, {"ids": ids}):
            mentions.setdefault(message_id, []).append(username)
    page = []
    for row in rows:
        id_, room_id, seq, rev, author_id, username, display_name, body, html, created_at, edited_at, deleted_at, \
            client_id = row[:13]
        author = user_fields(author_id, username, display_name)
        thread = summary(row.reply_count, row.last_reply_at, row.thread_repliers)
        if deleted_at is not None:
            page.append(serializers.tombstone_fields(
                id_, room_id, seq, rev, author, created_at, deleted_at, thread_root_id=row.thread_root_id,
                also_in_room=row.also_in_room, thread=thread))
            continue
        summaries = serializers.reaction_summaries(reactions[id_], viewer_id=viewer_id) if id_ in reactions else []
        quote = None
        if row.quote_of_id is not None:
            quote = serializers.quote_fields(
                row.quote_of_id, user_fields(row.quoted_author_id, row.quoted_username, row.quoted_display_name),
                row.quoted_body, row.quoted_deleted_at)
        page.append(message_fields(id_, room_id, seq, rev, author, body, html, created_at, edited_at,
                                   mentions.get(id_, []), client_id, summaries, thread_root_id=row.thread_root_id,
                                   also_in_room=row.also_in_room, thread=thread, quote_of=row.quote_of_id,
                                   quote=quote))
    return page
