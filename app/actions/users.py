"""Accounts, logins and API tokens."""
from __future__ import annotations

import hashlib
import secrets

from flask import current_app
from sqlalchemy.exc import IntegrityError

from app import events, ratelimit
from app.extensions import db
from app.lib import validation
from app.lib.errors import ChatError
from app.models import ApiToken, User
from app.models.base import utcnow


def get_user_by_username(username: str) -> User | None:
    """The user with this username, ignoring case."""
    return db.session.execute(
        db.select(User).filter_by(username_key=username.lower())
    ).scalar_one_or_none()


def check_register_user(username: str, password: str, display_name: str | None) -> tuple[str, str, str]:
    """Validate a registration; returns the cleaned username, password and display name."""
    validation.check_username(username)
    validation.check_password(password)
    display_name = validation.clean_text(display_name or "").strip()
    if len(display_name) > 64:
        raise ChatError("invalid", "Display names are at most 64 characters.", field="display_name")
    if get_user_by_username(username) is not None:
        raise ChatError("conflict", "That username is taken.", field="username")
    return username, password, display_name


def do_register_user(
    username: str, password: str, display_name: str | None = None, *, is_admin: bool = False,
    check_open: bool = True,
) -> User:
    """Create an account; refused when registration is closed (admins may still create users)."""
    if check_open and not current_app.config["REGISTRATION_OPEN"]:
        raise ChatError("registration_closed", "Registration is closed on this server.")
    username, password, display_name = check_register_user(username, password, display_name)
    user = User(username=username, username_key=username.lower(), display_name=display_name, is_admin=is_admin)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ChatError("conflict", "That username is taken.", field="username") from None
    return user


def authenticate(username: str, password: str, address: str | None = None) -> User:
    """The user with these credentials; one vague error for any mismatch.

    Failures are counted per account and per address; past the limit every attempt is
    refused with rate_limited until the window moves on, right password or not.
    """
    ratelimit.check_login_allowed(username, address)
    user = get_user_by_username(username) if validation.USERNAME_RE.match(username) else None
    if user is None or not user.check_password(password) or user.is_disabled:
        ratelimit.record_login_failure(username, address)
        raise ChatError("unauthorized", "Wrong username or password.")
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def do_create_api_token(user: User, name: str = "api") -> str:
    """Issue a new bearer token; the plain token is returned once and only its digest is kept."""
    token = secrets.token_urlsafe(32)
    name = validation.clean_text(name).replace("\n", " ").strip()[:64] or "api"
    db.session.add(ApiToken(user_id=user.id, token_hash=_digest(token), name=name))
    db.session.commit()
    return token


def get_user_by_token(token: str) -> User | None:
    """The active user a bearer token belongs to, or None."""
    if not token or len(token) > 256:
        return None
    # One query for the token and its user: this runs on every bearer request.
    user = db.session.execute(
        db.select(User).join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if user is None or user.is_disabled:
        return None
    return user


def do_set_admin(user: User, is_admin: bool = True) -> User:
    """Grant or withdraw administrator rights."""
    user.is_admin = is_admin
    db.session.commit()
    return user


def do_disable_user(user: User, disabled: bool = True) -> User:
    """Disable or re-enable an account; a disabled user's live sockets close at once."""
    user.is_disabled = disabled
    if disabled:
        events.disconnect_user_on_commit(user.id)
    db.session.commit()
    return user


def do_revoke_api_token(user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's tokens; revoking twice is harmless."""
    row = db.session.get(ApiToken, token_id) if 0 < token_id <= validation.MAX_ID else None
    if row is None or row.user_id != user.id:
        raise ChatError("not_found", "No such token.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        # Sockets do not remember which token opened them: close them all; the page's own
        # socket reconnects with its session cookie, a bot's with the revoked token cannot.
        events.disconnect_user_on_commit(user.id)
        db.session.commit()
    return row


def get_api_tokens(user: User) -> list[ApiToken]:
    """The user's tokens, newest first, revoked ones included."""
    return list(db.session.execute(
        db.select(ApiToken).filter_by(user_id=user.id).order_by(ApiToken.id.desc())
    ).scalars())
