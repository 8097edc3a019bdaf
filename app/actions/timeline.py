"""A room's change sequence: every visible change of a room takes its next number here.

A new message, an edit, a delete, a reaction added or removed: each takes the room's next
`last_rev` by bumping it, which locks the room's row until the transaction ends, so a room's
changes commit in the order of their numbers and a client catching up with since=<rev>
never skips one that committed late. A transaction that takes a number must give it to a
message (`messages.rev`) and commit, or roll back: a number taken and committed unused
would be a hole clients wait for. Sends take theirs in the same statement as their seqs
(app.actions.messages, per batch); this is the one implementation for everything else,
the same statement on PostgreSQL and SQLite.
"""
from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.lib.errors import ChatError

_TAKE_REV = sa.text("UPDATE rooms SET last_rev = last_rev + 1 WHERE id = :room_id RETURNING last_rev")


def take_rev(room_id: int) -> int:
    """The room's next change number, holding the room's lock until the transaction ends."""
    rev = db.session.execute(_TAKE_REV, {"room_id": room_id}).scalar()
    if rev is None:
        raise ChatError("not_found", "No such room.")
    return rev
