"""What people say about themselves: display name, time zone, status and do-not-disturb."""
from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime, timedelta, timezone

from app import events
from app.actions.users import check_display_name
from app.extensions import db
from app.lib import validation
from app.lib.emoji import check_emoji
from app.lib.errors import ChatError
from app.models import User
from app.models.base import utcnow

STATUS_TEXT_MAX = 100
# Do-not-disturb is for hours or days, not for ever: a forgotten one would silence someone.
DND_MAX = timedelta(days=30)
_UNSET = object()


def check_time_zone(name: str) -> str:
    """An IANA time zone name ("Europe/Paris"), or "" for none."""
    if name == "":
        return name
    if name not in _zones():
        raise ChatError("invalid", "Pick a time zone from the list (an IANA name such as Europe/Paris).",
                        field="time_zone")
    return name


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_status(text: str, emoji: str) -> tuple[str, str]:
    """A one-line status text of at most 100 characters and one emoji (either may be empty)."""
    text = " ".join(validation.clean_text(text).split())
    if len(text) > STATUS_TEXT_MAX:
        raise ChatError("invalid", f"A status is at most {STATUS_TEXT_MAX} characters.", field="status_text")
    try:
        emoji = check_emoji(emoji) if emoji else ""
    except ChatError as exc:
        raise ChatError("invalid", exc.message, field="status_emoji") from None
    return text, emoji


def check_dnd_until(value: str | None) -> datetime | None:
    """An ISO 8601 time in the next 30 days (None or a past time turns do-not-disturb off)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ChatError("invalid", "'dnd_until' is an ISO 8601 time such as 2026-12-08T09:00:00Z.",
                        field="dnd_until") from None
    if when.tzinfo is None:
        raise ChatError("invalid", "'dnd_until' needs a time zone (Z or +hh:mm).", field="dnd_until")
    when = when.astimezone(timezone.utc)
    now = utcnow()
    if when <= now:
        return None
    if when - now > DND_MAX:
        raise ChatError("invalid", "Do not disturb lasts at most 30 days.", field="dnd_until")
    return when


def do_update_profile(user: User, *, display_name=_UNSET, time_zone=_UNSET, status_text=_UNSET,
                      status_emoji=_UNSET, dnd_until=_UNSET) -> User:
    """Change the given fields of the user's own profile; a new status or do-not-disturb is
    pushed to the people who share a room with them (as a presence change)."""
    changes = {}
    if display_name is not _UNSET:
        changes["display_name"] = check_display_name(display_name, user.username)
    if time_zone is not _UNSET:
        changes["time_zone"] = check_time_zone(time_zone)
    if status_text is not _UNSET or status_emoji is not _UNSET:
        text, emoji = check_status(user.status_text if status_text is _UNSET else status_text,
                                   user.status_emoji if status_emoji is _UNSET else status_emoji)
        changes.update(status_text=text, status_emoji=emoji)
    if dnd_until is not _UNSET:
        changes["dnd_until"] = check_dnd_until(dnd_until)
    changed = {name: value for name, value in changes.items() if getattr(user, name) != value}
    if not changed:
        return user
    for name, value in changed.items():
        setattr(user, name, value)
    if changed.keys() & {"status_text", "status_emoji", "dnd_until", "display_name"}:
        events.on_commit(lambda: _status_changed(user.id))
    db.session.commit()
    return user


def _status_changed(user_id: int) -> None:
    from app.realtime import presence  # the process's presence store (app.realtime.presence)

    presence.status_changed(user_id)
