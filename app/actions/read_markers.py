"""Read markers: how far a member has read a room."""
from __future__ import annotations

from sqlalchemy import func

from app import events
from app.extensions import db
from app.lib.access import access_room
from app.lib.errors import ChatError
from app.models import Message, User


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
