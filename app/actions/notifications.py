"""Notifications: made by the background task for a message's mentions, its @room or @here,
a thread reply's followers and a direct message's people; marked read by their user
(listing them: app.queries.notifications)."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app import events
from app.extensions import db
from app.lib import serializers
from app.lib.errors import ChatError
from app.lib.render import parse_message
from app.models import Membership, Mention, Message, Notification, Room, ThreadFollow, User
from app.models.rooms import DM
from app.models.base import utcnow
from app.queries import notifications as notification_queries


_TOUCH = sa.text("UPDATE messages SET notified_at = notified_at WHERE id = :id")


def do_create_message_notifications(message_id: int) -> int:
    """A message's notifications, pushed live: in a direct conversation `dm` for each other
    person in it; elsewhere `mention` for each member it mentions, `wildcard` for every member
    (@room, @all, @everyone) or every member present now (@here), and for a thread reply
    `thread_reply` for each follower of the thread. Never the author, never a disabled user
    or one no longer in the room, at most one per user and message whatever the kinds (the
    first that applies, in that order).

    Safe to run again for the same message: existing notifications are left alone, and the
    people beyond its mentions are looked up only until it is marked handled (`notified_at`),
    so a rerun (an edit that adds a mention) never tells someone who followed or joined
    since. Returns how many were created.
    """
    # The message's row is locked first, as every change of a message locks it (an edit or a
    # delete updates it before touching its mentions): marking its mentions handled waits for
    # such a change instead of locking mention rows in another order and deadlocking with it.
    # The lock also runs the task's copies for one message one after another, so the second
    # sees the first one's notifications and handled marks.
    if db.session.get_bind().dialect.name != "postgresql":
        # SQLite has no row locks (FOR UPDATE is left out there): a first write takes its
        # database lock instead, which serialises the runs just the same.
        db.session.execute(_TOUCH, {"id": message_id})
    message = db.session.get(Message, message_id, with_for_update={"key_share": True}, populate_existing=True)
    if message is None:
        db.session.rollback()  # let go of the lock
        return 0
    now = utcnow()
    due = message.notify_due and message.notified_at is None
    if message.is_deleted:
        # Deleted before the task ran (a tombstone has no mentions left): nobody to tell, but
        # the message is marked handled so that the sweep stops finding it.
        if due:
            message.notified_at = now
            db.session.commit()
        else:
            db.session.rollback()
        return 0
    kinds: dict[int, str] = {}  # user id -> the one notification kind they get, in order
    is_dm = due and db.session.scalar(sa.select(Room.kind).where(Room.id == message.room_id)) == DM
    if is_dm:
        for user_id in _member_ids(message.room_id):
            kinds.setdefault(user_id, "dm")
    for mention in message.mentions:
        if mention.handled_at is None:
            mention.handled_at = now
        kinds.setdefault(mention.user_id, "mention")
    if due and not is_dm:
        for user_id in _wildcard_targets(message):
            kinds.setdefault(user_id, "wildcard")
        if message.thread_root_id is not None:
            for user_id in db.session.execute(
                sa.select(ThreadFollow.user_id)
                .where(ThreadFollow.root_id == message.thread_root_id, ThreadFollow.following.is_(True))
                .order_by(ThreadFollow.id)
            ).scalars():
                kinds.setdefault(user_id, "thread_reply")
    if due:
        message.notified_at = now
    kinds.pop(message.author_id, None)
    if kinds:
        # Once per user and message, whatever the kind: an earlier run's notification stands.
        for user_id in db.session.execute(
            sa.select(Notification.user_id).where(Notification.message_id == message.id)
        ).scalars():
            kinds.pop(user_id, None)
    if kinds:
        # Members still in the room, accounts not disabled (they may have left since the send).
        reachable = set(db.session.execute(
            sa.select(Membership.user_id).join(User, User.id == Membership.user_id)
            .where(Membership.room_id == message.room_id, Membership.user_id.in_(list(kinds)),
                   User.is_disabled.is_(False))
        ).scalars())
        kinds = {user_id: kind for user_id, kind in kinds.items() if user_id in reachable}
    created = [
        Notification(user_id=user_id, kind=kind, room_id=message.room_id, message_id=message.id)
        for user_id, kind in kinds.items()
    ]
    db.session.add_all(created)
    try:
        db.session.flush()
    except IntegrityError:
        # A concurrent run of the same task won; its notifications are the ones that count.
        db.session.rollback()
        return 0
    for notification in created:
        events.send_event_on_commit(
            "notification", serializers.notification_dict(notification),
            to=events.user_channel(notification.user_id),
        )
    db.session.commit()
    return len(created)


def _member_ids(room_id: int) -> list[int]:
    """The room's members, oldest membership first."""
    return list(db.session.execute(
        sa.select(Membership.user_id).where(Membership.room_id == room_id).order_by(Membership.id)
    ).scalars())


def _wildcard_targets(message: Message) -> list[int]:
    """Who the message's @room (@all, @everyone) or @here reaches: every member, or the members
    whose presence is active or idle as the task runs (seconds after the send)."""
    wildcards = parse_message(message.body).wildcards
    if not wildcards:
        return []
    members = _member_ids(message.room_id)
    if "room" in wildcards:
        return members
    from app.realtime import presence  # the store of this process, or Redis in a worker

    states = presence.get_states(members)
    return [user_id for user_id in members if states.get(user_id, "offline") != "offline"]


def do_create_mention_notifications(message_id: int) -> int:
    """`do_create_message_notifications` by its earlier name (mentions were all it made)."""
    return do_create_message_notifications(message_id)


def do_sweep_unhandled_mentions(min_age: float = 10.0, max_age: float = 86400.0, limit: int = 200) -> int:
    """Handle the mentions whose task was lost (a process died after commit, Redis was down,
    a worker was killed): every mention older than min_age seconds and not yet handled.

    Mentions older than max_age are left alone: a day-old ping helps nobody. Returns how
    many messages were handled.
    """
    now = utcnow()
    message_ids = list(db.session.execute(
        db.select(Mention.message_id).join(Message, Message.id == Mention.message_id)
        .where(Mention.handled_at.is_(None),
               Message.created_at < now - timedelta(seconds=min_age),
               Message.created_at > now - timedelta(seconds=max_age))
        .group_by(Mention.message_id).order_by(Mention.message_id).limit(limit)
    ).scalars())
    db.session.rollback()  # end the read before each message's own transaction
    for message_id in message_ids:
        do_create_message_notifications(message_id)
    return len(message_ids)


def do_sweep_due_messages(min_age: float = 10.0, max_age: float = 86400.0, limit: int = 200) -> int:
    """Handle the messages whose task was lost, as `do_sweep_unhandled_mentions` does mentions:
    every message older than min_age seconds (and younger than max_age) that notifies people
    beyond its mentions (a thread reply, a direct message, an @room or @here) and was never
    handled. Returns how many messages were handled."""
    now = utcnow()
    # The partial index ix_messages_notify_due holds exactly these rows, by created_at.
    message_ids = list(db.session.execute(
        sa.select(Message.id)
        .where(Message.notify_due.is_(True), Message.notified_at.is_(None),
               Message.created_at < now - timedelta(seconds=min_age),
               Message.created_at > now - timedelta(seconds=max_age))
        .order_by(Message.created_at).limit(limit)
    ).scalars())
    db.session.rollback()  # end the read before each message's own transaction
    for message_id in message_ids:
        do_create_message_notifications(message_id)
    return len(message_ids)


def do_mark_notifications_read(user: User, ids: list[int] | None = None, *, all_: bool = False) -> int:
    """Mark some or all of the user's notifications read; returns how many changed."""
    if not all_ and not ids:
        raise ChatError("invalid", "Give 'ids' or 'all': true.")
    query = db.update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if not all_:
        query = query.where(Notification.id.in_(ids))
    changed = db.session.execute(query.values(read_at=utcnow())).rowcount
    if changed:
        # Other tabs of the same user update their bell.
        unread = notification_queries.get_unread_count(user)
        events.send_event_on_commit(
            "notifications_read", {"ids": None if all_ else ids, "unread": unread}, to=events.user_channel(user.id)
        )
    db.session.commit()
    return changed
