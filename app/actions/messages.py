"""Sending messages and reading history."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import events
from app.extensions import db
from app.lib import serializers, validation
from app.lib.access import access_room_as_member
from app.lib.errors import ChatError
from app.lib.render import parse_message, render_parsed
from app.lib.validation import MAX_ID
from app.models import Membership, Mention, Message, Room, User
from app.models.base import UTCDateTime, utcnow
from app.ops import metrics


@dataclass
class SendResult:
    """The stored message, and whether it was created now or found from an earlier retry.

    `data` is the message as serialised for the broadcast: the ack and the REST reply
    send it as it is. `message` is not attached to any session.
    """

    message: Message
    created: bool
    data: dict


def check_message_body(body: str) -> str:
    """A non-blank body within the length limit, control characters stripped."""
    body = validation.clean_text(body)
    if not body.strip():
        raise ChatError("invalid", "A message cannot be empty.", field="body")
    limit = current_app.config["MESSAGE_MAX_LENGTH"]
    if len(body) > limit:
        raise ChatError("too_large", f"Messages are at most {limit} characters.", field="body")
    return body


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
    sends nothing again (the unique constraint finds it; there is no lookup beforehand).
    """
    from app import tasks  # tasks import actions; importing here keeps the graph acyclic

    body = check_message_body(body)
    client_id = validation.check_client_id(client_id)
    if not 0 < room_id <= MAX_ID:
        raise ChatError("not_found", "No such room.")
    if _on_postgresql() and not db.session().in_transaction():
        # Nothing read yet (a socket event): the store then commits inside PostgreSQL as it
        # runs, so the room lock is released without waiting for a round trip to COMMIT.
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    parsed = parse_message(body)
    mentioned = _resolve_mentions(room_id, parsed.mentions, exclude_user_id=user.id)
    html = render_parsed(parsed, {u.username_key: u.username for u in mentioned})
    created_at = utcnow()
    for _attempt in range(2):
        try:
            stored = _store_message(
                room_id=room_id, author_id=user.id, body=body, html=html, client_id=client_id,
                created_at=created_at, mention_ids=[u.id for u in mentioned],
            )
        except IntegrityError:
            # This author already used the client_id: a retry, or a concurrent one that won.
            db.session.rollback()
            existing = _find_by_client_id(user.id, client_id)
            if existing is None:
                raise
            return _retried(existing, room_id)
        if stored is not None:
            break
        db.session.rollback()
        _refuse_sender(room_id, user)  # raises, unless the user joined in between
    else:
        raise ChatError("conflict", "The room changed while sending; try again.")

    message_id, seq = stored
    message = Message(
        id=message_id, room_id=room_id, seq=seq, author_id=user.id, author=user,
        body=body, html=html, client_id=client_id, created_at=created_at,
        mentions=[Mention(message_id=message_id, user_id=u.id, user=u) for u in mentioned],
    )
    data = serializers.message_dict(message)
    events.send_event_on_commit("message", data, to=events.room_channel(room_id))
    events.on_commit(metrics.messages_sent.inc)
    if mentioned:
        events.enqueue_on_commit(tasks.notify_mentions, message_id)
    db.session.commit()
    return SendResult(message, created=True, data=data)


# PostgreSQL stores a message in one statement. Bumping the room's seq locks the room's row
# until commit, so the room's messages commit in the order of their ids and catching up
# with after=<id> never skips one that committed late; one statement and the commit are
# all that happens under that lock. The membership check (and a disabled author) stores
# nothing and returns no row.
_STORE_SQL = sa.text("""WITH bump AS (
    UPDATE rooms SET last_seq = rooms.last_seq + 1
    WHERE rooms.id = :room_id AND EXISTS (
        SELECT 1 FROM memberships JOIN users ON users.id = memberships.user_id
        WHERE memberships.room_id = :room_id AND memberships.user_id = :author_id
          AND NOT users.is_disabled)
    RETURNING rooms.last_seq
), message AS (
    INSERT INTO messages (room_id, author_id, body, html, client_id, seq, created_at)
    SELECT :room_id, :author_id, :body, :html, :client_id, bump.last_seq, :created_at FROM bump
    RETURNING messages.id, messages.seq
), mentioned AS (
    INSERT INTO mentions (message_id, user_id)
    SELECT message.id, ids.user_id
    FROM message, unnest(CAST(:mention_ids AS integer[])) WITH ORDINALITY AS ids (user_id, n)
    ORDER BY ids.n
), author_read AS (
    UPDATE memberships SET last_read_message_id = message.id FROM message
    WHERE memberships.room_id = :room_id AND memberships.user_id = :author_id
      AND memberships.last_read_message_id < message.id
)
SELECT message.id, message.seq FROM message
""").bindparams(sa.bindparam("created_at", type_=UTCDateTime()))


def _on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _store_message(
    *, room_id: int, author_id: int, body: str, html: str, client_id: str | None,
    created_at, mention_ids: list[int],
) -> tuple[int, int] | None:
    """Insert the message, its mentions and the author's read marker; (id, seq), or None
    when the author may not send there. Raises IntegrityError for a used client_id."""
    params = dict(room_id=room_id, author_id=author_id, body=body, html=html,
                  client_id=client_id, created_at=created_at)
    if _on_postgresql():
        row = db.session.execute(_STORE_SQL, {**params, "mention_ids": mention_ids}).first()
        return (row.id, row.seq) if row is not None else None
    # Elsewhere (SQLite: one writer at a time, the database is the lock) statement by statement.
    may_send = sa.exists().where(
        Membership.room_id == room_id, Membership.user_id == author_id,
        User.id == Membership.user_id, User.is_disabled.is_(False),
    )
    seq = db.session.execute(
        sa.update(Room).where(Room.id == room_id, may_send)
        .values(last_seq=Room.last_seq + 1).returning(Room.last_seq)
    ).scalar_one_or_none()
    if seq is None:
        return None
    message_id = db.session.execute(
        sa.insert(Message).values(seq=seq, **params).returning(Message.id)
    ).scalar_one()
    if mention_ids:
        db.session.execute(sa.insert(Mention), [{"message_id": message_id, "user_id": u} for u in mention_ids])
    db.session.execute(
        sa.update(Membership)
        .where(Membership.room_id == room_id, Membership.user_id == author_id,
               Membership.last_read_message_id < message_id)
        .values(last_read_message_id=message_id)
    )
    return message_id, seq


def _refuse_sender(room_id: int, user: User) -> None:
    """Why a send stored nothing: no such room, not a member, or a disabled account."""
    access_room_as_member(room_id, user)
    if db.session.scalar(db.select(User.is_disabled).where(User.id == user.id)):
        raise ChatError("unauthorized", "This account is disabled.")


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
