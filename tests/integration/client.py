"""A chat client that does what docs/RELIABILITY.md asks of every client: the reference client.

Receiving follows the room's change sequence (`rev`, docs/API.md "Changes"). Per room the
client keeps every message's newest state by id (a message or a tombstone: the higher rev
wins) and a cursor, the rev up to which it has seen every change of the room. A live
`message` or `message_updated` (or an ack) whose rev is cursor + 1 moves the cursor on, and
past any revs held beyond it that then follow on; one further on is applied but held, and
opens a grace window (`grace`, 1.5 s): if the cursor has not reached it when the window
closes, the room catches up with `GET /rooms/<id>/messages?since=<cursor>`, again from the
page's last rev while `has_more`, and then takes `head` as its cursor. A head from
`GET /rooms/heads` (asked every `heads_every` seconds) past the cursor is given the same
window: a change lost while nothing else happens in the room is found that way. Every
(re)connect is followed by a catch-up of every room, then of the notification list.
Catch-ups run on a thread of their own, so at most one per room is in flight; one asked
for while one runs is run once more after it.

Outgoing operations (send, edit, delete, react) wait in one queue and go out in order. A
send keeps the client_id fixed when it was queued; an operation without an ack (a timeout,
a lost connection) stays at the head of the queue and goes out again, unchanged, after
reconnecting. That is safe for all four: a send is idempotent by its client_id, an edit to
the same text, a delete of a deleted message and a reaction made (or taken back) twice
change nothing on the server.

Threads (docs/API.md "Threads") ride on the same sequence: a reply is a message of the room
with `thread_root_id`, and its root's summary (`thread`) is a change of the root, so the
room's cursor and catch-ups cover both. Every state is kept in its room's store and routed
by its `thread_root_id`: `main_ids` is the room's main timeline (top-level messages and
replies also sent to the room), `thread_ids` a thread's replies, and `summary` the root's
summary as last held; `read_thread` pages a thread back from its newest reply with
`?thread=&before=`, as a thread view opens it.

One thread per client drives the connection and the queue, one runs the catch-ups, and
python-socketio's own threads deliver the events. Everything the client saw is kept for the
test to check, and anything that breaks the protocol (a page out of rev order, a change
delivered twice, two states with one rev, a message that changes thread, an ack that does
not match its operation) is written down in `problems` rather than raised.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass

import requests
import socketio

RETRYABLE = {"internal", "rate_limited"}  # errors after which the same operation is tried again
EVENT = {"send": "send", "edit": "edit", "delete": "delete", "react": "react"}


@dataclass
class Op:
    """One operation the client wants done: a send, an edit, a delete or a reaction.

    A send's client_id is shared by all its attempts. `message` is the state from the ack
    that settled it; `error` a refusal that is not worth retrying."""

    kind: str
    room_id: int
    body: str | None = None
    client_id: str | None = None
    message_id: int | None = None
    emoji: str | None = None
    on: bool = True
    thread_root_id: int | None = None  # a send: a reply in this message's thread
    also_in_room: bool = False          # ... shown in the main timeline too
    quote_of: int | None = None         # a send: a quote-reply of this message
    drop: str | None = None        # "flushed" / "unflushed": drop the connection on the first attempt
    attempts: int = 0
    message: dict | None = None
    duplicate: bool | None = None  # a send's ack: stored by an earlier attempt
    error: dict | None = None
    acked_at: float | None = None

    def payload(self) -> dict:
        """What goes over the socket."""
        if self.kind == "send":
            payload = {"room_id": self.room_id, "body": self.body, "client_id": self.client_id}
            if self.thread_root_id is not None:
                payload.update(thread_root_id=self.thread_root_id, also_in_room=self.also_in_room)
            if self.quote_of is not None:
                payload["quote_of"] = self.quote_of
            return payload
        if self.kind == "edit":
            return {"message_id": self.message_id, "body": self.body}
        if self.kind == "delete":
            return {"message_id": self.message_id}
        return {"message_id": self.message_id, "emoji": self.emoji, "on": self.on}


Send = Op  # the fault tests' name for a queued message


def wait_for(predicate, timeout: float) -> bool:
    """Poll predicate until it holds or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def canonical(state: dict) -> tuple:
    """What every member must agree on about a message: rev, text, deleted, edited, and each
    reaction's emoji, count and the users named (`me`, which only replies carry, left out)."""
    if state.get("deleted"):
        return (state["id"], state["rev"], None, True, False, ())
    reactions = tuple((r["emoji"], r["count"], tuple(r["users"])) for r in state.get("reactions") or ())
    return (state["id"], state["rev"], state["body"], False, state.get("edited_at") is not None, reactions)


def thread_fields(state: dict) -> tuple:
    """Where a message belongs and its thread's summary: (thread_root_id, also_in_room,
    (reply_count, last_reply_at, repliers) or None). One rev has one of these, as it has one
    `canonical` state."""
    thread = state.get("thread")
    summary = None if thread is None else (thread["reply_count"], thread["last_reply_at"], tuple(thread["repliers"]))
    return (state.get("thread_root_id"), bool(state.get("also_in_room")), summary)


def in_main_timeline(state: dict) -> bool:
    """Whether a message is in its room's main timeline: top-level, or a reply also sent there."""
    return state.get("thread_root_id") is None or bool(state.get("also_in_room"))


class ReliableClient:
    """A Socket.IO + REST client for one user that keeps every room whole across faults."""

    def __init__(self, name: str, user_id: int, token: str, urls: list[str], room_ids: list[int], *,
                 ack_timeout: float = 4.0, http_timeout: float = 5.0, grace: float = 1.5,
                 heads_every: float = 2.0, page_size: int = 200, trust_newest: bool = False):
        self.name = name
        self.user_id = user_id
        self.token = token
        self.ack_timeout = ack_timeout
        self.http_timeout = http_timeout
        self.grace = grace
        self.heads_every = heads_every
        self.page_size = page_size
        # trust_newest: the cursor is the newest rev seen, gaps or not, and heads are never
        # asked: a client that is only right if every rev reaches it in order (the late-commit test).
        self.trust_newest = trust_newest
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._urls = list(urls)
        self._url_index = 0
        self.url: str | None = None           # the server of the live connection
        self.rooms: dict[int, dict[int, dict]] = {room_id: {} for room_id in room_ids}
        self.cursor: dict[int, int] = {room_id: 0 for room_id in room_ids}
        # Revs seen beyond the cursor (rev -> when), and heads reported beyond it (rev -> when):
        # each is given `grace` seconds for the cursor to reach it before the room catches up.
        self._held: dict[int, dict[int, float]] = {room_id: {} for room_id in room_ids}
        self._expected: dict[int, dict[int, float]] = {room_id: {} for room_id in room_ids}
        self._rev_owner: dict[int, dict[int, int]] = {room_id: {} for room_id in room_ids}
        # Per room, each thread root's reply ids, from every state held (a reply never moves).
        self.threads: dict[int, dict[int, set[int]]] = {room_id: {} for room_id in room_ids}
        # Catch-ups asked for (a ticket per ask, and the reason of the first one pending) and done.
        self._tickets = 0
        self._asked: dict[int, int] = {room_id: 0 for room_id in room_ids}
        self._done: dict[int, int] = {room_id: 0 for room_id in room_ids}
        self._reason: dict[int, str] = {}
        self._heads_at = time.monotonic()

        self.outbox: deque[Op] = deque()
        self.sends: list[Op] = []
        self.changes: list[Op] = []                    # edits, deletes and reactions
        self.deliveries = 0                            # live message + message_updated events
        self.live: Counter[int] = Counter()            # message id -> `message` broadcasts received
        self.live_changes: Counter[tuple[int, int]] = Counter()  # (id, rev) -> live deliveries
        self.live_log: list[dict] = []                 # every live payload, `change` included, as received
        self.late_live = 0                             # deliveries with a rev below one delivered before
        self.gaps_opened = 0                           # times a rev skipped the cursor with no gap open
        self.gap_waits: list[float] = []               # seconds each held rev waited for the cursor
        self._newest_live: dict[int, int] = {}
        self.catch_ups: Counter[str] = Counter()       # catch-up runs by reason: connect, gap, head
        self.catch_up_pages = 0                        # GET ...?since= requests
        self.via_resync: set[int] = set()              # ids first known from a catch-up page
        self.resync_newer = 0                          # held states a catch-up page replaced with newer ones
        self.notifications: dict[int, dict] = {}
        self.pushed: Counter[int] = Counter()          # notification id -> pushes received
        self.unread: int | None = None
        self.problems: list[str] = []
        self.connects = 0
        self.failed_connects = 0
        self.dropped = 0                               # connections lost or given up
        self.resync_errors: list[str] = []

        self._sio: socketio.Client | None = None
        self._generation = 0
        self._socket_up = False    # a socket is connected: catch-ups may run
        self._connected = False    # ... and the catch-up after connecting is done
        self._paused = False
        self._held_sends = False
        self._in_flight = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"client-{name}", daemon=True)
        self._sync_thread = threading.Thread(target=self._sync_loop, name=f"sync-{name}", daemon=True)

    # -- control, from the test ------------------------------------------------------------
    def start(self) -> "ReliableClient":
        """Connect (and catch up) in the background; returns self."""
        self._thread.start()
        self._sync_thread.start()
        return self

    def queue_send(self, room_id: int, body: str, *, drop: str | None = None, first: bool = False,
                   thread_root_id: int | None = None, also_in_room: bool = False, quote_of: int | None = None) -> Op:
        """Queue a message; it is sent in order (first: before everything queued, while held),
        and retried until acknowledged. With thread_root_id it is a reply in that thread
        (also_in_room: shown in the main timeline too); quote_of makes it a quote-reply."""
        op = Op("send", room_id, body=body, client_id=f"{self.name}-{uuid.uuid4().hex[:16]}", drop=drop,
                thread_root_id=thread_root_id, also_in_room=also_in_room, quote_of=quote_of)
        with self._lock:
            self.sends.append(op)
            if first:
                assert self._held_sends and not self._in_flight, "jump the queue only while held"
                self.outbox.appendleft(op)
            else:
                self.outbox.append(op)
            self._wake.notify_all()
        return op

    def queue_edit(self, message_id: int, body: str) -> Op:
        """Queue an edit of one of the user's messages."""
        return self._queue_change(Op("edit", self._room_of(message_id), body=body, message_id=message_id))

    def queue_delete(self, message_id: int) -> Op:
        """Queue a delete."""
        return self._queue_change(Op("delete", self._room_of(message_id), message_id=message_id))

    def queue_react(self, message_id: int, emoji: str, on: bool = True) -> Op:
        """Queue a reaction (on) or taking one back."""
        return self._queue_change(Op("react", self._room_of(message_id), message_id=message_id, emoji=emoji, on=on))

    def _queue_change(self, op: Op) -> Op:
        with self._lock:
            self.changes.append(op)
            self.outbox.append(op)
            self._wake.notify_all()
        return op

    def _room_of(self, message_id: int) -> int:
        with self._lock:
            for room_id, store in self.rooms.items():
                if message_id in store:
                    return room_id
        raise KeyError(f"{self.name} holds no message {message_id}")

    def use(self, urls: list[str]) -> None:
        """Reconnect to these servers from now on (the current connection is kept if it works)."""
        with self._lock:
            self._urls = list(urls)
            self._url_index = 0

    def go_offline(self) -> None:
        """Disconnect and stay away until come_back(); queued operations wait."""
        with self._lock:
            self._paused = True
            sio = self._sio
        if sio is not None:
            self._close(sio)
        self.wait_until(lambda: not self.connected, 10)

    def hold(self, timeout: float = 10) -> bool:
        """Stop emitting operations (they keep queueing) and wait until none is in flight."""
        with self._lock:
            self._held_sends = True
        return self.wait_until(lambda: not self._in_flight, timeout)

    def release(self) -> None:
        """Emit queued operations again after hold()."""
        with self._lock:
            self._held_sends = False
            self._wake.notify_all()

    def come_back(self) -> None:
        """Connect again after go_offline()."""
        with self._lock:
            self._paused = False
            self._wake.notify_all()

    def stop(self) -> None:
        """Disconnect for good and end the threads."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(timeout=15)
        self._sync_thread.join(timeout=15)
        with self._lock:
            sio = self._sio
        if sio is not None:
            self._close(sio)

    @property
    def connected(self) -> bool:
        """Whether a connection is up and caught up."""
        with self._lock:
            return self._connected

    def wait_until(self, predicate, timeout: float) -> bool:
        """Poll predicate until it holds or timeout passes."""
        return wait_for(predicate, timeout)

    def idle(self) -> bool:
        """Connected with nothing left to send."""
        with self._lock:
            return self._connected and not self.outbox

    # -- what the client has -----------------------------------------------------------------
    def ids(self, room_id: int) -> list[int]:
        """The ids the client holds for a room (tombstones included), in the order it shows them."""
        with self._lock:
            return sorted(self.rooms[room_id])

    def states(self, room_id: int) -> list[tuple]:
        """The room's messages as `canonical` tuples, in id order."""
        with self._lock:
            return [canonical(self.rooms[room_id][i]) for i in sorted(self.rooms[room_id])]

    def state(self, message_id: int) -> dict | None:
        """The newest state held of one message."""
        with self._lock:
            for store in self.rooms.values():
                if message_id in store:
                    return store[message_id]
        return None

    def main_ids(self, room_id: int) -> list[int]:
        """The room's main timeline as held: top-level messages and replies also sent to the room."""
        with self._lock:
            return sorted(i for i, state in self.rooms[room_id].items() if in_main_timeline(state))

    def thread_ids(self, root_id: int) -> list[int]:
        """The replies held of a thread (tombstones included), in id order; the root not included."""
        with self._lock:
            for threads in self.threads.values():
                if root_id in threads:
                    return sorted(threads[root_id])
        return []

    def summary(self, root_id: int) -> dict | None:
        """The root's thread summary as held (None without one, or without the root)."""
        state = self.state(root_id)
        return None if state is None else state.get("thread")

    def read_thread(self, room_id: int, root_id: int, *, limit: int = 50) -> list[dict]:
        """Open a thread as a thread view does: its newest page, then older ones with
        `?thread=<root>&before=<oldest id>` while `has_more`. Each page's states (the root's in
        `root`, too) are kept like any other, the higher rev winning. Returns the pages as
        the server gave them, newest first; a page that overlaps or is out of id order is a
        problem."""
        pages: list[dict] = []
        params: dict = {"thread": root_id, "limit": limit}
        with self._lock:
            url = self.url or self._urls[0]
        for _ in range(10000):
            page = self._get(url, f"/rooms/{room_id}/messages", params)
            pages.append(page)
            ids = [m["id"] for m in page["messages"]]
            if ids != sorted(set(ids)) or (len(pages) > 1 and ids and ids[-1] >= params["before"]):
                self.problems.append(f"thread {root_id} page before {params.get('before')} out of order: {ids}")
            self._apply([*page["messages"], page["root"]], room_id, source="page")
            if not page["has_more"] or not ids:
                return pages
            params = {**params, "before": ids[0]}
        self.problems.append(f"reading thread {root_id} did not end")
        return pages

    def gap_catch_ups(self) -> int:
        """Catch-ups not caused by a (re)connect: a gap that outlived the grace window, or a head."""
        with self._lock:
            return self.catch_ups["gap"] + self.catch_ups["head"]

    # -- the connection loop -----------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._lock:
                if self._stopping:
                    return
                paused = self._paused
                # A connection that failed, was given up or should not be there is closed.
                stale = self._sio if self._sio is not None and (paused or not self._socket_up) else None
            if stale is not None:
                self._close(stale)
            if paused:
                with self._lock:
                    self._wake.wait(0.1)
                continue
            if not self.connected:
                if self._connect():
                    backoff = 0.05
                else:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 0.8)
                continue
            with self._lock:
                if not self.outbox or self._held_sends:
                    self._wake.wait(0.1)
                    continue
                op = self.outbox[0]
                self._in_flight = True
            try:
                self._attempt(op)
            finally:
                self._in_flight = False

    def _connect(self) -> bool:
        with self._lock:
            url = self._urls[self._url_index % len(self._urls)]
            self._generation += 1
            generation = self._generation
        sio = socketio.Client(reconnection=False)
        sio.on("message", lambda data: self._on_live("message", data))
        sio.on("message_updated", lambda data: self._on_live("message_updated", data))
        sio.on("notification", self._on_notification)
        sio.on("disconnect", lambda *args: self._lost(generation))
        try:
            sio.connect(url, auth={"token": self.token}, transports=["websocket"], wait_timeout=5)
        except Exception:
            self.failed_connects += 1
            with self._lock:
                self._url_index += 1  # the next server next time
            self._close(sio)
            return False
        # The socket is in its rooms now: whatever is broadcast from here on arrives live,
        # and a catch-up of every room covers everything before.
        with self._lock:
            if generation != self._generation:
                self._close(sio)
                return False
            self._sio, self.url, self._socket_up = sio, url, True
            tickets = {room_id: self._ask(room_id, "connect") for room_id in self.rooms}
        wait_for(lambda: self._caught_up(tickets, generation), 3 * self.http_timeout + 5)
        with self._lock:
            caught_up = all(self._done[room_id] >= ticket for room_id, ticket in tickets.items())
            if not (caught_up and self._socket_up and generation == self._generation and sio.connected):
                self.failed_connects += 1
                self._socket_up = False
                return False  # lost again, or the catch-up failed; the next connect catches up again
            self._connected = True
            self.connects += 1
            self._wake.notify_all()
        return True

    def _caught_up(self, tickets: dict[int, int], generation: int) -> bool:
        with self._lock:
            if generation != self._generation or not self._socket_up:
                return True  # lost meanwhile: stop waiting, _connect sees it
            return all(self._done[room_id] >= ticket for room_id, ticket in tickets.items())

    def _lost(self, generation: int | None = None) -> None:
        """The live connection is gone (generation None: whichever is current)."""
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            if self._connected:
                self.dropped += 1
            self._connected = False
            self._socket_up = False
            self._wake.notify_all()

    def _close(self, sio: socketio.Client) -> None:
        with self._lock:
            if sio is self._sio:
                self._sio = None
                self._generation += 1  # its late disconnect event must not touch the next connection
                if self._connected:
                    self.dropped += 1
                self._connected = False
                self._socket_up = False
        try:
            sio.disconnect()
        except Exception:
            pass
        try:
            sio.eio.disconnect(abort=True)
        except Exception:
            pass

    # -- the cursor --------------------------------------------------------------------------
    def _see(self, room_id: int, rev: int, at: float) -> None:
        """A change with this rev is held (live or from an ack): move the cursor, or hold the rev."""
        cursor = self.cursor[room_id]
        if rev <= cursor:
            return
        if self.trust_newest:
            self.cursor[room_id] = rev
        elif rev == cursor + 1:
            self._advance_to(room_id, rev)
        else:
            # Without a grace window, each of these would be a catch-up.
            self.gaps_opened += not self._held[room_id]
            self._held[room_id].setdefault(rev, at)

    def _advance_to(self, room_id: int, rev: int) -> None:
        """Every change up to rev is held: move the cursor there and on through held revs."""
        cursor = max(self.cursor[room_id], rev)
        held = self._held[room_id]
        while cursor + 1 in held:
            cursor += 1
        self.cursor[room_id] = cursor
        now = time.monotonic()
        for seen in [r for r in held if r <= cursor]:
            self.gap_waits.append(now - held.pop(seen))
        expected = self._expected[room_id]
        for seen in [r for r in expected if r <= cursor]:
            del expected[seen]

    def _overdue(self, room_id: int, now: float) -> str | None:
        """Why the room needs a catch-up now: a held rev or a head the cursor has not reached
        within the grace window ("gap", "head"), or None."""
        if any(now - at >= self.grace for at in self._held[room_id].values()):
            return "gap"
        if any(now - at >= self.grace for at in self._expected[room_id].values()):
            return "head"
        return None

    # -- catching up -------------------------------------------------------------------------
    def _ask(self, room_id: int, reason: str) -> int:
        """Ask for a catch-up of the room; the ticket a finished catch-up covers."""
        self._tickets += 1
        self._asked[room_id] = self._tickets
        self._reason.setdefault(room_id, reason)
        self._wake.notify_all()
        return self._tickets

    def _sync_loop(self) -> None:
        """Catch up rooms one at a time: those asked for, and those with a gap past its grace."""
        while True:
            with self._lock:
                if self._stopping:
                    return
                if not self._socket_up:
                    self._wake.wait(0.1)
                    continue
                url, generation = self.url, self._generation
                heads_due = (not self.trust_newest and self._connected
                             and time.monotonic() - self._heads_at >= self.heads_every)
            if heads_due:
                self._check_heads(url)
            with self._lock:
                now = time.monotonic()
                for room_id in self.rooms:
                    reason = self._overdue(room_id, now)
                    if reason and self._asked[room_id] <= self._done[room_id]:
                        self._ask(room_id, reason)
                due = [(room_id, self._asked[room_id]) for room_id in self.rooms
                       if self._asked[room_id] > self._done[room_id]]
                if not due:
                    self._wake.wait(0.02)
                    continue
            room_id, reason = None, None
            try:
                for room_id, ticket in due:
                    with self._lock:
                        reason = self._reason.pop(room_id, "gap")
                        self.catch_ups[reason] += 1
                    self._catch_up_room(url, room_id)
                    with self._lock:
                        self._done[room_id] = max(self._done[room_id], ticket)
                    room_id = None
                self._catch_up_notifications(url)
            except Exception as exc:
                # A failed request (the server may be gone): the room stays asked for, and the
                # connection is given up, so the next one catches up again.
                if not isinstance(exc, (requests.RequestException, ValueError, KeyError)):
                    self.problems.append(f"catch-up failed: {exc!r}")
                self.resync_errors.append(repr(exc)[:300])
                with self._lock:
                    if room_id is not None:
                        self._reason.setdefault(room_id, reason)
                    if generation == self._generation:
                        self._lost()

    def _get(self, url: str, path: str, params: dict) -> dict:
        response = self.http.get(f"{url}/api/v1{path}", params=params, timeout=self.http_timeout)
        if response.status_code != 200:
            raise requests.RequestException(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
        return response.json()

    def _check_heads(self, url: str) -> None:
        """GET /rooms/heads: a head past the cursor is a rev the room must reach within grace."""
        with self._lock:
            self._heads_at = time.monotonic()
        try:
            heads = self._get(url, "/rooms/heads", {})["heads"]
        except (requests.RequestException, ValueError, KeyError):
            return  # the next check asks again; a dead server shows up on the socket
        now = time.monotonic()
        with self._lock:
            for room_id in self.rooms:
                head = heads.get(str(room_id), 0)
                if head > self.cursor[room_id]:
                    self._expected[room_id].setdefault(head, now)

    def _catch_up_room(self, url: str, room_id: int) -> None:
        """Every change since the cursor, page by page; then the cursor is the head."""
        with self._lock:
            since = self.cursor[room_id]
        for _ in range(1000):
            body = self._get(url, f"/rooms/{room_id}/messages", {"since": since, "limit": self.page_size})
            with self._lock:
                self.catch_up_pages += 1
            page, head, has_more = body["messages"], body["head"], body["has_more"]
            revs = [m["rev"] for m in page]
            if revs != sorted(set(revs)) or (revs and revs[0] <= since):
                self.problems.append(f"page since {since} in room {room_id} out of rev order: {revs}")
            if revs and head < revs[-1]:
                self.problems.append(f"page since {since} in room {room_id}: head {head} below rev {revs[-1]}")
            if has_more and not page:
                self.problems.append(f"empty page with has_more since {since} in room {room_id}")
                return
            with self._lock:
                self._apply(page, room_id, source="resync")
                self._advance_to(room_id, revs[-1] if has_more else head)
            if not has_more:
                return
            since = revs[-1]
        self.problems.append(f"catch-up of room {room_id} did not end")

    def _catch_up_notifications(self, url: str) -> None:
        """A missed message may come with a missed notification: list them after catching up."""
        body = self._get(url, "/notifications", {})
        with self._lock:
            for notification in body["notifications"]:
                self.notifications.setdefault(notification["id"], notification)
            self.unread = body["unread"]

    # -- incoming ----------------------------------------------------------------------------
    def _apply(self, states: list[dict], room_id: int, *, source: str) -> None:
        """Upsert states by id, keeping the higher rev; live ones and acks also move the cursor."""
        now = time.monotonic()
        with self._lock:
            store = self.rooms.get(room_id)
            if store is None:
                self.problems.append(f"{source} state for room {room_id}, which this client is not in")
                return
            for state in states:
                if state["room_id"] != room_id:
                    self.problems.append(f"{source} message {state['id']} of room {state['room_id']} in room {room_id}")
                    continue
                rev = state["rev"]
                owner = self._rev_owner[room_id].setdefault(rev, state["id"])
                if owner != state["id"]:
                    self.problems.append(f"rev {rev} of room {room_id} on messages {owner} and {state['id']}")
                held = store.get(state["id"])
                root_id = state.get("thread_root_id")
                if held is not None and held.get("thread_root_id") != root_id:
                    self.problems.append(f"message {state['id']} moved from thread {held.get('thread_root_id')} "
                                         f"to {root_id} ({source})")
                if root_id is not None:
                    self.threads[room_id].setdefault(root_id, set()).add(state["id"])
                if held is None or rev > held["rev"]:
                    store[state["id"]] = state
                    if source == "resync":
                        if held is None:
                            self.via_resync.add(state["id"])
                        else:
                            self.resync_newer += 1
                elif rev == held["rev"]:
                    if (canonical(held), thread_fields(held)) != (canonical(state), thread_fields(state)):
                        self.problems.append(f"message {state['id']} rev {rev}: {source} {canonical(state)} "
                                             f"{thread_fields(state)} differs from {canonical(held)} "
                                             f"{thread_fields(held)}")
                    elif source == "ack":
                        store[state["id"]] = state  # says more (`me`) than the broadcast of the same change
                if source in ("live", "ack"):  # pages (a catch-up, a thread) do not move the cursor
                    self._see(room_id, rev, now)

    def _on_live(self, event: str, data: dict) -> None:
        state = {k: v for k, v in data.items() if k != "change"}
        room_id = state["room_id"]
        with self._lock:
            self.deliveries += 1
            self.live_log.append(data)
            key = (state["id"], state["rev"])
            self.live_changes[key] += 1
            if self.live_changes[key] == 2:
                self.problems.append(f"change {key} was delivered to {self.name} twice")
            if event == "message":
                self.live[state["id"]] += 1
                if data.get("deleted"):
                    self.problems.append(f"`message` event for a tombstone: {data}")
            elif "change" not in data:
                self.problems.append(f"`message_updated` without a change: {data}")
            if state["rev"] < self._newest_live.get(room_id, 0):
                self.late_live += 1  # overtaken by a later change (two servers, two publishers)
            else:
                self._newest_live[room_id] = state["rev"]
        self._apply([state], room_id, source="live")

    def _on_notification(self, data: dict) -> None:
        with self._lock:
            self.pushed[data["id"]] += 1
            self.notifications.setdefault(data["id"], data)

    # -- outgoing ----------------------------------------------------------------------------
    def _attempt(self, op: Op) -> None:
        with self._lock:
            sio, generation = self._sio, self._generation
        if sio is None:
            return
        done = threading.Event()
        reply: list = []

        def on_ack(*args):
            reply.append(args[0] if args else None)
            done.set()

        op.attempts += 1
        try:
            sio.emit(EVENT[op.kind], op.payload(), callback=on_ack)
        except Exception:
            self._give_up_connection(sio)
            return
        if op.drop and op.attempts == 1:
            self._drop_transport(sio, flushed=op.drop == "flushed")
            return
        deadline = time.monotonic() + self.ack_timeout
        while not done.wait(0.02):
            with self._lock:
                lost = generation != self._generation or not self._connected
            if lost or time.monotonic() > deadline:
                # No ack: keep the operation, reconnect, and do it again (it is idempotent).
                self._give_up_connection(sio)
                return
        self._settle(op, reply[0])

    def _settle(self, op: Op, ack) -> None:
        if not isinstance(ack, dict):
            self.problems.append(f"ack for {op.kind} {op.client_id or op.message_id} is {ack!r}")
            return
        if not ack.get("ok"):
            error = ack.get("error") or {}
            if error.get("code") in RETRYABLE:
                time.sleep(0.2)
                return
            with self._lock:
                op.error = error
                self.outbox.popleft()
            return
        message = ack["message"]
        if op.kind == "send":
            expected = (op.client_id, op.room_id, self.user_id)
            got = (message.get("client_id"), message["room_id"], message["author"]["id"])
            # A reply to a reply attaches to its root: only whether it is a reply can be checked.
            expected += (op.thread_root_id is not None, op.also_in_room)
            got += (message.get("thread_root_id") is not None, bool(message.get("also_in_room")))
        else:
            expected, got = (op.message_id, op.room_id), (message["id"], message["room_id"])
        if got != expected:
            self.problems.append(f"ack for {op.kind} {op.client_id or op.message_id} carries message {message}")
        with self._lock:
            op.message = message
            op.duplicate = ack.get("duplicate")
            op.acked_at = time.monotonic()
            self.outbox.popleft()
        self._apply([message], op.room_id, source="ack")

    def _give_up_connection(self, sio: socketio.Client) -> None:
        with self._lock:
            if sio is self._sio:
                self._lost()

    def _drop_transport(self, sio: socketio.Client, *, flushed: bool) -> None:
        """Lose the connection under the operation: its ack can never be read."""
        eio = sio.eio
        if flushed:
            # Wait until the packet is handed to the kernel, so the server does receive it.
            deadline = time.monotonic() + 2
            while eio.queue.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.001)
        try:
            eio.ws.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self._give_up_connection(sio)
