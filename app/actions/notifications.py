"""Mention notifications: created by the background task, marked read by their user (listing
them: app.queries.notifications)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app import events
from app.extensions import db
from app.lib import serializers
from app.lib.access import get_membership
from app.lib.errors import ChatError
from app.models import Mention, Message, Notification, User
from app.models.base import utcnow
from app.queries import notifications as notification_queries


def do_create_mention_notifications(message_id: int) -> int:
    """One notification per mentioned member, never the author, never twice; pushed live.

    Safe to run again for the same message: existing notifications are left alone.
    Returns how many were created.
    """
    # The message's row is locked first, as every change of a message locks it (an edit or a
    # delete updates it before touching its mentions): marking its mentions handled waits for
    # such a change instead of locking mention rows in another order and deadlocking with it.
    message = db.session.get(Message, message_id, with_for_update={"key_share": True}, populate_existing=True)
    if message is None or message.is_deleted:
        db.session.rollback()  # let go of the lock
        return 0  # deleted before the task ran (a tombstone has no mentions left)
    existing = set(
        db.session.execute(
            db.select(Notification.user_id).filter_by(message_id=message.id, kind="mention")
        ).scalars()
    )
    created = []
    now = utcnow()
    for mention in message.mentions:
        if mention.handled_at is None:
            mention.handled_at = now
        if mention.user_id == message.author_id or mention.user_id in existing:
            continue
        if mention.user.is_disabled or get_membership(message.room_id, mention.user_id) is None:
            continue  # left the room since the message was sent
        notification = Notification(
            user_id=mention.user_id, kind="mention", room_id=message.room_id, message_id=message.id
        )
        db.session.add(notification)
        created.append(notification)
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
        do_create_mention_notifications(message_id)
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
