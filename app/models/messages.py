"""Messages, the mentions and reactions they carry, their edits, and who follows a thread."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, or_, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class Message(db.Model):
    """One message in a room; ids order messages everywhere."""

    __tablename__ = "messages"
    __table_args__ = (
        # A retried send with the same client_id finds the original instead of a copy.
        UniqueConstraint("author_id", "client_id"),
        UniqueConstraint("room_id", "seq"),
        # Catching up reads a room's changes by rev; each rev names one message's latest change.
        UniqueConstraint("room_id", "rev"),
        Index("ix_messages_room_id_id", "room_id", "id"),
        # A thread's page: its replies by id.
        Index("ix_messages_thread_root_id_id", "thread_root_id", "id"),
        # The sweep finds messages whose notification task is due and was never run.
        Index("ix_messages_notify_due", "created_at",
              postgresql_where=text("notify_due AND notified_at IS NULL"),
              sqlite_where=text("notify_due AND notified_at IS NULL")),
        # Ids are the order of history and the resync cursor: SQLite must never reuse one.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    html: Mapped[str] = mapped_column(Text, nullable=False)
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # 1, 2, 3, ... within the room: a client that sees seq jump knows it missed a message.
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    # The room's change number of this message's latest change (creation, edit, delete,
    # reaction): catching up asks for the messages whose rev is past a cursor.
    rev: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A deleted message stays as a tombstone: its body, html, mentions, reactions and edit
    # history are gone, its place (id, seq) and author remain.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # Threads are one level deep: a reply names its root, never another reply. A reply is in
    # its thread only, unless also_in_room puts it in the room's main timeline too.
    thread_root_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=True)
    also_in_room: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # A quote-reply: the message this one answers (its quote is read with it).
    quote_of_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    # A root's thread summary, rewritten under the room's lock by every reply and every
    # delete of a reply (app.actions.threads): replies not deleted, the newest one's time,
    # and the usernames of the first THREAD_REPLIERS_SHOWN repliers. A tombstone keeps it.
    reply_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    thread_repliers: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # Whether the message notifies people beyond its @name mentions (a thread reply's followers,
    # a direct message's participants, an @room or @here), and when the notification task did
    # so (null while it is still due: the sweep finds those).
    notify_due: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    room = relationship("Room")
    author = relationship("User", foreign_keys=[author_id])
    quote_of = relationship("Message", remote_side=[id], foreign_keys=[quote_of_id])
    mentions = relationship(
        "Mention", back_populates="message", cascade="all, delete-orphan", order_by="Mention.id"
    )
    reactions = relationship(
        "Reaction", back_populates="message", cascade="all, delete-orphan", order_by="Reaction.id"
    )
    edits = relationship("MessageEdit", back_populates="message", cascade="all, delete-orphan",
                         order_by="MessageEdit.id")

    @classmethod
    def in_main_timeline(cls):
        """Whether a message is in its room's main timeline: top-level, or a thread reply also
        sent to the room (as SQL: history pages and unread counts)."""
        return or_(cls.thread_root_id.is_(None), cls.also_in_room)

    @property
    def is_deleted(self) -> bool:
        """Whether only the tombstone is left."""
        return self.deleted_at is not None

    def __str__(self) -> str:
        return f"#{self.id} {self.body[:40]}"


class Mention(db.Model):
    """A room member named with @username in a message, resolved when it was sent."""

    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id"),
        Index("ix_mentions_handled_at", "handled_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    # Set once the mention task has handled it (notified, or skipped a user who left); the
    # sweep finds the mentions a lost task never handled.
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    message = relationship("Message", back_populates="mentions")
    user = relationship("User")


class MessageEdit(db.Model):
    """One edit of a message: the text it replaced, who edited and when."""

    __tablename__ = "message_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # The body and html as they were before this edit.
    previous_body: Mapped[str] = mapped_column(Text, nullable=False)
    previous_html: Mapped[str] = mapped_column(Text, nullable=False)
    edited_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    message = relationship("Message", back_populates="edits")
    editor = relationship("User")


class Reaction(db.Model):
    """One user's emoji on a message: at most one per user, emoji and message."""

    __tablename__ = "reactions"
    __table_args__ = (UniqueConstraint("message_id", "user_id", "emoji"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    emoji: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    message = relationship("Message", back_populates="reactions")
    user = relationship("User")


class ThreadFollow(db.Model):
    """One user's relation to a thread: whether they follow it, and how far they have read it.

    Replying, being the root's author or being mentioned in the thread makes a row that
    follows; an explicit unfollow stays unless the user replies again.
    """

    __tablename__ = "thread_follows"
    __table_args__ = (
        UniqueConstraint("root_id", "user_id"),
        Index("ix_thread_follows_user_id_following", "user_id", "following"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    following: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # The id of the newest reply this user has read (0: none).
    last_read_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    root = relationship("Message")
    user = relationship("User")
