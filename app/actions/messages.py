"""Sending messages and reading history."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import events
from app.extensions import db
from app.lib import serializers, validation
from app.lib.access import access_room_as_member
from app.lib.errors import ChatError
from app.lib.render import parse_message, render_parsed
from app.models import Membership, Mention, Message, Room, User
from app.ops import metrics


@dataclass
class SendResult:
    """The stored message, and whether it was created now or found from an earlier retry.

    `data` is the message as serialised for the broadcast: the ack and the REST reply
    send it as it is, rather than reloading the committed (expired) row to build it again.
    """

    message: Message
    created: bool
    data: dict


def check_send_message(user: User, room_id: int, body: str, client_id: str | None) -> tuple[str, str | None]:
    """Validate a message: membership, a non-blank body within the length limit, a sane client_id."""
    access_room_as_member(room_id, user)
    body = validation.clean_text(body)
    if not body.strip():
        raise ChatError("invalid", "A message cannot be empty.", field="body")
    limit = current_app.config["MESSAGE_MAX_LENGTH"]
    if len(body) > limit:
        raise ChatError("too_large", f"Messages are at most {limit} characters.", field="body")
    return body, validation.check_client_id(client_id)


def _find_by_client_id(user_id: int, client_id: str | None) -> Message | None:
    if client_id is None:
        return None
    return db.session.execute(
        db.select(Message).filter_by(author_id=user_id, client_id=client_id)
    ).scalar_one_or_none()


def _retried(existing: Message, room_id: int) -> SendResult:
    """A retry of an earlier send; the same client_id in another room is a client bug."""
    if existing.room_id != room_id:
        raise ChatError("conflict", "This client_id was already used for another message.", field="client_id")
    return SendResult(existing, created=False, data=serializers.message_dict(existing))


def do_send_message(user: User, room_id: int, body: str, client_id: str | None = None) -> SendResult:
    """Store a message, broadcast it to every member after commit, then queue its mentions.

    A retry with a client_id already used by this author returns the original message and
    sends nothing again.
    """
    from app import tasks  # tasks import actions; importing here keeps the graph acyclic

    body, client_id = check_send_message(user, room_id, body, client_id)
    existing = _find_by_client_id(user.id, client_id)
    if existing is not None:
        return _retried(existing, room_id)

    parsed = parse_message(body)
    mentioned = _resolve_mentions(room_id, parsed.mentions, exclude_user_id=user.id)
    # Locks the room row until commit (SQLite locks the database): the id allocated next is
    # committed before any later one of this room, so catching up with after=<id> never
    # skips a message that committed late.
    seq = db.session.execute(
        db.update(Room).where(Room.id == room_id).values(last_seq=Room.last_seq + 1).returning(Room.last_seq)
    ).scalar_one()
    message = Message(
        room_id=room_id,
        seq=seq,
        author_id=user.id,
        author=user,  # already loaded: serialising the message needs no query for it
        body=body,
        html=render_parsed(parsed, {u.username_key: u.username for u in mentioned}),
        client_id=client_id,
    )
    message.mentions = [Mention(user_id=u.id, user=u) for u in mentioned]
    db.session.add(message)
    try:
        db.session.flush()
    except IntegrityError:
        # The same client_id raced in from a concurrent retry: hand back the winner.
        db.session.rollback()
        existing = _find_by_client_id(user.id, client_id)
        if existing is None:
            raise
        return _retried(existing, room_id)

    # The author has read their own message.
    db.session.execute(
        db.update(Membership)
        .where(Membership.room_id == room_id, Membership.user_id == user.id,
               Membership.last_read_message_id < message.id)
        .values(last_read_message_id=message.id)
    )
    data = serializers.message_dict(message)
    events.send_event_on_commit("message", data, to=events.room_channel(room_id))
    events.on_commit(metrics.messages_sent.inc)
    if mentioned:
        events.enqueue_on_commit(tasks.notify_mentions, message.id)
    db.session.commit()
    return SendResult(message, created=True, data=data)


def _resolve_mentions(room_id: int, names: list[str], *, exclude_user_id: int) -> list[User]:
    """Members of the room among the mentioned names, in the order they were mentioned."""
    if not names:
        return []
    users = db.session.execute(
        db.select(User)
        .join(Membership, Membership.user_id == User.id)
        .filter(Membership.room_id == room_id, User.username_key.in_(names), User.id != exclude_user_id)
    ).scalars()
    by_key = {u.username_key: u for u in users}
    return [by_key[n] for n in names if n in by_key]


def get_messages(
    user: User, room_id: int, *, before: int | None = None, after: int | None = None, limit: int | None = None
) -> tuple[list[Message], bool]:
    """A page of a room's history, oldest first, and whether more lies beyond it.

    `before` pages backwards from an id (the newest page when neither is given);
    `after` pages forwards from an id, for catching up after a reconnect.
    """
    access_room_as_member(room_id, user)
    limit = _check_limit(limit)
    if before is not None and after is not None:
        raise ChatError("invalid", "Give 'before' or 'after', not both.")
    query = _history_query(room_id)
    if after is not None:
        rows = list(db.session.execute(
            query.filter(Message.id > after).order_by(Message.id.asc()).limit(limit + 1)
        ).scalars())
        return rows[:limit], len(rows) > limit
    if before is not None:
        query = query.filter(Message.id < before)
    rows = list(db.session.execute(query.order_by(Message.id.desc()).limit(limit + 1)).scalars())
    has_more = len(rows) > limit
    return list(reversed(rows[:limit])), has_more


def get_messages_around(
    user: User, room_id: int, message_id: int, *, limit: int | None = None
) -> tuple[list[Message], bool, bool]:
    """A page centred on one message (for links to it), oldest first.

    Returns the page and whether older and newer messages lie beyond it.
    """
    access_room_as_member(room_id, user)
    limit = _check_limit(limit)
    query = _history_query(room_id)
    anchor = db.session.execute(query.filter(Message.id == message_id)).scalar_one_or_none()
    if anchor is None:
        raise ChatError("not_found", "No such message in this room.", field="around")
    # Up to a full page each way, then a window as centred as the room's edges allow.
    newer = list(db.session.execute(
        query.filter(Message.id > message_id).order_by(Message.id.asc()).limit(limit)
    ).scalars())
    older = list(db.session.execute(
        query.filter(Message.id < message_id).order_by(Message.id.desc()).limit(limit)
    ).scalars())
    room_left = limit - 1
    n_newer = min(len(newer), max(room_left // 2, room_left - len(older)))
    n_older = min(len(older), room_left - n_newer)
    page = list(reversed(older[:n_older])) + [anchor] + newer[:n_newer]
    return page, len(older) > n_older, len(newer) > n_newer


def _check_limit(limit: int | None) -> int:
    max_limit = current_app.config["HISTORY_MAX_PAGE_SIZE"]
    limit = current_app.config["HISTORY_PAGE_SIZE"] if limit is None else limit
    if not 1 <= limit <= max_limit:
        raise ChatError("invalid", f"'limit' must be between 1 and {max_limit}.", field="limit")
    return limit


def _history_query(room_id: int):
    return (
        db.select(Message)
        .filter(Message.room_id == room_id)
        .options(selectinload(Message.author), selectinload(Message.mentions).selectinload(Mention.user))
    )
