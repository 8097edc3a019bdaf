"""What a user sees of rooms: the directory, members, unread counts, heads. Read-only."""
from __future__ import annotations

from sqlalchemy import func, or_

from app.extensions import db
from app.lib import serializers
from app.lib.access import get_membership
from app.models import Membership, Message, Room, User
from app.models.rooms import DM, ROOM


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
    """One room as the given user sees it (a DM with its participants)."""
    membership = get_membership(room.id, user.id)
    unread = _unread_count(room.id, user.id, membership.last_read_message_id) if membership else None
    members = None
    if room.is_dm:
        members = get_dm_members([room.id]).get(room.id, [])
    data = serializers.room_dict(
        room, is_member=membership is not None, member_count=member_count(room.id), unread=unread,
        members=members, viewer_id=user.id,
    )
    if room.is_dm and membership is not None:
        data["hidden"] = _is_hidden(room.id, membership.hidden_before_id)
        data["last_message_at"] = serializers.iso(_last_message_at(room.id) or room.created_at)
    return data


def get_dm_members(room_ids: list[int]) -> dict[int, list[dict]]:
    """The participants of each DM, by username."""
    result: dict[int, list[dict]] = {room_id: [] for room_id in room_ids}
    if not room_ids:
        return result
    rows = db.session.execute(
        db.select(Membership.room_id, User.id, User.username, User.display_name)
        .join(User, User.id == Membership.user_id)
        .where(Membership.room_id.in_(room_ids)).order_by(User.username_key)
    ).all()
    for room_id, user_id, username, display_name in rows:
        result[room_id].append(serializers.user_fields(user_id, username, display_name))
    return result


def _last_message_at(room_id: int):
    return db.session.execute(
        db.select(Message.created_at).where(Message.room_id == room_id).order_by(Message.id.desc()).limit(1)
    ).scalar_one_or_none()


def _is_hidden(room_id: int, hidden_before_id: int | None) -> bool:
    if hidden_before_id is None:
        return False
    newer = db.session.execute(
        db.select(Message.id).where(Message.room_id == room_id, Message.id > hidden_before_id).limit(1)
    ).first()
    return newer is None


def get_dms(user: User) -> list[dict]:
    """The user's direct conversations, newest activity first; those they closed are left out
    until a message arrives after the closing."""
    # Per room, the newest message by the (room_id, id) index: one short index probe each.
    last_id = (db.select(func.max(Message.id)).where(Message.room_id == Room.id)
               .correlate(Room).scalar_subquery().label("last_id"))
    rows = db.session.execute(
        db.select(Room, Membership, last_id)
        .join(Membership, (Membership.room_id == Room.id) & (Membership.user_id == user.id))
        .where(Room.kind == DM)
    ).all()
    times = dict(db.session.execute(
        db.select(Message.id, Message.created_at).where(Message.id.in_([row[2] for row in rows if row[2]] or [0]))
    ).all())
    rows = [(room, membership, last, times.get(last)) for room, membership, last in rows]
    visible = [
        (room, membership, last_at or room.created_at)
        for room, membership, last_id, last_at in rows
        if membership.hidden_before_id is None or (last_id or 0) > membership.hidden_before_id
    ]
    visible.sort(key=lambda row: (row[2], row[0].id), reverse=True)
    members = get_dm_members([room.id for room, _, _ in visible])
    result = []
    for room, membership, last_at in visible:
        people = members.get(room.id, [])
        data = serializers.room_dict(
            room, is_member=True, member_count=len(people),
            unread=_unread_count(room.id, user.id, membership.last_read_message_id),
            members=people, viewer_id=user.id,
        )
        data["hidden"] = False
        data["last_message_at"] = serializers.iso(last_at)
        result.append(data)
    return result


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
    """The user's rooms and every public room, with membership, size and unread counts (not
    direct conversations: `get_dms`)."""
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
        db.select(Room).filter(or_(Room.is_private.is_(False), Room.id.in_(list(mine) or [0])), Room.kind == ROOM)
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
