"""Sending messages (reading history: app.queries.history)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from flask import current_app
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from werkzeug.local import LocalProxy

from app import events
from app.actions import threads
from app.extensions import db
from app.lib import serializers, validation
from app.lib.access import access_room_as_member
from app.lib.errors import ChatError
from app.lib.render import parse_message, render_parsed
from app.lib.validation import MAX_ID
from app.models import Membership, Mention, Message, User
from app.models.rooms import DM, WILDCARDS_ADMINS
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


@dataclass(frozen=True)
class _Reply:
    """What a send that answers another message carries: the thread it goes to (the root, and
    who else the reply makes follow it) and/or the message it quotes; empty for any other send."""

    root_id: int | None = None
    follower_ids: tuple[int, ...] = ()
    also_in_room: bool = False
    quote_of_id: int | None = None
    quote: dict | None = None


def _check_reply(user: User, room_id: int, thread_root_id, also_in_room, quote_of) -> _Reply:
    """The thread and quote of a send, checked: the room's members only (asked first, so a
    refusal says nothing about the messages of a room one may not read)."""
    if also_in_room is not None and not isinstance(also_in_room, bool):
        raise ChatError("invalid", "'also_in_room' must be true or false.", field="also_in_room")
    if also_in_room and thread_root_id is None:
        raise ChatError("invalid", "'also_in_room' is for thread replies only.", field="also_in_room")
    if thread_root_id is None and quote_of is None:
        return _Reply()
    access_room_as_member(room_id, user)
    root_id, follower_ids, quote_of_id, quote = None, (), None, None
    if thread_root_id is not None:
        root = threads.find_root(room_id, thread_root_id)
        root_id, follower_ids = root.id, tuple(threads.followers_of_root(root))
    if quote_of is not None:
        quoted = threads.find_message_in_room(room_id, quote_of, "quote_of")
        quote_of_id = quoted.id
        quote = serializers.quote_fields(quoted.id, serializers.user_dict(quoted.author), quoted.body, None)
    return _Reply(root_id, follower_ids, bool(also_in_room), quote_of_id, quote)


def do_send_message(
    user: User, room_id: int, body: str, client_id: str | None = None, *, thread_root_id: int | None = None,
    also_in_room: bool | None = None, quote_of: int | None = None,
) -> SendResult:
    """Store a message, broadcast it to every member after commit, then queue its mentions.

    With `thread_root_id` it is a reply in that message's thread (app.actions.threads):
    stored with the root's new summary and the thread's follows, in the same transaction.
    `quote_of` makes it a quote-reply.

    Sends to one room that arrive while an earlier one is being stored wait for it and are
    then stored together, by one statement and one commit, and broadcast in order (group
    commit, `_RoomQueue`); a send into an idle room is stored at once. A retry with a
    client_id already used by this author returns the original message and sends nothing
    again (the unique constraint finds it; there is no lookup beforehand).
    """
    body = check_message_body(body)
    client_id = validation.check_client_id(client_id)
    if not 0 < room_id <= MAX_ID:
        raise ChatError("not_found", "No such room.")
    fresh = not db.session().in_transaction()  # a socket event: nothing read yet
    parsed = parse_message(body)
    mentioned = resolve_mentions(room_id, parsed.mentions, exclude_user_id=user.id)
    reply = _check_reply(user, room_id, thread_root_id, also_in_room, quote_of)
    if parsed.wildcards:
        check_wildcards(user, room_id)
    html = render_parsed(parsed, {u.username_key: u.username for u in mentioned})
    if fresh and db.session().in_transaction():
        # The mention lookup's connection goes back to the pool: a send waiting for its
        # batch holds none (the loaded users stay usable, detached).
        for mentioned_user in mentioned:
            db.session.expunge(mentioned_user)
        db.session.rollback()
    # The user itself, not a proxy such as Flask-Login's current_user: another send's
    # context may store this draft, where the proxy would name that send's user.
    author = user._get_current_object() if isinstance(user, LocalProxy) else user
    draft = _Draft(author, room_id, body, html, client_id, utcnow(), mentioned, reply,
                   notify_due=bool(parsed.wildcards) or reply.root_id is not None)
    for _attempt in range(2):
        _RoomQueue.store(draft)
        if draft.result is not None:
            return draft.result
        if draft.error is not None:
            raise draft.error
        if draft.outcome == _ALONE:
            # A client_id in the batch was used before: this send on its own, to find out
            # whether it is the retry (and return the original) or was only caught with it.
            draft.reset()
            _store_batch([draft])
            if draft.result is not None:
                return draft.result
            if draft.error is not None:
                raise draft.error
        db.session.rollback()
        _refuse_sender(room_id, user)  # raises, unless the user joined in between
        draft.reset()
    raise ChatError("conflict", "The room changed while sending; try again.")


_STORED, _REFUSED, _ALONE = "stored", "refused", "alone"
# The most sends one statement stores: a bound on the statement's size and on how long the
# first of a batch waits for the broadcast of the last.
MAX_BATCH = 64


class _Draft:
    """A send on its way to the database: what to store, and what became of it."""

    __slots__ = ("author", "room_id", "body", "html", "client_id", "created_at", "mentioned", "reply",
                 "notify_due", "outcome", "result", "error", "turn")

    def __init__(self, author: User, room_id: int, body: str, html: str, client_id: str | None, created_at,
                 mentioned: list[User], reply: _Reply = _Reply(), *, notify_due: bool = False) -> None:
        self.author, self.room_id, self.body, self.html = author, room_id, body, html
        self.client_id, self.created_at, self.mentioned, self.reply = client_id, created_at, mentioned, reply
        # Whether the message notifies more than its mentions (a reply, an @room or @here);
        # the store adds every message of a direct conversation.
        self.notify_due = notify_due
        self.turn = threading.Event()
        self.reset()

    def reset(self) -> None:
        """Forget the outcome of an earlier attempt."""
        self.outcome = None
        self.result: SendResult | None = None
        self.error: BaseException | None = None
        self.turn.clear()


class _RoomQueue:
    """The sends of one room waiting in this process, and whether a batch of them is being stored.

    The first send into an idle room stores itself. Sends that arrive meanwhile wait; when
    the batch in flight is done, the oldest waiting send stores every send waiting then (up
    to MAX_BATCH) in its own session and wakes the others with their outcomes. So a room
    costs one statement and one commit per batch, not per message, once sends queue up, and
    an idle room adds no wait. The room's row lock in the database still orders batches
    from several processes; this only gathers the sends of one process.
    """

    _lock = threading.Lock()
    _rooms: dict[int, "_RoomQueue"] = {}

    def __init__(self, room_id: int) -> None:
        self.room_id = room_id
        self.waiting: list[_Draft] = []
        self.busy = False

    @classmethod
    def store(cls, draft: _Draft) -> None:
        """Store draft, alone or with others; returns when its outcome is known."""
        with cls._lock:
            queue = cls._rooms.get(draft.room_id)
            if queue is None:
                queue = cls._rooms[draft.room_id] = cls(draft.room_id)
            queue.waiting.append(draft)
            lead = not queue.busy
            queue.busy = True
        if not lead:
            draft.turn.wait()
            if draft.outcome is not None:
                return  # a batch led by another send stored (or refused) it
        # This send leads the next batch: it is the oldest waiting, so the batch starts with it.
        released = []

        def release() -> None:
            # The next batch may go as soon as this one committed: its broadcast need not wait
            # for this one's (clients order by id; a slow publish must not hold the room).
            if released:
                return
            released.append(True)
            with cls._lock:
                if queue.waiting:
                    queue.waiting[0].turn.set()
                else:
                    queue.busy = False
                    del cls._rooms[queue.room_id]

        try:
            with cls._lock:
                batch, queue.waiting[:MAX_BATCH] = queue.waiting[:MAX_BATCH], []
            if (_on_postgresql() and not db.session().in_transaction()
                    and not any(draft.reply.root_id for draft in batch)):
                # Nothing read in this session (a socket event), and nothing to do after the
                # one statement (a reply also updates its root): the store commits inside
                # PostgreSQL as it runs, so the room lock is released without waiting for
                # a round trip to COMMIT.
                db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            _store_batch(batch, committed=release)
        finally:
            release()


def _store_batch(batch: list[_Draft], committed: Callable[[], None] | None = None) -> None:
    """Store a room's drafts in the current session, commit, broadcast them in order, and
    record each draft's outcome; wakes every draft of the batch but the current one.

    `committed` runs right after the commit, before the broadcasts."""
    from app import tasks  # tasks import actions; importing here keeps the graph acyclic

    room_id = batch[0].room_id
    try:
        try:
            stored = _store_messages(room_id, batch)
        except IntegrityError:
            # Some author already used a client_id: a retry, or a concurrent one that won.
            db.session.rollback()
            if len(batch) > 1:
                for draft in batch:
                    draft.outcome = _ALONE
                return
            draft = batch[0]
            existing = _find_by_client_id(draft.author.id, draft.client_id)
            if existing is None:
                raise
            draft.outcome = _STORED
            try:
                draft.result = _retried(existing, room_id)
            except ChatError as exc:
                draft.error = exc
            return
        if committed is not None:
            events.on_commit(committed)
        repliers: dict[int, User] = {}  # root id: its latest replier, in the order of first reply
        follows: dict[tuple[int, int], int] = {}  # (root id, user id): the newest reply by them, or 0
        for draft, (message_id, seq, rev, notify_due) in zip(batch, stored):
            if message_id is None:
                draft.outcome = _REFUSED
                continue
            reply = draft.reply
            message = Message(
                id=message_id, room_id=room_id, seq=seq, rev=rev, author_id=draft.author.id, author=draft.author,
                body=draft.body, html=draft.html, client_id=draft.client_id, created_at=draft.created_at,
                mentions=[Mention(message_id=message_id, user_id=u.id, user=u) for u in draft.mentioned],
                reactions=[], thread_root_id=reply.root_id, also_in_room=reply.also_in_room,
                quote_of_id=reply.quote_of_id, reply_count=0, notify_due=notify_due,
            )
            data = serializers.message_dict(message)
            data["quote"] = reply.quote
            events.send_event_on_commit("message", data, to=events.room_channel(room_id))
            events.on_commit(metrics.messages_sent.inc)
            if reply.root_id is not None:
                for user_id in (*reply.follower_ids, *(u.id for u in draft.mentioned)):
                    follows.setdefault((reply.root_id, user_id), 0)
                follows[(reply.root_id, draft.author.id)] = message_id
                repliers[reply.root_id] = draft.author
            if draft.mentioned or notify_due:
                events.enqueue_on_commit(tasks.notify_mentions, message_id)
            draft.outcome = _STORED
            draft.result = SendResult(message, created=True, data=data)
        threads.follow(follows)
        for root_id, replier in repliers.items():
            # After the replies, each root's summary takes the next rev (sent after them).
            threads.update_summary(room_id, root_id, by=serializers.user_dict(replier))
        if any(draft.outcome == _STORED for draft in batch):
            db.session.commit()  # broadcasts the batch in the order of its seqs
        else:
            db.session.rollback()
    except Exception as exc:
        # Nothing of the batch is known to be stored (a failed commit stored nothing; a
        # statement already committed in autocommit mode is found again by its client_id).
        db.session.rollback()
        for draft in batch:
            if draft.outcome in (None, _STORED):
                draft.outcome, draft.result, draft.error = _STORED, None, exc
    finally:
        metrics.send_batch_size.observe(len(batch))
        for draft in batch:
            if draft.outcome is None:  # interrupted before any outcome: not a lead to take over
                draft.outcome, draft.error = _STORED, ChatError("internal", "Something went wrong; try again.")
        for draft in batch[1:]:
            draft.turn.set()


# A direct conversation whose other people are all disabled takes no message (the condition
# holds for such a DM only; an ordinary room passes it with one look at its row).
_DM_NOBODY = """SELECT 1 FROM rooms AS dm WHERE dm.id = :room_id AND dm.kind = 'dm' AND NOT EXISTS (
        SELECT 1 FROM memberships AS other JOIN users AS person ON person.id = other.user_id
        WHERE other.room_id = :room_id AND other.user_id <> :author_id AND NOT person.is_disabled)"""

# PostgreSQL stores a batch of messages in one statement. Bumping the room's seq and rev
# locks the room's row until commit (as every change of the room does, app.actions.timeline),
# so the room's changes commit in the order of their revs and catching up with since=<rev>
# never skips one that committed late; one statement and the commit are all that happens
# under that lock. Sends whose author may not send there (not a member, or disabled) are
# left out and get no seq; the rest get consecutive seqs, revs and ids in the order given.
_STORE_SQL = sa.text("""WITH input AS (
    SELECT * FROM unnest(CAST(:author_ids AS integer[]), CAST(:bodies AS text[]), CAST(:htmls AS text[]),
                         CAST(:client_ids AS text[]), CAST(:created_ats AS timestamptz[]),
                         CAST(:thread_root_ids AS integer[]), CAST(:also_in_rooms AS boolean[]),
                         CAST(:quote_of_ids AS integer[]), CAST(:notify_dues AS boolean[]))
        WITH ORDINALITY AS given (author_id, body, html, client_id, created_at, thread_root_id, also_in_room,
                                  quote_of_id, notify_due, n)
), allowed AS (
    SELECT input.*, row_number() OVER (ORDER BY input.n) AS k FROM input
    WHERE EXISTS (
        SELECT 1 FROM memberships JOIN users ON users.id = memberships.user_id
        WHERE memberships.room_id = :room_id AND memberships.user_id = input.author_id
          AND NOT users.is_disabled)
    AND NOT EXISTS ({DM_NOBODY})
), bump AS (
    UPDATE rooms SET last_seq = rooms.last_seq + (SELECT count(*) FROM allowed),
                     last_rev = rooms.last_rev + (SELECT count(*) FROM allowed)
    WHERE rooms.id = :room_id AND EXISTS (SELECT 1 FROM allowed)
    RETURNING rooms.last_seq - (SELECT count(*) FROM allowed) AS base,
              rooms.last_rev - (SELECT count(*) FROM allowed) AS rev_base, rooms.kind = 'dm' AS is_dm
), message AS (
    INSERT INTO messages (room_id, author_id, body, html, client_id, seq, rev, created_at, thread_root_id,
                          also_in_room, quote_of_id, notify_due)
    SELECT :room_id, allowed.author_id, allowed.body, allowed.html, allowed.client_id, bump.base + allowed.k,
           bump.rev_base + allowed.k, allowed.created_at, allowed.thread_root_id, allowed.also_in_room,
           allowed.quote_of_id, allowed.notify_due OR bump.is_dm
    FROM allowed, bump ORDER BY allowed.k
    RETURNING messages.id, messages.seq, messages.rev, messages.author_id, messages.notify_due
), stored AS (
    SELECT message.id, message.seq, message.rev, message.author_id, message.notify_due, allowed.n
    FROM message, bump, allowed WHERE allowed.k = message.seq - bump.base
), mentioned AS (
    INSERT INTO mentions (message_id, user_id)
    SELECT stored.id, given.user_id
    FROM unnest(CAST(:mention_ns AS integer[]), CAST(:mention_user_ids AS integer[]))
        WITH ORDINALITY AS given (n, user_id, o)
    JOIN stored ON stored.n = given.n
    ORDER BY given.o
), author_read AS (
    UPDATE memberships SET last_read_message_id = latest.id
    FROM (SELECT author_id, max(id) AS id FROM stored GROUP BY author_id) AS latest
    WHERE memberships.room_id = :room_id AND memberships.user_id = latest.author_id
      AND memberships.last_read_message_id < latest.id
)
SELECT stored.n, stored.id, stored.seq, stored.rev, stored.notify_due FROM stored
""".replace("{DM_NOBODY}", _DM_NOBODY.replace(":author_id", "input.author_id")))


def _on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _store_messages(room_id: int, batch: list[_Draft]) -> list[tuple[int | None, int | None, int | None]]:
    """Insert a room's messages, their mentions and the authors' read markers; (id, seq, rev)
    for each draft in order, (None, None, None) where its author may not send there. Raises
    IntegrityError for a used client_id (and then stores nothing)."""
    if _on_postgresql():
        mention_ns, mention_user_ids = [], []
        for n, draft in enumerate(batch, start=1):
            for user in draft.mentioned:
                mention_ns.append(n)
                mention_user_ids.append(user.id)
        rows = db.session.execute(_STORE_SQL, {
            "room_id": room_id,
            "author_ids": [d.author.id for d in batch],
            "bodies": [d.body for d in batch],
            "htmls": [d.html for d in batch],
            "client_ids": [d.client_id for d in batch],
            "created_ats": [d.created_at for d in batch],
            "thread_root_ids": [d.reply.root_id for d in batch],
            "also_in_rooms": [d.reply.also_in_room for d in batch],
            "quote_of_ids": [d.reply.quote_of_id for d in batch],
            "notify_dues": [d.notify_due for d in batch],
            "mention_ns": mention_ns,
            "mention_user_ids": mention_user_ids,
        }).all()
        by_n = {row.n: (row.id, row.seq, row.rev, row.notify_due) for row in rows}
        return [by_n.get(n, (None, None, None, False)) for n in range(1, len(batch) + 1)]
    # Elsewhere (SQLite: one writer at a time, the database is the lock) statement by
    # statement, in one transaction: the first seq bump takes the write lock, so each check
    # of the author's membership sees what the commit will. The statements are built once:
    # composing them per message cost more than SQLite took to run them.
    conn = db.session.connection()
    stored = []
    read_up_to: dict[int, int] = {}
    for draft in batch:
        bumped = conn.execute(_SQLITE_BUMP, {"room_id": room_id, "author_id": draft.author.id}).first()
        if bumped is None:
            stored.append((None, None, None, False))
            continue
        seq, rev, kind = bumped
        reply = draft.reply
        notify_due = draft.notify_due or kind == DM
        message_id = conn.execute(_SQLITE_INSERT, {
            "room_id": room_id, "author_id": draft.author.id, "body": draft.body, "html": draft.html,
            "client_id": draft.client_id, "seq": seq, "rev": rev, "created_at": draft.created_at,
            "thread_root_id": reply.root_id, "also_in_room": reply.also_in_room, "quote_of_id": reply.quote_of_id,
            "notify_due": notify_due,
        }).scalar()
        if draft.mentioned:
            conn.execute(_SQLITE_MENTION, [{"message_id": message_id, "user_id": u.id} for u in draft.mentioned])
        stored.append((message_id, seq, rev, notify_due))
        read_up_to[draft.author.id] = message_id
    for author_id, message_id in read_up_to.items():
        conn.execute(_SQLITE_READ, {"room_id": room_id, "author_id": author_id, "message_id": message_id})
    return stored


_SQLITE_BUMP = sa.text("""UPDATE rooms SET last_seq = last_seq + 1, last_rev = last_rev + 1
WHERE id = :room_id AND EXISTS (
    SELECT 1 FROM memberships JOIN users ON users.id = memberships.user_id
    WHERE memberships.room_id = :room_id AND memberships.user_id = :author_id AND NOT users.is_disabled)
  AND NOT EXISTS (""" + _DM_NOBODY + """)
RETURNING last_seq, last_rev, kind""")
_SQLITE_INSERT = sa.text("""INSERT INTO messages (room_id, author_id, body, html, client_id, seq, rev, created_at,
    thread_root_id, also_in_room, quote_of_id, notify_due)
VALUES (:room_id, :author_id, :body, :html, :client_id, :seq, :rev, :created_at, :thread_root_id, :also_in_room,
    :quote_of_id, :notify_due) RETURNING id""").bindparams(
    sa.bindparam("created_at", type_=UTCDateTime()))
_SQLITE_MENTION = sa.text("INSERT INTO mentions (message_id, user_id) VALUES (:message_id, :user_id)")
_SQLITE_READ = sa.text("""UPDATE memberships SET last_read_message_id = :message_id
WHERE room_id = :room_id AND user_id = :author_id AND last_read_message_id < :message_id""")


def _refuse_sender(room_id: int, user: User) -> None:
    """Why a send stored nothing: no such room, not a member, a disabled account, or a direct
    conversation whose other people are all disabled."""
    room, _membership = access_room_as_member(room_id, user)
    if db.session.scalar(db.select(User.is_disabled).where(User.id == user.id)):
        raise ChatError("unauthorized", "This account is disabled.")
    if room.is_dm and db.session.execute(sa.text(_DM_NOBODY), {"room_id": room_id, "author_id": user.id}).first():
        raise ChatError("forbidden", "Everyone else in this conversation is deactivated; nobody would read it.")


def check_wildcards(user: User, room_id: int) -> None:
    """Refuse @room, @all, @everyone and @here where the room keeps them to its owner and
    administrators (asked of members only, so a refusal tells nothing about other rooms)."""
    room, _membership = access_room_as_member(room_id, user)
    if room.wildcard_policy == WILDCARDS_ADMINS and room.owner_id != user.id and not user.is_admin:
        raise ChatError("forbidden", "Only the room's owner and administrators can notify the whole room here.",
                        field="body")


def resolve_mentions(room_id: int, names: list[str], *, exclude_user_id: int) -> list[User]:
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
