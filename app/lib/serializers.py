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
    return user_fields(user.id, user.username, user.display_name)


def user_fields(user_id: int, username: str, display_name: str) -> dict:
    """The public face of a user, from its columns (the display name falls back to the username, as `User.name`)."""
    return {"id": user_id, "username": username, "display_name": display_name or username}


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
    return message_fields(
        message.id, message.room_id, message.seq, user_dict(message.author), message.body, message.html,
        message.created_at, [m.user.username for m in message.mentions], message.client_id,
    )


def message_fields(
    message_id: int, room_id: int, seq: int, author: dict, body: str, html: str, created_at: datetime,
    mentions: list[str], client_id: str | None,
) -> dict:
    """A message's dict from plain values: `message_dict`'s shape, for readers that load columns
    rather than models (app.queries.history). `author` is a `user_fields` dict; `mentions`
    the mentioned usernames in the order of the mentions."""
    return {
        "id": message_id,
        "room_id": room_id,
        "seq": seq,
        "author": author,
        "body": body,
        "html": html,
        "created_at": iso(created_at),
        "mentions": mentions,
        "client_id": client_id,
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
