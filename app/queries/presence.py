"""Who sees whose presence, and the status fields a presence carries. Read-only.

Presence is shown to the people who share a room or DM with a user, and to the user.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

import sqlalchemy as sa

from app.extensions import db
from app.lib import serializers
from app.models import Membership, User

_mine = Membership.__table__.alias("mine")
_theirs = Membership.__table__.alias("theirs")
_users = User.__table__


def get_audience(user_id: int) -> list[int]:
    """Everyone who shares a room or DM with the user, the user included (one statement)."""
    rows = db.session.execute(
        sa.select(_theirs.c.user_id).distinct()
        .select_from(_mine.join(_theirs, _theirs.c.room_id == _mine.c.room_id))
        .where(_mine.c.user_id == user_id)
    ).scalars()
    audience = set(rows)
    audience.add(user_id)
    return sorted(audience)


def get_visible_user_ids(viewer_id: int, user_ids: Iterable[int]) -> set[int]:
    """Those of user_ids whose presence the viewer may see: people sharing a room or DM with
    them, and the viewer."""
    wanted = set(user_ids)
    visible = {viewer_id} & wanted
    others = wanted - visible
    if others:
        visible.update(db.session.execute(
            sa.select(_theirs.c.user_id).distinct()
            .select_from(_mine.join(_theirs, _theirs.c.room_id == _mine.c.room_id))
            .where(_mine.c.user_id == viewer_id, _theirs.c.user_id.in_(sorted(others)))
        ).scalars())
    return visible


def get_statuses(user_ids: Iterable[int]) -> dict[int, dict]:
    """The status fields a presence carries, for each existing user among user_ids."""
    user_ids = sorted(set(user_ids))
    if not user_ids:
        return {}
    rows = db.session.execute(
        sa.select(_users.c.id, _users.c.status_text, _users.c.status_emoji, _users.c.dnd_until)
        .where(_users.c.id.in_(user_ids))
    ).all()
    return {
        row.id: {"status_text": row.status_text or "", "status_emoji": row.status_emoji or "",
                 "dnd_until": serializers.iso(_utc(row.dnd_until))}
        for row in rows
    }


def _utc(value: datetime | None) -> datetime | None:
    # The column type gives aware datetimes; PostgreSQL's are in the session's time zone.
    return None if value is None else value.astimezone(timezone.utc)


def status_key(status: dict) -> str:
    """The status fields as one string, to tell whether a presence changed since it was sent."""
    return "\x1f".join((status["status_text"], status["status_emoji"], status["dnd_until"] or ""))


def get_presence(viewer_id: int, user_ids: list[int]) -> list[dict]:
    """`GET /api/v1/presence`: each visible user's presence with its status, in the order asked."""
    from app.realtime import presence

    visible = get_visible_user_ids(viewer_id, user_ids)
    shown = [user_id for user_id in dict.fromkeys(user_ids) if user_id in visible]
    statuses = get_statuses(shown)
    shown = [user_id for user_id in shown if user_id in statuses]
    states = presence.get_states(shown)
    return [{"user_id": user_id, "state": states[user_id], **statuses[user_id]} for user_id in shown]
