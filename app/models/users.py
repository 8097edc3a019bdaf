"""People, their login sessions and their API tokens."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


@dataclass(frozen=True)
class Login:
    """The browser session a request's user came in through (not a column)."""

    session_id: int
    secret: str
    expires_at: datetime


class User(UserMixin, db.Model):
    """A person who can log in; usernames are unique ignoring case."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), nullable=False)
    # Lower-cased copy carrying the unique index, so "Alice" and "alice" cannot both exist.
    username_key: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    password_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # An IANA zone name ("Europe/Paris"), or "" when the user never said: shown as their local time.
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    status_text: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    status_emoji: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    dnd_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tokens = relationship("ApiToken", back_populates="user", cascade="all, delete-orphan")

    # Set by the session loader (app.actions.users) for a user who came in with a session
    # cookie; None for bearer tokens and for users loaded any other way.
    login = None

    def get_id(self) -> str:
        """Flask-Login: "<user id>:<session secret>", kept in the session and the remember cookie.

        The secret names one row of user_sessions, so a cookie lives exactly as long as
        that row: revoking it ends the session and the remember cookie together. Without a
        login (a bearer-token socket) it is the bare id, which no cookie loader accepts.
        """
        if self.login is None:
            return str(self.id)
        return f"{self.id}:{self.login.secret}"

    def set_password(self, password: str) -> None:
        """Hash and store a new password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Tell whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return not self.is_disabled

    @property
    def name(self) -> str:
        """The name to show: the display name, or the username."""
        return self.display_name or self.username

    def __repr__(self) -> str:
        return f"<User {self.username}>"

    def __str__(self) -> str:
        return self.username


class ApiToken(db.Model):
    """A bearer token for the REST API and Socket.IO; only its SHA-256 digest is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, default="api")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user = relationship("User", back_populates="tokens")


class UserSession(db.Model):
    """One login from one browser; only the SHA-256 digest of its secret is stored.

    The row is what makes a session cookie revocable: logout, "log out everywhere" and a
    password change set revoked_at, and a cookie whose row is revoked or expired loads no user.
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Written at most every SESSION_TOUCH_SECONDS, so a busy session is not a write per request.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    user_agent: Mapped[str] = mapped_column(String(256), nullable=False, default="")
    address: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
