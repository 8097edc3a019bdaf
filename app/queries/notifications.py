"""A user's notifications and how many are unread. Read-only."""
from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Mention, Message, Notification, Reaction, User


def get_notifications(user: User, *, unread_only: bool = False, limit: int = 50) -> list[Notification]:
    """The user's newest notifications first."""
    query = (
        db.select(Notification).filter_by(user_id=user.id)
        .options(
            selectinload(Notification.message).selectinload(Message.author),
            selectinload(Notification.message).selectinload(Message.mentions).selectinload(Mention.user),
            selectinload(Notification.message).selectinload(Message.reactions).selectinload(Reaction.user),
        )
        .order_by(Notification.id.desc()).limit(limit)
    )
    if unread_only:
        query = query.filter(Notification.read_at.is_(None))
    return list(db.session.execute(query).scalars())


def get_unread_count(user: User) -> int:
    """How many unread notifications the user has."""
    return db.session.execute(
        db.select(func.count(Notification.id)).filter_by(user_id=user.id, read_at=None)
    ).scalar_one()
