"""Creating rooms (joining, inviting and leaving: app.actions.memberships; what a user sees
of rooms: app.queries.rooms)."""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from app import events
from app.extensions import db
from app.lib import validation
from app.lib.errors import ChatError
from app.models import Membership, Room, User
from app.lib.access import access_room_as_member
from app.models.rooms import WILDCARDS_ADMINS, WILDCARDS_MEMBERS, random_room_id
from app.queries.rooms import room_view


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
    topic = check_topic(topic)
    if not is_private and _public_name_taken(name.lower()):
        raise _name_taken()
    return name, topic


def check_topic(topic: str | None) -> str:
    """A one-line topic of at most 250 characters."""
    topic = validation.clean_text(topic or "").replace("\n", " ").strip()
    if len(topic) > 250:
        raise ChatError("invalid", "Topics are at most 250 characters.", field="topic")
    return topic


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


_UNSET = object()


def do_update_room(user: User, room_id: int, *, topic=_UNSET, wildcard_policy=_UNSET) -> Room:
    """Change a room's topic or who may use @room and @here in it: its owner or an administrator;
    members see the change live (`room_updated`)."""
    room, _membership = access_room_as_member(room_id, user)
    if room.is_dm:
        raise ChatError("forbidden", "A direct conversation has no settings.")
    if room.owner_id != user.id and not user.is_admin:
        raise ChatError("forbidden", "Only the room's owner or an administrator can change it.")
    if topic is not _UNSET:
        room.topic = check_topic(topic)
    if wildcard_policy is not _UNSET:
        if wildcard_policy not in (WILDCARDS_MEMBERS, WILDCARDS_ADMINS):
            raise ChatError("invalid", "'wildcard_policy' is \"members\" or \"admins\".", field="wildcard_policy")
        room.wildcard_policy = wildcard_policy
    if db.session.is_modified(room):
        events.send_event_on_commit(
            "room_updated", {"room_id": room.id, "topic": room.topic, "wildcard_policy": room.wildcard_policy},
            to=events.room_channel(room.id),
        )
    db.session.commit()
    return room
