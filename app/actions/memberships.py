"""Who belongs to a room: joining, inviting, leaving."""
from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError

from app import events
from app.actions.dms import do_hide_dm
from app.actions.users import get_user_by_username
from app.extensions import db
from app.lib import serializers, validation
from app.lib.access import access_room, get_membership
from app.lib.errors import ChatError
from app.models import Membership, Message, Room, User
from app.queries.rooms import member_count, room_view


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
    if room.is_dm:
        raise ChatError("forbidden", "A direct conversation keeps its people; start a new one to add someone.")
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
    """Leave a room; the user's sockets stop receiving it at once. Leaving a direct
    conversation closes it instead (app.actions.dms.do_hide_dm)."""
    room, membership = access_room(room_id, user)
    if membership is None:
        raise ChatError("not_member", "You are not a member of this room.")
    if room.is_dm:
        do_hide_dm(user, room, membership)
        return
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


def _commit_membership() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent join of the same user: the membership exists, which is what was asked.
        db.session.rollback()
