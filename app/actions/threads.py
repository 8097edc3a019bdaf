"""Threads: where a reply attaches, the root's summary, and who follows a thread.

A reply is a message with `thread_root_id`; sending one is a send (app.actions.messages),
which calls in here for what is particular to replies. Threads are one level deep: a reply
to a reply attaches to its root.

A root's summary (reply count, newest reply's time, first repliers) is a change of the root
like an edit: it takes the room's next rev, under the room's lock, in the transaction of
the reply (or of the delete of a reply) that changed it, so the count is exact whatever
number of servers send replies at once, and catching up with since= brings summaries back
with the replies. Under the lock the summary is counted again from the replies rather than
incremented, so a delete and a reply need no bookkeeping of their own.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app import events
from app.actions import timeline
from app.extensions import db
from app.lib.access import access_message
from app.lib.errors import ChatError
from app.lib.validation import MAX_ID
from app.models import Message, ThreadFollow, User
from app.models.base import utcnow
from app.queries import history
from app.queries import threads as thread_queries

# How many repliers a root's summary names.
THREAD_REPLIERS_SHOWN = 5

_messages = Message.__table__
_users = User.__table__
_follows = ThreadFollow.__table__

_REPLY_COUNT = (
    sa.select(sa.func.count(), sa.func.max(_messages.c.created_at))
    .where(_messages.c.thread_root_id == sa.bindparam("root_id"), _messages.c.deleted_at.is_(None))
)
_REPLIERS = (
    sa.select(_users.c.username)
    .select_from(_messages.join(_users, _users.c.id == _messages.c.author_id))
    .where(_messages.c.thread_root_id == sa.bindparam("root_id"), _messages.c.deleted_at.is_(None))
    .group_by(_users.c.id, _users.c.username)
    .order_by(sa.func.min(_messages.c.id))
    .limit(THREAD_REPLIERS_SHOWN)
)

# The newest reply of a thread (0: none yet), deleted ones included: a marker is a place.
_NEWEST_REPLY = (
    sa.select(sa.func.coalesce(sa.func.max(_messages.c.id), 0))
    .where(_messages.c.thread_root_id == sa.bindparam("root_id"))
)


def find_message_in_room(room_id: int, message_id, field: str) -> Message:
    """A message of this room that a reply or a quote may name: not_found for one that is not
    in this room (or does not exist), gone for a deleted one. The caller is a member."""
    if isinstance(message_id, bool) or not isinstance(message_id, int) or not 0 < message_id <= MAX_ID:
        raise ChatError("invalid", f"'{field}' must be a message id.", field=field)
    message = db.session.get(Message, message_id)
    if message is None or message.room_id != room_id:
        raise ChatError("not_found", "No such message in this room.", field=field)
    if message.is_deleted:
        raise ChatError("gone", "That message was deleted.", field=field)
    return message


def find_root(room_id: int, message_id) -> Message:
    """The root a reply to `message_id` attaches to: the message, or its root if it is itself
    a reply (one level of threads). not_found / gone as `find_message_in_room`."""
    message = find_message_in_room(room_id, message_id, "thread_root_id")
    if message.thread_root_id is None:
        return message
    return find_message_in_room(room_id, message.thread_root_id, "thread_root_id")


# `update_summary` on PostgreSQL: the room's next rev, the count, the newest reply's time and
# the first repliers, written to the root in one statement.
_SUMMARY_PG = sa.text(f"""WITH bump AS (
    UPDATE rooms SET last_rev = last_rev + 1 WHERE id = :room_id RETURNING last_rev
), live AS (
    SELECT id, author_id, created_at FROM messages WHERE thread_root_id = :root_id AND deleted_at IS NULL
), repliers AS (
    SELECT users.username, min(live.id) AS first FROM live JOIN users ON users.id = live.author_id
    GROUP BY users.id, users.username ORDER BY first LIMIT {THREAD_REPLIERS_SHOWN}
)
UPDATE messages SET rev = bump.last_rev,
    reply_count = (SELECT count(*) FROM live),
    last_reply_at = (SELECT max(created_at) FROM live),
    thread_repliers = (SELECT coalesce(json_agg(username ORDER BY first), '[]'::json) FROM repliers)
FROM bump WHERE messages.id = :root_id
RETURNING messages.rev""")


def update_summary(room_id: int, root_id: int, by: dict) -> None:
    """Count the root's thread again and give the root the room's next rev, broadcasting its
    state (`message_updated`, change `thread`) after commit. Holds the room's lock until the
    transaction ends (the caller commits); a deleted root keeps its summary too."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        # One statement, one round trip while the room is locked.
        if connection.execute(_SUMMARY_PG, {"room_id": room_id, "root_id": root_id}).scalar() is None:
            raise ChatError("not_found", "No such room.")
    else:
        rev = timeline.take_rev(room_id)
        count, last_reply_at = connection.execute(_REPLY_COUNT, {"root_id": root_id}).one()
        repliers = list(connection.execute(_REPLIERS, {"root_id": root_id}).scalars())
        connection.execute(
            _messages.update().where(_messages.c.id == root_id)
            .values(rev=rev, reply_count=count, last_reply_at=last_reply_at, thread_repliers=repliers)
        )
    # Read under the lock: the root's reactions or text cannot change before commit, so the
    # state broadcast is the state as of this rev.
    state = history.get_message_states(connection, [root_id])[root_id]
    timeline.send_change_on_commit(state, {"kind": "thread", "by": by})


def followers_of_root(root: Message) -> list[int]:
    """Who a reply to this root makes follow the thread besides its author: the root's author
    and the members the root mentions (read before the send's batch, with the root)."""
    return [root.author_id, *(m.user_id for m in root.mentions)]


def follow(follows: dict[tuple[int, int], int]) -> None:
    """The follows replies make, in one statement: `{(root_id, user_id): read_up_to}`. A
    replier (`read_up_to`: the id of their newest reply there) follows again, even after
    unfollowing, and has read up to that reply; the others it names (0: the root's author, the
    members mentioned in the thread) follow unless they already have a say."""
    if not follows:
        return
    _upsert_follows(
        [{"root_id": root_id, "user_id": user_id, "following": True, "last_read_id": read_up_to}
         for (root_id, user_id), read_up_to in follows.items()],
        following=lambda new: sa.case((new.last_read_id > 0, True), else_=_follows.c.following),
    )


def follow_mentioned(root_id: int, user_ids: list[int]) -> None:
    """Members newly mentioned in a thread (by an edit) follow it, unless they already have a say."""
    follow({(root_id, user_id): 0 for user_id in user_ids})


def access_thread(user: User, message_id: int) -> int:
    """The root id of the thread `message_id` is in (the message itself when it is top-level),
    for a member of its room; one not_found for anything else, a room one could join included."""
    try:
        message, _room, _membership = access_message(message_id, user)
    except ChatError as exc:
        if exc.code == "not_member":
            raise ChatError("not_found", "No such message.") from None
        raise
    return message.thread_root_id or message.id


def do_follow_thread(user: User, message_id: int, following: bool) -> dict:
    """Follow (or stop following) the thread of a message as a member of its room; the id of a
    reply means its root, and a message without replies yet may be followed too. An
    unfollow is remembered (a row with `following` false), so that being mentioned later does
    not make the user follow again; only following or replying does. -> {root_id, following}"""
    root_id = access_thread(user, message_id)
    # The read marker stays as it is.
    _upsert_follows([{"root_id": root_id, "user_id": user.id, "following": following, "last_read_id": 0}],
                    following=lambda new: new.following)
    db.session.commit()
    return {"root_id": root_id, "following": following}


def do_mark_thread_read(user: User, message_id: int, read_id: int | None = None) -> dict:
    """Move the user's read marker in the thread of `message_id` forward (never back) to the
    reply `read_id`, or to the newest reply; when it moves, the user's sockets get
    `thread_read` after commit. -> {root_id, last_read_id, unread}

    Reading a thread one does not follow keeps the marker in a row that does not follow (as
    an unfollow does): being mentioned there later does not make one follow it."""
    root_id = access_thread(user, message_id)
    connection = db.session.connection()
    newest = connection.execute(_NEWEST_REPLY, {"root_id": root_id}).scalar_one()
    target = newest if read_id is None else min(read_id, newest)
    mine = thread_queries.get_my_follow(user, root_id)
    moved = target > mine["last_read_id"]
    if moved:
        _upsert_follows([{"root_id": root_id, "user_id": user.id, "following": False, "last_read_id": target}])
        # Read again: a concurrent read may have moved it further still.
        mine = thread_queries.get_my_follow(user, root_id)
    state = {"root_id": root_id, "last_read_id": mine["last_read_id"], "unread": mine["unread"]}
    if moved:
        events.send_event_on_commit("thread_read", dict(state), to=events.user_channel(user.id))
        db.session.commit()
    return state


def _insert(connection):
    return pg_insert if connection.dialect.name == "postgresql" else sqlite_insert


def _upsert_follows(rows: list[dict], following=None) -> None:
    """Insert follow rows (root_id, user_id, following, last_read_id) in one statement. Where a
    row exists, its read marker only moves forward and `following` becomes `following(new)`
    (`new`: the row given), or stays as it is without `following`."""
    connection = db.session.connection()
    now = utcnow()
    statement = _insert(connection)(_follows).values([{**row, "created_at": now} for row in rows])
    new = statement.excluded
    set_ = {"last_read_id": sa.case((new.last_read_id > _follows.c.last_read_id, new.last_read_id),
                                    else_=_follows.c.last_read_id)}
    if following is not None:
        set_["following"] = following(new)
    connection.execute(statement.on_conflict_do_update(index_elements=["root_id", "user_id"], set_=set_))
