"""Rooms and who belongs to them."""
from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


# Room ids are drawn at random from the whole positive INTEGER range: sequential ids would
# tell anyone who creates a room how many rooms (private ones included) exist.
ROOM_ID_MAX = 2**31 - 1
# Public room names are unique ignoring case; private ones need not be unique at all, so a
# name taken by a private room never shows through a refusal.
PUBLIC_ONLY = text("NOT is_private")


def random_room_id() -> int:
    """A fresh random room id in 1..ROOM_ID_MAX (the insert retries on the rare collision)."""
    return secrets.randbelow(ROOM_ID_MAX) + 1


ROOM, DM = "room", "dm"
# Who may use @room, @all, @everyone and @here in a room.
WILDCARDS_MEMBERS, WILDCARDS_ADMINS = "members", "admins"


class Room(db.Model):
    """A conversation space; private rooms are visible to their members only.

    A direct conversation (kind "dm") is a private room without a name whose members are
    fixed when it is created: the one room for exactly that set of people (`dm_key`)."""

    __tablename__ = "rooms"
    __table_args__ = (
        Index("uq_rooms_public_name_key", "name_key", unique=True,
              postgresql_where=PUBLIC_ONLY, sqlite_where=PUBLIC_ONLY),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=random_room_id)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    # Lower-cased copy of the name: public names are unique on it (uq_rooms_public_name_key).
    name_key: Mapped[str] = mapped_column(String(64), nullable=False)
    topic: Mapped[str] = mapped_column(String(250), nullable=False, default="")
    is_private: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # The seq of the room's newest message; bumping it locks the room row until commit, so
    # messages of one room commit in the order of their ids and seqs.
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # The room's change sequence: every visible change (a new message, an edit, a delete, a
    # reaction) takes the next number under the same row lock (app.actions.timeline).
    last_rev: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    kind: Mapped[str] = mapped_column(String(8), nullable=False, default=ROOM, server_default=ROOM)
    # A DM's participants' ids, sorted and comma-separated: unique, so two first messages
    # to the same people, on any servers, make one conversation.
    dm_key: Mapped[str | None] = mapped_column(String(120), nullable=True, unique=True)
    wildcard_policy: Mapped[str] = mapped_column(String(8), nullable=False, default=WILDCARDS_MEMBERS,
                                                 server_default=WILDCARDS_MEMBERS)

    owner = relationship("User")
    memberships = relationship("Membership", back_populates="room", cascade="all, delete-orphan")

    @property
    def is_dm(self) -> bool:
        """Whether this is a direct conversation."""
        return self.kind == DM

    def __repr__(self) -> str:
        return f"<Room {self.name or self.dm_key}>"

    def __str__(self) -> str:
        return self.name if not self.is_dm else f"DM {self.dm_key}"


class Membership(db.Model):
    """A user's place in a room, with the last message they have read there."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("room_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_read_message_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # A DM its member closed: out of their list while no message newer than this id exists.
    hidden_before_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

    room = relationship("Room", back_populates="memberships")
    user = relationship("User")

    def __str__(self) -> str:
        return f"{self.user} in {self.room}"
