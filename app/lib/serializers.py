"""Models to the JSON dicts the REST API, the sockets and the page all share."""
from __future__ import annotations

from datetime import datetime

from app.models import Message, Notification, Room, User


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z suffix, or None."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_dict(user: User) -> dict:
    """The public face of a user."""
    return {"id": user.id, "username": user.username, "display_name": user.name}


def token_dict(token) -> dict:
    """An API token's metadata (never the token itself)."""
    return {
        "id": token.id,
        "name": token.name,
        "created_at": iso(token.created_at),
        "revoked_at": iso(token.revoked_at),
    }


def session_dict(session, *, current_id: int | None = None) -> dict:
    """A login session as the account page and `GET /api/v1/me/sessions` list it."""
    return {
        "id": session.id,
        "created_at": iso(session.created_at),
        "last_seen_at": iso(session.last_seen_at),
        "user_agent": session.user_agent,
        "address": session.address,
        "current": session.id == current_id,
    }


def room_dict(room: Room, *, is_member: bool, member_count: int, unread: int | None = None) -> dict:
    """A room as listed in the directory."""
    data = {
        "id": room.id,
        "name": room.name,
        "topic": room.topic,
        "is_private": room.is_private,
        "owner_id": room.owner_id,
        "is_member": is_member,
        "member_count": member_count,
        "created_at": iso(room.created_at),
    }
    if unread is not None:
        data["unread"] = unread
    return data


def message_dict(message: Message) -> dict:
    """A message as broadcast to the room and returned by the history API."""
    return {
        "id": message.id,
        "room_id": message.room_id,
        "seq": message.seq,
        "author": user_dict(message.author),
        "body": message.body,
        "html": message.html,
        "created_at": iso(message.created_at),
        "mentions": [m.user.username for m in message.mentions],
        "client_id": message.client_id,
    }


def notification_dict(notification: Notification) -> dict:
    """A notification as pushed to its user and listed under the bell."""
    return {
        "id": notification.id,
        "kind": notification.kind,
        "room_id": notification.room_id,
        "message": message_dict(notification.message),
        "created_at": iso(notification.created_at),
        "read_at": iso(notification.read_at),
    }
