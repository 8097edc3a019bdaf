"""Accounts, logins, login sessions and API tokens."""
from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, func, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import events, ratelimit
from app.extensions import db
from app.lib import validation
from app.lib.errors import ChatError
from app.lib.mentions import check_not_wildcard
from app.models import ApiToken, Login, User, UserSession
from app.models.base import utcnow


def get_user_by_username(username: str) -> User | None:
    """The user with this username, ignoring case."""
    return db.session.execute(
        db.select(User).filter_by(username_key=username.lower())
    ).scalar_one_or_none()


def check_register_user(username: str, password: str, display_name: str | None) -> tuple[str, str, str]:
    """Validate a registration; returns the cleaned username, password and display name."""
    validation.check_username(username)
    check_not_wildcard(username)
    validation.check_password(password)
    if get_user_by_username(username) is not None:
        raise ChatError("conflict", "That username is taken.", field="username")
    # The @username shown beside every display name is what tells people apart, so neither
    # may pass for someone else's username: "b0b" beside "bob", "Аlice" (Cyrillic А) as a
    # display name beside @alice.
    other = _username_looking_like(username, exclude=username)
    if other is not None:
        raise ChatError("conflict", f"That username looks too much like @{other}.", field="username")
    return username, password, check_display_name(display_name or "", username)


def check_display_name(display_name: str, username: str) -> str:
    """A cleaned display name of at most 64 characters that cannot pass for another username."""
    display_name = validation.clean_display_name(display_name)
    if len(display_name) > 64:
        raise ChatError("invalid", "Display names are at most 64 characters.", field="display_name")
    other = _username_looking_like(display_name, exclude=username) if display_name else None
    if other is not None:
        raise ChatError("conflict", f"That display name looks like the username @{other}.", field="display_name")
    return display_name


def _username_looking_like(name: str, *, exclude: str) -> str | None:
    """An existing username (other than exclude) that name cannot be told from, or None."""
    looks = {look for look in validation.name_skeletons(name) if validation.USERNAME_RE.match(look)}
    if not looks:
        return None
    # A username's skeleton is as long as the username: only those lengths need a look.
    candidates = db.session.execute(
        db.select(User.username).where(
            func.length(User.username_key).in_({len(look) for look in looks}),
            User.username_key != exclude.lower(),
        )
    ).scalars()
    return next((u for u in candidates if looks & validation.name_skeletons(u)), None)


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

    Failures are counted per account and address, per account and per address
    (app.ratelimit); while a counter is full every attempt it covers is refused with
    rate_limited, right password or not. Every attempt that gets this far hashes the
    password once, whether the user exists or not, so the time a refusal takes does
    not tell which usernames exist.
    """
    ratelimit.check_login_allowed(username, address)
    user = get_user_by_username(username) if validation.USERNAME_RE.match(username) else None
    matches = (user or User(password_hash=_stand_in_password_hash())).check_password(password)
    if user is None or not matches or user.is_disabled:
        ratelimit.record_login_failure(username, address)
        raise ChatError("unauthorized", "Wrong username or password.")
    return user


@functools.cache
def _stand_in_password_hash() -> str:
    """A hash no password matches, made as real ones are, so checking it costs the same."""
    stand_in = User()
    stand_in.set_password(secrets.token_urlsafe(32))
    return stand_in.password_hash


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def do_create_api_token(user: User, name: str = "api") -> str:
    """Issue a new bearer token; the plain token is returned once and only its digest is kept."""
    token = secrets.token_urlsafe(32)
    name = validation.clean_text(name).replace("\n", " ").strip()[:64] or "api"
    db.session.add(ApiToken(user_id=user.id, token_hash=_digest(token), name=name))
    db.session.commit()
    return token


# One query for the token and its user: this runs on every bearer request. Built once, since
# composing the select cost more CPU than running it (docs/ARCHITECTURE.md, "Hot reads").
_USER_BY_TOKEN = (
    db.select(User).join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


def get_user_by_token(token: str) -> User | None:
    """The active user a bearer token belongs to, or None."""
    if not token or len(token) > 256:
        return None
    user = db.session.execute(_USER_BY_TOKEN, {"token_hash": _digest(token)}).scalar_one_or_none()
    if user is None or user.is_disabled:
        return None
    return user


# --- Login sessions: one user_sessions row per browser login -------------------------------

def do_start_session(user: User, user_agent: str | None = None, address: str | None = None) -> User:
    """Open a login session for a user who has just proved who they are; returns the user carrying it.

    The session's secret goes into the user's id (`User.get_id`), and so into the session
    and remember cookies; only its digest is stored.
    """
    now = utcnow()
    lifetime = current_app.config["SESSION_LIFETIME"]
    secret = secrets.token_urlsafe(32)
    # Rows that can never load anyone again go at the user's next login: the table stays small.
    db.session.execute(db.delete(UserSession).where(
        UserSession.user_id == user.id,
        or_(UserSession.revoked_at.is_not(None), UserSession.created_at <= now - lifetime),
    ))
    row = UserSession(
        user_id=user.id, secret_hash=_digest(secret), created_at=now, last_seen_at=now,
        user_agent=_clean_agent(user_agent), address=(address or "")[:64],
    )
    db.session.add(row)
    db.session.flush()
    user.login = Login(row.id, secret, now + lifetime)
    db.session.commit()
    return user


def get_user_by_session(login_id: str, address: str | None = None) -> User | None:
    """The active user of a login session ("<user id>:<secret>"), or None; one query.

    It runs on every cookie request. Every SESSION_TOUCH_SECONDS it also records when and
    from where the session was last seen, in a transaction of its own so the request's
    session and objects stay as they are.
    """
    user_id, _, secret = login_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit()) or not 0 < int(user_id) <= validation.MAX_ID:
        return None
    if not 16 <= len(secret) <= 128:
        return None
    now = utcnow()
    lifetime = current_app.config["SESSION_LIFETIME"]
    found = db.session.execute(
        db.select(User, UserSession).join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.secret_hash == _digest(secret), UserSession.user_id == int(user_id),
               UserSession.revoked_at.is_(None), UserSession.created_at > now - lifetime)
    ).one_or_none()
    if found is None:
        return None
    user, row = found
    if user.is_disabled:
        return None
    user.login = Login(row.id, secret, row.created_at + lifetime)
    if now - row.last_seen_at >= timedelta(seconds=current_app.config["SESSION_TOUCH_SECONDS"]):
        with Session(db.engine) as side:
            side.execute(db.update(UserSession).where(UserSession.id == row.id)
                         .values(last_seen_at=now, address=(address or row.address)[:64]))
            side.commit()
    return user


def get_active_sessions(user: User) -> list[UserSession]:
    """The user's sessions that still work, most recently seen first."""
    lifetime = current_app.config["SESSION_LIFETIME"]
    return list(db.session.execute(
        db.select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None),
               UserSession.created_at > utcnow() - lifetime)
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    ).scalars())


def do_end_session(user: User) -> None:
    """Log out: revoke the session the user came in through and close their sockets.

    Sockets are kept per user, not per session, so all of them close; those of the user's
    other sessions reconnect with their own, still valid, cookies.
    """
    if user.login is not None:
        db.session.execute(
            db.update(UserSession)
            .where(UserSession.id == user.login.session_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    events.disconnect_user_on_commit(user.id)
    db.session.commit()


def do_revoke_session(user: User, session_id: int) -> None:
    """End one of the user's sessions (a lost laptop, say); ending one twice is harmless."""
    row = db.session.get(UserSession, session_id) if 0 < session_id <= validation.MAX_ID else None
    if row is None or row.user_id != user.id:
        raise ChatError("not_found", "No such session.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        events.disconnect_user_on_commit(user.id)
        db.session.commit()


def do_end_all_sessions(user: User, *, keep_current: bool = False) -> int:
    """Log out everywhere: revoke every session of the user (all but the current one with
    keep_current) and close their sockets; returns how many were revoked."""
    revoked = _revoke_sessions(user.id, keep=user.login if keep_current else None)
    db.session.commit()
    return revoked


def _revoke_sessions(user_id: int, keep: Login | None = None) -> int:
    """Revoke the user's live sessions but keep, and close their sockets after commit."""
    query = db.update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep.session_id)
    revoked = db.session.execute(query.values(revoked_at=utcnow())).rowcount
    events.disconnect_user_on_commit(user_id)
    return revoked


_PASSWORD_MESSAGE = "Too many wrong passwords; wait a moment and try again."


def do_change_password(user: User, current_password: str, new_password: str) -> int:
    """Change the password, given the current one; every other session ends and every
    socket closes. Returns how many sessions ended.

    The session the change came through stays logged in. API tokens are separate
    credentials and keep working (the account page lists them for review).
    """
    row = db.session.get(User, user.id)
    limit = current_app.config["PASSWORD_CHANGE_FAILURES"]
    # Wrong guesses are counted, so a stolen session cannot try passwords at will.
    ratelimit.limiter().check(limit, "password-fail", str(user.id), message=_PASSWORD_MESSAGE)
    if row is None or not row.check_password(current_password):
        ratelimit.limiter().count(limit, "password-fail", str(user.id))
        raise ChatError("wrong_password", "The current password is not right.", status=403,
                        field="current_password")
    try:
        validation.check_password(new_password)
    except ChatError as exc:
        raise ChatError(exc.code, exc.message, field="new_password") from None
    if new_password == current_password:
        raise ChatError("invalid", "Choose a password different from the current one.", field="new_password")
    row.set_password(new_password)
    revoked = _revoke_sessions(user.id, keep=user.login)
    db.session.commit()
    return revoked


def _clean_agent(user_agent: str | None) -> str:
    return validation.clean_text(user_agent or "").replace("\n", " ").strip()[:256]


def do_set_admin(user: User, is_admin: bool = True) -> User:
    """Grant or withdraw administrator rights."""
    user.is_admin = is_admin
    db.session.commit()
    return user


def do_disable_user(user: User, disabled: bool = True) -> User:
    """Disable or re-enable an account; a disabled user's live sockets close at once."""
    user.is_disabled = disabled
    if disabled:
        # Re-enabling the account must not bring back the sessions it had (one may be an intruder's).
        _revoke_sessions(user.id)
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
