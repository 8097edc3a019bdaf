"""Rooms and memberships: create, join, invite, leave, and what a user sees of them."""
from __future__ import annotations

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError

from app import events
from app.actions.users import get_user_by_username
from app.extensions import db
from app.lib import serializers, validation
from app.lib.access import access_room, get_membership
from app.lib.errors import ChatError
from app.models import Membership, Message, Room, User
from app.models.rooms import random_room_id


def check_create_room(name: str, topic: str | None, is_private: bool = False) -> tuple[str, str]:
    """Validate a new room's name and topic; a public room's name must be free among public rooms.

    Private rooms may share a name with any room: a refusal for a name taken by a private
    room would tell whoever asks that the room exists.
    """
    name = name.strip()
    if not validation.ROOM_NAME_RE.match(name):
        raise ChatError(
            "invalid",
            "Room names are 1-64 letters, digits, '-' or '_', starting with a letter or digit.",
            field="name",
        )
    topic = validation.clean_text(topic or "").replace("\n", " ").strip()
    if len(topic) > 250:
        raise ChatError("invalid", "Topics are at most 250 characters.", field="topic")
    if not is_private and _public_name_taken(name.lower()):
        raise _name_taken()
    return name, topic


# Ids are drawn from 2**31 values: even among a million rooms, 8 draws in a row all hitting
# taken ids has a chance of about 1e-26.
_ID_ATTEMPTS = 8


def _public_name_taken(name_key: str) -> bool:
    return db.session.execute(
        db.select(Room.id).filter_by(name_key=name_key, is_private=False)
    ).first() is not None


def _name_taken() -> ChatError:
    return ChatError("conflict", "A room with that name exists.", field="name")


def do_create_room(user: User, name: str, topic: str | None = None, is_private: bool = False) -> Room:
    """Create a room owned by user, who becomes its first member, under a random id."""
    name, topic = check_create_room(name, topic, is_private)
    for _ in range(_ID_ATTEMPTS):
        room = Room(id=random_room_id(), name=name, name_key=name.lower(), topic=topic,
                    is_private=is_private, owner_id=user.id)
        try:
            # A savepoint: a failed insert leaves the rest of the transaction usable.
            with db.session.begin_nested():
                db.session.add(room)
        except IntegrityError:
            # A concurrent creation of the same public name, or an id already taken.
            if not is_private and _public_name_taken(name.lower()):
                db.session.rollback()
                raise _name_taken() from None
            continue
        break
    else:
        db.session.rollback()
        raise ChatError("conflict", "Could not pick a free room id; try again.")
    db.session.add(Membership(room_id=room.id, user_id=user.id))
    events.subscribe_on_commit(user.id, room.id)
    events.send_event_on_commit(
        "room_membership", {"action": "joined", "room": room_view(room, user)}, to=events.user_channel(user.id)
    )
    db.session.commit()
    return room


def _add_member(room: Room, user: User) -> Membership:
    """Insert a membership and queue the events that tell everyone concerned."""
    # Unread counting starts now: history from before joining is not "unread".
    last_id = db.session.execute(
        db.select(func.coalesce(func.max(Message.id), 0)).filter_by(room_id=room.id)
    ).scalar_one()
    membership = Membership(room_id=room.id, user_id=user.id, last_read_message_id=last_id)
    db.session.add(membership)
    db.session.flush()
    events.subscribe_on_commit(user.id, room.id)
    events.send_event_on_commit(
        "room_membership", {"action": "joined", "room": room_view(room, user)}, to=events.user_channel(user.id)
    )
    events.send_event_on_commit(
        "member_joined",
        {"room_id": room.id, "user": serializers.user_dict(user), "member_count": member_count(room.id)},
        to=events.room_channel(room.id),
    )
    return membership


def do_join_room(user: User, room_id: int) -> Room:
    """Join a public room; joining twice is harmless."""
    room, membership = access_room(room_id, user)
    if membership is not None:
        return room
    if room.is_private:  # only reachable for members, kept as a guard
        raise ChatError("not_found", "No such room.")
    _add_member(room, user)
    _commit_membership()
    return room


def do_invite_user(actor: User, room_id: int, username: str) -> User:
    """Add another user to a room: any member of a public room, only the owner of a private one."""
    room, membership = access_room(room_id, actor)
    if membership is None:
        raise ChatError("not_member", "Join the room first.")
    if room.is_private and room.owner_id != actor.id:
        raise ChatError("forbidden", "Only the room's owner can invite people to a private room.")
    invitee = get_user_by_username(username) if validation.USERNAME_RE.match(username) else None
    if invitee is None or invitee.is_disabled:
        raise ChatError("not_found", "No such user.", field="username")
    if get_membership(room.id, invitee.id) is not None:
        raise ChatError("conflict", f"{invitee.username} is already a member.", field="username")
    _add_member(room, invitee)
    _commit_membership()
    return invitee


def do_leave_room(user: User, room_id: int) -> None:
    """Leave a room; the user's sockets stop receiving it at once."""
    room, membership = access_room(room_id, user)
    if membership is None:
        raise ChatError("not_member", "You are not a member of this room.")
    db.session.delete(membership)
    db.session.flush()
    if room.owner_id == user.id:
        # The longest-standing member takes over, so a private room is never left
        # without anyone who can invite.
        heir = db.session.execute(
            db.select(Membership.user_id).filter_by(room_id=room.id).order_by(Membership.id).limit(1)
        ).scalar_one_or_none()
        room.owner_id = heir
    events.unsubscribe_on_commit(user.id, room.id)
    events.send_event_on_commit(
        "room_membership", {"action": "left", "room": {"id": room.id, "name": room.name}},
        to=events.user_channel(user.id),
    )
    events.send_event_on_commit(
        "member_left",
        {"room_id": room.id, "user": serializers.user_dict(user), "member_count": member_count(room.id)},
        to=events.room_channel(room.id),
    )
    db.session.commit()


def do_mark_room_read(user: User, room_id: int, message_id: int | None = None) -> int:
    """Move the user's read marker forward (never back) to message_id or the latest message."""
    room, membership = access_room(room_id, user)
    if membership is None:
        raise ChatError("not_member", "Join the room first.")
    latest = db.session.execute(
        db.select(func.coalesce(func.max(Message.id), 0)).filter_by(room_id=room.id)
    ).scalar_one()
    target = latest if message_id is None else min(message_id, latest)
    if target > membership.last_read_message_id:
        membership.last_read_message_id = target
        events.send_event_on_commit(
            "room_read", {"room_id": room.id, "last_read_message_id": target},
            to=events.user_channel(user.id),
        )
        db.session.commit()
    return membership.last_read_message_id


def _commit_membership() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent join of the same user: the membership exists, which is what was asked.
        db.session.rollback()


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
    return db.session.execute(
        db.select(func.count(Message.id)).filter(
            Message.room_id == room_id, Message.id > last_read, Message.author_id != user_id,
            Message.deleted_at.is_(None),
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
