"""Direct conversations: the one room for a set of 2 to 8 people, opened on first use, and
closing one (it comes back with the next message). Messages in them are sent, edited,
reacted to and threaded like any room's (app.actions.messages and friends)."""
from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError

from app import events
from app.extensions import db
from app.lib import validation
from app.lib.errors import ChatError
from app.models import Membership, Message, Room, User
from app.models.rooms import DM, random_room_id
from app.queries.rooms import room_view

# People in one conversation, the opener included.
DM_MAX_PEOPLE = 8
_ID_ATTEMPTS = 8


def dm_key(user_ids) -> str:
    """The key naming the conversation of exactly these people, in whatever order."""
    return ",".join(str(i) for i in sorted(set(user_ids)))


def check_dm_people(user: User, usernames) -> list[User]:
    """The other people of a new or existing DM, by their usernames: 1 to 7 existing users
    besides the opener (who may be listed too)."""
    if not isinstance(usernames, list) or not all(isinstance(u, str) for u in usernames):
        raise ChatError("invalid", "'usernames' must be a list of usernames.", field="usernames")
    keys = []
    for name in usernames:
        if not validation.USERNAME_RE.match(name):
            raise ChatError("not_found", f"No such user: {name[:40]!r}.", field="usernames")
        key = name.lower()
        if key != user.username_key and key not in keys:
            keys.append(key)
    if not keys:
        raise ChatError("invalid", "Name at least one other person.", field="usernames")
    if len(keys) > DM_MAX_PEOPLE - 1:
        raise ChatError("invalid", f"A direct conversation has at most {DM_MAX_PEOPLE} people.", field="usernames")
    found = {u.username_key: u for u in db.session.execute(
        db.select(User).where(User.username_key.in_(keys))
    ).scalars()}
    missing = [k for k in keys if k not in found]
    if missing:
        raise ChatError("not_found", f"No such user: {missing[0]}.", field="usernames")
    return [found[k] for k in keys]


def get_dm(key: str) -> Room | None:
    """The DM of the people named by key, if it exists."""
    return db.session.execute(db.select(Room).where(Room.dm_key == key)).scalar_one_or_none()


def do_open_dm(user: User, usernames) -> tuple[Room, bool]:
    """The one conversation of the user and the named people, created if it does not exist;
    (room, created). Opening it shows it again to the opener if they had closed it.

    Two first requests for the same people, from any servers, make one room: its key is
    unique, and the one that loses the race returns the winner's room."""
    others = check_dm_people(user, usernames)
    key = dm_key([user.id, *(u.id for u in others)])
    room = get_dm(key)
    if room is not None:
        _show_again(room.id, user.id)
        return room, False
    if any(u.is_disabled for u in others):
        # Nobody could answer in a new one: as for an invitation, they are not to be found.
        raise ChatError("not_found", "No such user.", field="usernames")
    for _ in range(_ID_ATTEMPTS):
        room = Room(id=random_room_id(), kind=DM, dm_key=key, name="", name_key="", topic="", is_private=True,
                    owner_id=None)
        try:
            with db.session.begin_nested():
                db.session.add(room)
                db.session.flush()
        except IntegrityError:
            existing = get_dm(key)
            if existing is not None:  # created meanwhile by a concurrent first request
                _show_again(existing.id, user.id)
                return existing, False
            continue  # the random id was taken
        break
    else:
        db.session.rollback()
        raise ChatError("conflict", "Could not pick a free room id; try again.")
    for person in (user, *others):
        # The others see the conversation once it has a message (hidden before any).
        db.session.add(Membership(room_id=room.id, user_id=person.id,
                                  hidden_before_id=None if person.id == user.id else 0))
    db.session.flush()
    for person in (user, *others):
        events.subscribe_on_commit(person.id, room.id)
        events.send_event_on_commit(
            "room_membership", {"action": "joined", "room": room_view(room, person)},
            to=events.user_channel(person.id),
        )
    db.session.commit()
    return room, True


def _show_again(room_id: int, user_id: int) -> None:
    """Clear a closed DM's hidden mark for its member, and commit."""
    changed = db.session.execute(
        db.update(Membership).where(Membership.room_id == room_id, Membership.user_id == user_id,
                                    Membership.hidden_before_id.is_not(None))
        .values(hidden_before_id=None)
    ).rowcount
    if changed:
        events.send_event_on_commit("room_membership", {"action": "shown", "room": {"id": room_id}},
                                    to=events.user_channel(user_id))
    db.session.commit()


def do_hide_dm(user: User, room: Room, membership: Membership) -> None:
    """Close a DM for its member: out of their list until a newer message arrives. They stay a
    participant (a DM's people never change), so that message still reaches them live."""
    newest = db.session.execute(
        db.select(func.coalesce(func.max(Message.id), 0)).where(Message.room_id == room.id)
    ).scalar_one()
    membership.hidden_before_id = newest
    events.send_event_on_commit("room_membership", {"action": "hidden", "room": {"id": room.id}},
                                to=events.user_channel(user.id))
    db.session.commit()
