"""What a user sees of rooms: the directory, members, unread counts, heads. Read-only."""
from __future__ import annotations

from sqlalchemy import func, or_

from app.extensions import db
from app.lib import serializers
from app.lib.access import get_membership
from app.models import Membership, Message, Room, User


def member_count(room_id: int) -> int:
    """How many members a room has."""
    return db.session.execute(
        db.select(func.count(Membership.id)).filter_by(room_id=room_id)
    ).scalar_one()


def get_members(room: Room) -> list[User]:
    """The members of a room, by username."""
    return list(
        db.session.execute(
            db.select(User).join(Membership, Membership.user_id == User.id)
            .filter(Membership.room_id == room.id).order_by(User.username_key)
        ).scalars()
    )


def room_view(room: Room, user: User) -> dict:
    """One room as the given user sees it."""
    membership = get_membership(room.id, user.id)
    unread = _unread_count(room.id, user.id, membership.last_read_message_id) if membership else None
    return serializers.room_dict(
        room, is_member=membership is not None, member_count=member_count(room.id), unread=unread
    )


def _unread_count(room_id: int, user_id: int, last_read: int) -> int:
    """Messages by others in the room's main timeline after the read marker (thread replies
    count in their thread: app.queries.threads)."""
    return db.session.execute(
        db.select(func.count(Message.id)).filter(
            Message.room_id == room_id, Message.id > last_read, Message.author_id != user_id,
            Message.deleted_at.is_(None), Message.in_main_timeline(),
        )
    ).scalar_one()


def get_rooms_for_user(user: User) -> list[dict]:
    """The user's rooms and every public room, with membership, size and unread counts."""
    counts = dict(
        db.session.execute(
            db.select(Membership.room_id, func.count(Membership.id)).group_by(Membership.room_id)
        ).all()
    )
    mine = {
        m.room_id: m
        for m in db.session.execute(db.select(Membership).filter_by(user_id=user.id)).scalars()
    }
    rooms = db.session.execute(
        db.select(Room).filter(or_(Room.is_private.is_(False), Room.id.in_(list(mine) or [0])))
        # A private room may share its name with another room: the id keeps the order stable.
        .order_by(Room.name_key, Room.id)
    ).scalars()
    result = []
    for room in rooms:
        membership = mine.get(room.id)
        unread = _unread_count(room.id, user.id, membership.last_read_message_id) if membership else None
        result.append(
            serializers.room_dict(
                room, is_member=membership is not None, member_count=counts.get(room.id, 0), unread=unread
            )
        )
    return result


def get_room_heads(user: User) -> dict[int, int]:
    """The latest change number (rev) of each room the user belongs to."""
    return dict(db.session.execute(
        db.select(Room.id, Room.last_rev).join(Membership, Membership.room_id == Room.id)
        .where(Membership.user_id == user.id)
    ).all())


def get_room_ids_for_user(user_id: int) -> list[int]:
    """Ids of the rooms a user belongs to."""
    return list(db.session.execute(db.select(Membership.room_id).filter_by(user_id=user_id)).scalars())
