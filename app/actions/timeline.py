"""A room's change sequence: every visible change of a room takes its next number here.

A new message, an edit, a delete, a reaction added or removed: each takes the room's next
`last_rev` by bumping it, which locks the room's row until the transaction ends, so a room's
changes commit in the order of their numbers and a client catching up with since=<rev>
never skips one that committed late. A transaction that takes a number must give it to a
message (`messages.rev`) and commit, or roll back: a number taken and committed unused
would be a hole clients wait for. Sends take theirs in the same statement as their seqs
(app.actions.messages, per batch); `change_message` is the one implementation for
everything else, the same statements on PostgreSQL and SQLite.

Every change of a room waits for that lock, so as little as possible happens while it is
held: a change reads the message and works out the new state before, then takes the number
and writes the message only if it is still as it was read (its `rev` unchanged: every
change of a message moves its rev, under this lock). Otherwise the caller rolls back and
reads again. Under the lock: the bump, the message's update, the change's own rows, commit.
"""
from __future__ import annotations

import sqlalchemy as sa

from app import events
from app.extensions import db
from app.lib.errors import ChatError
from app.models import Message

_TAKE_REV = sa.text("UPDATE rooms SET last_rev = last_rev + 1 WHERE id = :room_id RETURNING last_rev")
_messages = Message.__table__

# How often a change is tried again after a concurrent change of the same message.
ATTEMPTS = 5


def take_rev(room_id: int) -> int:
    """The room's next change number, holding the room's lock until the transaction ends."""
    rev = db.session.execute(_TAKE_REV, {"room_id": room_id}).scalar()
    if rev is None:
        raise ChatError("not_found", "No such room.")
    return rev


def change_message(message: Message, **values) -> int | None:
    """Take the room's next rev and give it to the message, with `values` (columns), if the
    message is still at the rev it was read with and not deleted; the rev, or None when
    another change came first (the caller then rolls back, which gives the number back)."""
    rev = take_rev(message.room_id)
    changed = db.session.execute(
        _messages.update()
        .where(_messages.c.id == message.id, _messages.c.rev == message.rev, _messages.c.deleted_at.is_(None))
        .values(rev=rev, **values)
    ).rowcount
    return rev if changed == 1 else None


def send_change_on_commit(state: dict, change: dict) -> None:
    """Broadcast a message's state after a change to its room once committed (`message_updated`),
    with `change` saying what happened."""
    events.send_event_on_commit("message_updated", {**state, "change": change},
                                to=events.room_channel(state["room_id"]))


def raced() -> ChatError:
    """The refusal after ATTEMPTS changes of a message all lost to concurrent ones."""
    return ChatError("conflict", "The message kept changing; try again.")
