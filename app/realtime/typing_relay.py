"""Typing notices: relayed to a room's other sockets as they come, never stored.

A notice costs no database query when the typist's socket is subscribed to the room's
channel, which is exactly when they are a member (app.events keeps subscriptions in step
with memberships). Otherwise the membership is read, so that a refusal is the one every
other door gives (`not_found` for a room one cannot see, `not_member` for a public room one
has not joined), and a member whose subscription is still on its way is relayed anyway.
The thread a notice names is not looked up: only the room's members receive it, and a page
ignores a thread it does not know.
"""
from __future__ import annotations

from flask import current_app

from app import events
from app.lib import serializers
from app.lib.access import access_room_as_member
from app.models import User


def relay_typing(user: User, sid: str, room_id: int, thread_root_id: int | None, stop: bool) -> None:
    """Tell the room's members (every socket but the typist's own) that user is typing, or stopped."""
    if not events.is_subscribed(sid, events.room_channel(room_id)):
        access_room_as_member(room_id, user)  # raises not_found / not_member
    registry = current_app.extensions["chorus.sockets"]
    skip = set(registry.sids_of(user.id)) if registry is not None else set()
    skip.add(sid)
    events.send_typing(
        {"room_id": room_id, "thread_root_id": thread_root_id,
         "user": serializers.user_fields(user.id, user.username, user.display_name), "stop": stop},
        room_id, sorted(skip),
    )
