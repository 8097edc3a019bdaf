"""Fetch what a user may see, or one uniform "not found" for what they may not."""
from __future__ import annotations

from app.extensions import db
from app.lib.errors import ChatError
from app.lib.validation import MAX_ID
from app.models import Membership, Message, Room, User


def get_membership(room_id: int, user_id: int) -> Membership | None:
    """The user's membership of the room, if any."""
    return db.session.execute(
        db.select(Membership).filter_by(room_id=room_id, user_id=user_id)
    ).scalar_one_or_none()


def access_room(room_id: int, user: User) -> tuple[Room, Membership | None]:
    """A room the user may see (public, or private and a member), with their membership."""
    # One query for both: this runs on every message sent and every history page.
    row = db.session.execute(
        db.select(Room, Membership)
        .outerjoin(Membership, (Membership.room_id == Room.id) & (Membership.user_id == user.id))
        .where(Room.id == room_id)
    ).first() if 0 < room_id <= MAX_ID else None
    if row is None:
        raise ChatError("not_found", "No such room.")
    room, membership = row
    if room.is_private and membership is None:
        # The same answer as a missing room: a private room's existence does not leak.
        raise ChatError("not_found", "No such room.")
    return room, membership


def access_room_as_member(room_id: int, user: User) -> tuple[Room, Membership]:
    """A room the user belongs to; a visible room they have not joined is refused."""
    room, membership = access_room(room_id, user)
    if membership is None:
        raise ChatError("not_member", "Join the room first.")
    return room, membership



def access_message(message_id: int, user: User, *, as_member: bool = True) -> tuple[Message, Room, Membership | None]:
    """A message in a room the user may read, with the room and the user's membership.

    A message in a room the user cannot see is "not found", like the room itself. With
    `as_member` (the default) a visible room the user has not joined is refused too; without
    it an administrator may reach a message in any room (to moderate it)."""
    message = db.session.get(Message, message_id) if 0 < message_id <= MAX_ID else None
    if message is None:
        raise ChatError("not_found", "No such message.")
    room_id = message.room_id
    if not as_member and user.is_admin:
        return message, db.session.get(Room, room_id), get_membership(room_id, user.id)
    try:
        room, membership = access_room(room_id, user)
    except ChatError:
        raise ChatError("not_found", "No such message.") from None
    if membership is None and as_member:
        raise ChatError("not_member", "Join the room first.")
    return message, room, membership
