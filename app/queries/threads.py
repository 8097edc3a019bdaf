"""The threads a user follows, with their unread replies: `GET /api/v1/threads`. Read-only.

Two statements whatever the number of threads (four on SQLite, where the roots' mentions
and reactions are read on their own, as for history pages): the followed threads with
their counts, then the roots' current states through `app.queries.history`.
"""
from __future__ import annotations

from functools import cache

import sqlalchemy as sa

from app.extensions import db
from app.lib import serializers
from app.models import Membership, Message, ThreadFollow, User
from app.queries import history

# How many threads one page lists by default, and at most.
THREADS_PAGE_SIZE = 50
THREADS_MAX_PAGE_SIZE = 100

_follows = ThreadFollow.__table__
_roots = Message.__table__.alias("root")
_replies = Message.__table__.alias("reply")
_memberships = Membership.__table__


@cache
def _followed(unread_only: bool) -> sa.Select:
    """The user's followed threads in rooms they belong to, unread first, then by latest reply
    (threads without a reply last), newest root first among equals. Parameters: user_id, limit."""
    unread = (
        sa.select(sa.func.count()).select_from(_replies)
        .where(_replies.c.thread_root_id == _follows.c.root_id, _replies.c.id > _follows.c.last_read_id,
               _replies.c.author_id != _follows.c.user_id, _replies.c.deleted_at.is_(None))
        .scalar_subquery()
    )
    threads = (
        sa.select(_follows.c.root_id, _follows.c.last_read_id, _roots.c.reply_count, _roots.c.last_reply_at,
                  unread.label("unread"))
        .select_from(
            _follows.join(_roots, _roots.c.id == _follows.c.root_id)
            .join(_memberships, (_memberships.c.room_id == _roots.c.room_id)
                  & (_memberships.c.user_id == _follows.c.user_id))
        )
        .where(_follows.c.user_id == sa.bindparam("user_id"), _follows.c.following.is_(True))
        .subquery()
    )
    statement = sa.select(threads)
    if unread_only:
        statement = statement.where(threads.c.unread > 0)
    return statement.order_by(
        (threads.c.unread > 0).desc(), threads.c.last_reply_at.is_(None), threads.c.last_reply_at.desc(),
        threads.c.root_id.desc(),
    ).limit(sa.bindparam("limit"))


def get_followed_threads(user: User, *, unread_only: bool = False,
                         limit: int = THREADS_PAGE_SIZE) -> tuple[list[dict], bool]:
    """The threads the user follows in their rooms, as `{root, reply_count, unread,
    last_reply_at, last_read_id}` (root: the root's current state, a tombstone if deleted),
    and whether more are followed than `limit`. `unread` counts the replies by others, not
    deleted, past the user's marker."""
    connection = db.session.connection()
    rows = connection.execute(_followed(unread_only), {"user_id": user.id, "limit": limit + 1}).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    roots = history.get_message_states(connection, [row.root_id for row in rows], viewer_id=user.id)
    return [
        {"root": roots[row.root_id], "reply_count": row.reply_count, "unread": row.unread,
         "last_reply_at": serializers.iso(row.last_reply_at), "last_read_id": row.last_read_id}
        for row in rows
    ], has_more


_MY_FOLLOW = (
    sa.select(_follows.c.following, _follows.c.last_read_id)
    .where(_follows.c.root_id == sa.bindparam("root_id"), _follows.c.user_id == sa.bindparam("user_id"))
)
_UNREAD_PAST = (
    sa.select(sa.func.count()).select_from(_replies)
    .where(_replies.c.thread_root_id == sa.bindparam("root_id"), _replies.c.id > sa.bindparam("last_read_id"),
           _replies.c.author_id != sa.bindparam("user_id"), _replies.c.deleted_at.is_(None))
)


def get_my_follow(user: User, root_id: int) -> dict:
    """Where the user stands in one thread (the caller checked access): `{following,
    last_read_id, unread}`, with `last_read_id` 0 and every reply by others unread for a
    thread they never followed nor read."""
    connection = db.session.connection()
    params = {"root_id": root_id, "user_id": user.id}
    mine = connection.execute(_MY_FOLLOW, params).first()
    following, last_read_id = (bool(mine.following), mine.last_read_id) if mine else (False, 0)
    unread = connection.execute(_UNREAD_PAST, {**params, "last_read_id": last_read_id}).scalar_one()
    return {"following": following, "last_read_id": last_read_id, "unread": unread}
