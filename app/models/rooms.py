"""Rooms and who belongs to them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class Room(db.Model):
    """A conversation space; private rooms are visible to their members only."""

    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    topic: Mapped[str] = mapped_column(String(250), nullable=False, default="")
    is_private: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # The seq of the room's newest message; bumping it locks the room row until commit, so
    # messages of one room commit in the order of their ids and seqs.
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    owner = relationship("User")
    memberships = relationship("Membership", back_populates="room", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"<Room {self.name}>"

    def __str__(self) -> str:
        return self.name


class Membership(db.Model):
    """A user's place in a room, with the last message they have read there."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("room_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_read_message_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    room = relationship("Room", back_populates="memberships")
    user = relationship("User")

    def __str__(self) -> str:
        return f"{self.user} in {self.room}"
