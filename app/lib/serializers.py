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


def room_dict(room: Room, *, is_member: bool, member_count: int, unread: int | None = None,
              members: list[dict] | None = None, viewer_id: int | None = None) -> dict:
    """A room as listed in the directory; a direct conversation also lists its participants
    (`members`) and is titled by those other than the viewer."""
    data = {
        "id": room.id,
        "kind": room.kind,
        "name": room.name,
        "topic": room.topic,
        "is_private": room.is_private,
        "owner_id": room.owner_id,
        "wildcard_policy": room.wildcard_policy,
        "is_member": is_member,
        "member_count": member_count,
        "created_at": iso(room.created_at),
    }
    if unread is not None:
        data["unread"] = unread
    if members is not None:
        data["members"] = members
        others = [m for m in members if m["id"] != viewer_id] or members
        data["title"] = ", ".join(m["display_name"] for m in others)
    return data


def profile_dict(user: User, presence: str | None = None) -> dict:
    """A user's profile card: the public face, local time zone, status and presence."""
    return {
        **user_dict(user),
        "time_zone": user.time_zone,
        "status_text": user.status_text,
        "status_emoji": user.status_emoji,
        "dnd_until": iso(user.dnd_until),
        "presence": presence,
    }


def message_dict(message: Message, *, viewer_id: int | None = None) -> dict:
    """A message (or its tombstone) as broadcast to the room and returned by the history API.

    With `viewer_id`, each reaction also says whether that user made it (`me`): for replies
    to one user, never for broadcasts."""
    author = user_dict(message.author)
    if message.deleted_at is not None:
        return tombstone_fields(message.id, message.room_id, message.seq, message.rev, author, message.created_at,
                                message.deleted_at, **thread_fields(message))
    return changed_message_dict(message, rev=message.rev, reactions=reaction_rows(message),
                                mentions=mention_names(message), author=author, quote=quote_of(message),
                                viewer_id=viewer_id)


def thread_fields(message: Message) -> dict:
    """A message's place in threads (`thread_root_id`, `also_in_room`) and its thread's summary."""
    return {
        "thread_root_id": message.thread_root_id,
        "also_in_room": bool(message.also_in_room),
        "thread": thread_summary(message.reply_count, message.last_reply_at, message.thread_repliers),
    }


def thread_summary(reply_count: int, last_reply_at: datetime | None, repliers: list | None) -> dict | None:
    """A root's thread summary; None for a message that never had a reply (repliers unset)."""
    if repliers is None:
        return None
    return {"reply_count": reply_count, "last_reply_at": iso(last_reply_at), "repliers": list(repliers)}


# How much of a quoted message's text a quote-reply carries.
QUOTE_EXCERPT_CHARS = 200


def quote_of(message: Message) -> dict | None:
    """The quote a quote-reply carries, from the quoted message as loaded now."""
    quoted = message.quote_of
    if quoted is None:
        return None
    return quote_fields(quoted.id, user_dict(quoted.author), quoted.body, quoted.deleted_at)


def quote_fields(quoted_id: int | None, author: dict, body: str | None, deleted_at: datetime | None) -> dict | None:
    """A quoted message as a quote-reply shows it: its author and the start of its text."""
    if quoted_id is None:
        return None
    if deleted_at is not None:
        return {"id": quoted_id, "author": author, "deleted": True}
    return {"id": quoted_id, "author": author, "excerpt": body[:QUOTE_EXCERPT_CHARS], "deleted": False}


def reaction_rows(message: Message) -> list[tuple[str, int, str]]:
    """The message's reactions as (emoji, user_id, username), in the order they were made."""
    return [(r.emoji, r.user_id, r.user.username) for r in message.reactions]


def mention_names(message: Message) -> list[str]:
    """The usernames the message mentions, in the order of its mentions."""
    return [m.user.username for m in message.mentions]


def changed_message_dict(
    message: Message, *, rev: int, reactions: list[tuple[str, int, str]], mentions: list[str], author: dict,
    quote: dict | None, viewer_id: int | None = None, **columns,
) -> dict:
    """`message_dict` of a message as a change will leave it, from the message as read before
    the change: its `rev`, its `reactions` (`reaction_rows`), `mentions` (usernames),
    `author` (a `user_dict`) and `quote` (`quote_of`), and any new `body`, `html` or
    `edited_at` (columns). It reads nothing, so a change builds its state this way while it
    holds the room's lock."""
    return message_fields(
        message.id, message.room_id, message.seq, rev, author, columns.get("body", message.body),
        columns.get("html", message.html), message.created_at, columns.get("edited_at", message.edited_at),
        mentions, message.client_id, reaction_summaries(reactions, viewer_id=viewer_id),
        quote_of=message.quote_of_id, quote=quote, **thread_fields(message),
    )


def message_fields(
    message_id: int, room_id: int, seq: int, rev: int, author: dict, body: str, html: str, created_at: datetime,
    edited_at: datetime | None, mentions: list[str], client_id: str | None, reactions: list[dict],
    *, thread_root_id: int | None = None, also_in_room: bool = False, thread: dict | None = None,
    quote_of: int | None = None, quote: dict | None = None,
) -> dict:
    """A message's dict from plain values: `message_dict`'s shape, for readers that load columns
    rather than models (app.queries.history). `author` is a `user_fields` dict; `mentions`
    the mentioned usernames in the order of the mentions; `reactions` from `reaction_summaries`;
    `thread` from `thread_summary`, `quote` from `quote_fields`."""
    return {
        "id": message_id,
        "room_id": room_id,
        "seq": seq,
        "rev": rev,
        "author": author,
        "body": body,
        "html": html,
        "created_at": iso(created_at),
        "edited_at": iso(edited_at),
        "mentions": mentions,
        "client_id": client_id,
        "reactions": reactions,
        "thread_root_id": thread_root_id,
        "also_in_room": also_in_room,
        "thread": thread,
        "quote_of": quote_of,
        "quote": quote,
    }


def tombstone_fields(
    message_id: int, room_id: int, seq: int, rev: int, author: dict, created_at: datetime, deleted_at: datetime,
    *, thread_root_id: int | None = None, also_in_room: bool = False, thread: dict | None = None,
) -> dict:
    """What is left of a deleted message: its place (in its thread too), its author, when it
    went, and a root's thread summary; no text."""
    return {
        "id": message_id,
        "room_id": room_id,
        "seq": seq,
        "rev": rev,
        "author": author,
        "created_at": iso(created_at),
        "deleted": True,
        "deleted_at": iso(deleted_at),
        "thread_root_id": thread_root_id,
        "also_in_room": also_in_room,
        "thread": thread,
    }


# How many of the users who reacted with one emoji a message's state names.
REACTION_USERS_SHOWN = 20


def reaction_summaries(rows, *, viewer_id: int | None = None) -> list[dict]:
    """[{emoji, count, users, me?}] from (emoji, user_id, username) rows in the order the
    reactions were made: emoji in the order each was first used, the first
    REACTION_USERS_SHOWN users of each; `me` only when a viewer is given."""
    summaries: dict[str, dict] = {}
    for emoji, user_id, username in rows:
        summary = summaries.get(emoji)
        if summary is None:
            summary = summaries[emoji] = {"emoji": emoji, "count": 0, "users": []}
            if viewer_id is not None:
                summary["me"] = False
        summary["count"] += 1
        if len(summary["users"]) < REACTION_USERS_SHOWN:
            summary["users"].append(username)
        if user_id == viewer_id:
            summary["me"] = True
    return list(summaries.values())


def notification_dict(notification: Notification) -> dict:
    """A notification as pushed to its user and listed under the bell."""
    return {
        "id": notification.id,
        "kind": notification.kind,
        "room_id": notification.room_id,
        "message": message_dict(notification.message, viewer_id=notification.user_id),
        "created_at": iso(notification.created_at),
        "read_at": iso(notification.read_at),
    }
