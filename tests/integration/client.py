"""A chat client that does what docs/RELIABILITY.md asks of every client, for the fault tests.

Per room it keeps the messages it has (by id) and a cursor to catch up from. When messages
carry `seq` (1, 2, 3, ... within a room) the cursor is exact: the id of the last message
up to which no seq is missing, and a live message whose seq skips one starts a catch-up
at once, as does a room whose head (`GET /rooms/heads`, asked every `heads_every` seconds)
is past it. Without `seq` the cursor is the newest id received from the room (a broadcast
or a history page) at least `settle` seconds ago: ids are taken when a message is
inserted and become visible when it commits, so a broadcast can arrive after one with a
higher id, and resyncing from slightly behind the newest id picks up such a late message
(settle=0 resyncs from the newest id itself). Outgoing messages wait in a queue, each
with a client_id fixed when it was queued; a send without an ack (a timeout, a lost
connection) stays at the head of the queue and is sent again with the same client_id
after reconnecting. Every (re)connect is followed by a resync: `GET .../messages?after=`
the cursor, repeated while `has_more`, and the notification list.

One thread per client drives the connection and the queue; python-socketio's own threads
deliver the events. Everything the client saw is kept for the test to check, and anything
that breaks the protocol (a page out of order, a message broadcast twice, an ack that does
not match its send) is written down in `problems` rather than raised.
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

RETRYABLE = {"internal", "rate_limited"}  # errors after which the same send is tried again


@dataclass
class Send:
    """One message the client wants stored, with the client_id all its attempts share."""

    room_id: int
    body: str
    client_id: str
    drop: str | None = None        # "flushed" / "unflushed": drop the connection on the first attempt
    attempts: int = 0
    message: dict | None = None    # the message from the ack that settled it
    duplicate: bool | None = None  # that ack's `duplicate`
    error: dict | None = None      # a refusal that is not worth retrying


def wait_for(predicate, timeout: float) -> bool:
    """Poll predicate until it holds or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class ReliableClient:
    """A Socket.IO + REST client for one user that keeps every room whole across faults."""

    def __init__(self, name: str, user_id: int, token: str, urls: list[str], room_ids: list[int], *,
                 ack_timeout: float = 4.0, http_timeout: float = 5.0, settle: float = 2.0,
                 use_seq: bool = True, gap_grace: float = 0.3, heads_every: float = 2.0):
        self.name = name
        self.settle = settle
        self.use_seq = use_seq
        self.gap_grace = gap_grace
        self.heads_every = heads_every
        self._heads_at = time.monotonic()
        self.user_id = user_id
        self.token = token
        self.ack_timeout = ack_timeout
        self.http_timeout = http_timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._urls = list(urls)
        self._url_index = 0
        self.url: str | None = None           # the server of the live connection
        self.rooms: dict[int, dict[int, dict]] = {room_id: {} for room_id in room_ids}
        self.cursor: dict[int, int | None] = {room_id: None for room_id in room_ids}
        self.join_point: dict[int, int | None] = {room_id: None for room_id in room_ids}
        # Live messages move a room's cursor only once the room is resynced on this connection;
        # until then they wait here, so a resync that fails half-way cannot skip history.
        self._synced: set[int] = set()
        self._early: dict[int, list[tuple[float, int]]] = {room_id: [] for room_id in room_ids}
        # (time received, id) of messages too recent to move the cursor yet.
        self._recent: dict[int, list[tuple[float, int]]] = {room_id: [] for room_id in room_ids}
        # Per-room sequence numbers, when the server sends them: seq -> id of what is held,
        # the seq just before the client's history starts, and the last seq up to which none
        # is missing. A room whose messages lack seq falls back to the id cursor.
        self._seq_ids: dict[int, dict[int, int]] = {room_id: {} for room_id in room_ids}
        self._seq_base: dict[int, int | None] = {room_id: None for room_id in room_ids}
        self._contiguous: dict[int, int] = {room_id: 0 for room_id in room_ids}
        self._no_seq: set[int] = set()
        self._gap_since: dict[int, float] = {}
        self.gap_resyncs = 0
        self.heads_resyncs = 0
        self.outbox: deque[Send] = deque()
        self.sends: list[Send] = []
        self.live: Counter[int] = Counter()            # message id -> broadcasts received
        self.late_live = 0                             # broadcasts older than one already received
        self._newest_live: dict[int, int] = {}
        self.via_resync: set[int] = set()              # ids first known from a history page
        self.notifications: dict[int, dict] = {}
        self.pushed: Counter[int] = Counter()          # notification id -> pushes received
        self.unread: int | None = None
        self.problems: list[str] = []
        self.connects = 0
        self.failed_connects = 0
        self.dropped = 0                               # connections lost or given up
        self.history_pages = 0
        self.resync_errors: list[str] = []

        self._sio: socketio.Client | None = None
        self._generation = 0
        self._connected = False
        self._paused = False
        self._held = False
        self._in_flight = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"client-{name}", daemon=True)

    # -- control, from the test ------------------------------------------------------------
    def start(self) -> "ReliableClient":
        """Connect (and resync) in the background; returns self."""
        self._thread.start()
        return self

    def queue_send(self, room_id: int, body: str, *, drop: str | None = None, first: bool = False) -> Send:
        """Queue a message; it is sent in order (first: before everything queued, while held),
        and retried until acknowledged."""
        send = Send(room_id, body, f"{self.name}-{uuid.uuid4().hex[:16]}", drop=drop)
        with self._lock:
            self.sends.append(send)
            if first:
                assert self._held and not self._in_flight, "jump the queue only while held"
                self.outbox.appendleft(send)
            else:
                self.outbox.append(send)
            self._wake.notify_all()
        return send

    def use(self, urls: list[str]) -> None:
        """Reconnect to these servers from now on (the current connection is kept if it works)."""
        with self._lock:
            self._urls = list(urls)
            self._url_index = 0

    def go_offline(self) -> None:
        """Disconnect and stay away until come_back(); queued sends wait."""
        with self._lock:
            self._paused = True
            sio = self._sio
        if sio is not None:
            self._close(sio)
        self.wait_until(lambda: not self.connected, 10)

    def hold(self, timeout: float = 10) -> bool:
        """Stop emitting sends (they keep queueing) and wait until none is in flight."""
        with self._lock:
            self._held = True
        return self.wait_until(lambda: not self._in_flight, timeout)

    def release(self) -> None:
        """Emit queued sends again after hold()."""
        with self._lock:
            self._held = False
            self._wake.notify_all()

    def come_back(self) -> None:
        """Connect again after go_offline()."""
        with self._lock:
            self._paused = False
            self._wake.notify_all()

    def stop(self) -> None:
        """Disconnect for good and end the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(timeout=15)
        with self._lock:
            sio = self._sio
        if sio is not None:
            self._close(sio)

    @property
    def connected(self) -> bool:
        """Whether a connection is up and resynced."""
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
        """The ids the client holds for a room, in the order it shows them."""
        with self._lock:
            return sorted(self.rooms[room_id])

    # -- the connection loop -----------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._lock:
                if self._stopping:
                    return
                paused = self._paused
                # A connection that failed, was given up or should not be there is closed.
                stale = self._sio if self._sio is not None and (paused or not self._connected) else None
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
            gaps = self._seq_gaps_due()
            if not gaps and self.use_seq and time.monotonic() - self._heads_at >= self.heads_every:
                gaps = self._rooms_behind()
                self.heads_resyncs += bool(gaps)
            if gaps:
                self.gap_resyncs += 1
                try:
                    self._resync(self.url, gaps)
                except (requests.RequestException, ValueError) as exc:
                    self.resync_errors.append(repr(exc)[:300])
                    self._lost()
                continue
            with self._lock:
                if not self.outbox or self._held:
                    self._wake.wait(0.1)
                    continue
                send = self.outbox[0]
                self._in_flight = True
            try:
                self._attempt(send)
            finally:
                self._in_flight = False

    def _connect(self) -> bool:
        with self._lock:
            url = self._urls[self._url_index % len(self._urls)]
            self._generation += 1
            generation = self._generation
        sio = socketio.Client(reconnection=False)
        sio.on("message", self._on_message)
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
        with self._lock:
            self._sio, self.url = sio, url
            self._synced.clear()
            for early in self._early.values():
                early.clear()
        # The socket is in its rooms now: whatever is broadcast from here on arrives live,
        # and the resync covers everything before.
        try:
            self._resync(url)
        except (requests.RequestException, ValueError) as exc:
            self.failed_connects += 1
            self.resync_errors.append(repr(exc)[:300])
            return False
        with self._lock:
            if generation != self._generation or not sio.connected:
                return False  # lost again while resyncing; the next connect resyncs again
            self._connected = True
            self.connects += 1
            self._wake.notify_all()
        return True

    def _lost(self, generation: int | None = None) -> None:
        """The live connection is gone (generation None: whichever is current)."""
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            if self._connected:
                self.dropped += 1
            self._connected = False
            self._synced.clear()
            self._wake.notify_all()

    def _close(self, sio: socketio.Client) -> None:
        with self._lock:
            if sio is self._sio:
                self._sio = None
                self._generation += 1  # its late disconnect event must not touch the next connection
                if self._connected:
                    self.dropped += 1
                self._connected = False
        try:
            sio.disconnect()
        except Exception:
            pass
        try:
            sio.eio.disconnect(abort=True)
        except Exception:
            pass

    # -- resync ------------------------------------------------------------------------------
    def _get(self, url: str, path: str, params: dict) -> dict:
        response = self.http.get(f"{url}/api/v1{path}", params=params, timeout=self.http_timeout)
        if response.status_code != 200:
            raise requests.RequestException(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
        return response.json()

    def _advance(self, room_id: int, message_id: int, received_at: float) -> None:
        """A message of the room's stream (not an ack) may move the cursor, once settled."""
        if self.settle > 0:
            self._recent[room_id].append((received_at, message_id))
            return
        current = self.cursor[room_id]
        if current is None or message_id > current:
            self.cursor[room_id] = message_id

    def _settled_cursor(self, room_id: int) -> int | None:
        """The cursor to resync from: moved up to every id held for `settle` seconds."""
        threshold = time.monotonic() - self.settle
        recent, newest = [], self.cursor[room_id]
        for received_at, message_id in self._recent[room_id]:
            if received_at <= threshold:
                newest = message_id if newest is None else max(newest, message_id)
            else:
                recent.append((received_at, message_id))
        self._recent[room_id] = recent
        self.cursor[room_id] = newest
        return newest

    def _seq_mode(self, room_id: int) -> bool:
        return self.use_seq and room_id not in self._no_seq and self._seq_base[room_id] is not None

    def _resync_cursor(self, room_id: int) -> int | None:
        """Where catching up starts: exact with seq, settled without; None: from the newest page."""
        if self._seq_mode(room_id):
            contiguous = self._contiguous[room_id]
            if contiguous > self._seq_base[room_id]:
                return self._seq_ids[room_id][contiguous]
            return self.join_point[room_id] or None
        return self._settled_cursor(room_id)

    def _rooms_behind(self) -> list[int]:
        """Rooms whose newest seq (GET /rooms/heads) is past what the client holds without a gap."""
        self._heads_at = time.monotonic()
        try:
            heads = self._get(self.url, "/rooms/heads", {})["heads"]
        except (requests.RequestException, ValueError, KeyError):
            return []  # an older server, or a failed call: the next check asks again
        with self._lock:
            return [room_id for room_id in self.rooms
                    if self._seq_mode(room_id) and heads.get(str(room_id), 0) > self._contiguous[room_id]]

    def _seq_gaps_due(self) -> list[int]:
        """Rooms where a seq has been missing for longer than gap_grace."""
        now = time.monotonic()
        with self._lock:
            due = []
            for room_id, since in list(self._gap_since.items()):
                held = self._seq_ids[room_id]
                if not held or max(held) <= self._contiguous[room_id]:
                    del self._gap_since[room_id]  # the late broadcast came after all
                elif now - since >= self.gap_grace:
                    del self._gap_since[room_id]
                    due.append(room_id)
            return due

    def _resync(self, url: str, rooms=None) -> None:
        """Catch up the rooms (all by default), then the notification list: a missed message
        may come with a missed notification."""
        for room_id in rooms or list(self.rooms):
            self._resync_room(url, room_id)
        body = self._get(url, "/notifications", {})
        with self._lock:
            for notification in body["notifications"]:
                self.notifications.setdefault(notification["id"], notification)
            self.unread = body["unread"]

    def _resync_room(self, url: str, room_id: int) -> None:
        with self._lock:
            cursor, join_point = self._resync_cursor(room_id), self.join_point[room_id]
        if cursor is None:
            top_seq = self._resync_from_newest(url, room_id, join_point)
        else:
            top_seq = self._resync_after(url, room_id, cursor)
        with self._lock:
            if self._seq_mode(room_id) and top_seq is not None:
                # Every seq up to the newest one fetched has committed, and all were fetched:
                # one that is still missing does not exist.
                self._contiguous[room_id] = max(self._contiguous[room_id], top_seq)
                self._extend_contiguous(room_id)
            # Everything up to the last page is here, and everything broadcast since the
            # socket joined arrived live: the room is whole up to the newest of both.
            for received_at, message_id in self._early[room_id]:
                self._advance(room_id, message_id, received_at)
            self._early[room_id].clear()
            self._synced.add(room_id)

    def _resync_after(self, url: str, room_id: int, cursor: int) -> int | None:
        """Pages after the cursor until has_more is false; the highest seq fetched."""
        top_seq = None
        for _ in range(500):
            body = self._get(url, f"/rooms/{room_id}/messages", {"after": cursor, "limit": 200})
            self.history_pages += 1
            ids = [m["id"] for m in body["messages"]]
            if ids != sorted(set(ids)) or (ids and ids[0] <= cursor):
                self.problems.append(f"page after {cursor} in room {room_id} out of order: {ids}")
            if body["has_more"] and not ids:
                self.problems.append(f"empty page with has_more after {cursor} in room {room_id}")
                return top_seq
            self._merge(body["messages"], room_id, source="resync")
            seqs = [m["seq"] for m in body["messages"] if m.get("seq") is not None]
            if seqs:
                top_seq = max(seqs + ([top_seq] if top_seq is not None else []))
            if not body["has_more"]:
                return top_seq
            cursor = ids[-1]
        self.problems.append(f"resync of room {room_id} did not end")
        return top_seq

    def _resync_from_newest(self, url: str, room_id: int, join_point: int | None) -> int | None:
        """No cursor yet: the newest page, and older pages down to where the client joined;
        the highest seq fetched."""
        body = self._get(url, f"/rooms/{room_id}/messages", {"limit": 200})
        self.history_pages += 1
        page = body["messages"]
        if join_point is None:
            # The first connect: history older than this page is not this client's business.
            with self._lock:
                self.join_point[room_id] = page[0]["id"] - 1 if body["has_more"] and page else 0
                if all(m.get("seq") is not None for m in page):
                    base = page[0]["seq"] - 1 if body["has_more"] and page else 0
                    self._seq_base[room_id] = self._contiguous[room_id] = base
        else:
            for _ in range(500):
                if not body["has_more"] or not page or page[0]["id"] <= join_point:
                    break
                body = self._get(url, f"/rooms/{room_id}/messages", {"before": page[0]["id"], "limit": 200})
                self.history_pages += 1
                page = body["messages"] + page
            page = [m for m in page if m["id"] > join_point]
        ids = [m["id"] for m in page]
        if ids != sorted(set(ids)):
            self.problems.append(f"newest pages of room {room_id} out of order: {ids}")
        self._merge(page, room_id, source="resync")
        seqs = [m["seq"] for m in page if m.get("seq") is not None]
        return max(seqs) if seqs else None

    # -- incoming ----------------------------------------------------------------------------
    def _merge(self, messages: list[dict], room_id: int, *, source: str) -> None:
        with self._lock:
            store = self.rooms.get(room_id)
            if store is None:
                self.problems.append(f"{source} message for room {room_id}, which this client is not in")
                return
            for message in messages:
                if message["room_id"] != room_id:
                    self.problems.append(f"{source} message {message['id']} of room {message['room_id']} in room {room_id}")
                    continue
                seq = message.get("seq")
                if seq is None:
                    self._no_seq.add(room_id)
                else:
                    self._seq_ids[room_id][seq] = message["id"]
                known = store.get(message["id"])
                if known is None:
                    store[message["id"]] = message
                    if source == "resync":
                        self.via_resync.add(message["id"])
                elif (known["body"], known["client_id"], known["author"]["id"]) != (
                        message["body"], message["client_id"], message["author"]["id"]):
                    self.problems.append(f"message {message['id']} changed between {source} and before")
                if source == "ack":
                    continue  # an ack moves no id cursor: an older message may still be on its way
                if source == "live" and room_id not in self._synced:
                    self._early[room_id].append((time.monotonic(), message["id"]))
                    continue
                self._advance(room_id, message["id"], time.monotonic())
            self._extend_contiguous(room_id)

    def _extend_contiguous(self, room_id: int) -> None:
        base = self._seq_base[room_id]
        if base is None:
            return
        contiguous, held = max(self._contiguous[room_id], base), self._seq_ids[room_id]
        while contiguous + 1 in held:
            contiguous += 1
        self._contiguous[room_id] = contiguous

    def _on_message(self, data: dict) -> None:
        with self._lock:
            self.live[data["id"]] += 1
            newest = self._newest_live.get(data["room_id"], 0)
            if data["id"] < newest:
                self.late_live += 1  # committed after a newer id was broadcast: ids are not commit order
            else:
                self._newest_live[data["room_id"]] = data["id"]
            if self.live[data["id"]] == 2:
                self.problems.append(f"message {data['id']} was broadcast to {self.name} twice")
        self._merge([data], data["room_id"], source="live")
        room_id = data["room_id"]
        with self._lock:
            if room_id in self._synced and self._seq_mode(room_id):
                if max(self._seq_ids[room_id]) > self._contiguous[room_id]:
                    self._gap_since.setdefault(room_id, time.monotonic())  # a seq was skipped

    def _on_notification(self, data: dict) -> None:
        with self._lock:
            self.pushed[data["id"]] += 1
            self.notifications.setdefault(data["id"], data)

    # -- outgoing ----------------------------------------------------------------------------
    def _attempt(self, send: Send) -> None:
        with self._lock:
            sio, generation = self._sio, self._generation
        if sio is None:
            return
        done = threading.Event()
        reply: list = []

        def on_ack(*args):
            reply.append(args[0] if args else None)
            done.set()

        send.attempts += 1
        payload = {"room_id": send.room_id, "body": send.body, "client_id": send.client_id}
        try:
            sio.emit("send", payload, callback=on_ack)
        except Exception:
            self._give_up_connection(sio)
            return
        if send.drop and send.attempts == 1:
            self._drop_transport(sio, flushed=send.drop == "flushed")
            return
        deadline = time.monotonic() + self.ack_timeout
        while not done.wait(0.02):
            with self._lock:
                lost = generation != self._generation or not self._connected
            if lost or time.monotonic() > deadline:
                # No ack: keep the send, reconnect, send it again with the same client_id.
                self._give_up_connection(sio)
                return
        self._settle(send, reply[0])

    def _settle(self, send: Send, ack) -> None:
        if not isinstance(ack, dict):
            self.problems.append(f"ack for {send.client_id} is {ack!r}")
            return
        if not ack.get("ok"):
            error = ack.get("error") or {}
            if error.get("code") in RETRYABLE:
                time.sleep(0.2)
                return
            with self._lock:
                send.error = error
                self.outbox.popleft()
            return
        message = ack["message"]
        if (message["client_id"], message["room_id"], message["author"]["id"]) != (
                send.client_id, send.room_id, self.user_id):
            self.problems.append(f"ack for {send.client_id} carries message {message}")
        with self._lock:
            send.message = message
            send.duplicate = ack.get("duplicate")
            self.outbox.popleft()
        self._merge([message], send.room_id, source="ack")

    def _give_up_connection(self, sio: socketio.Client) -> None:
        with self._lock:
            if sio is self._sio:
                self._lost()

    def _drop_transport(self, sio: socketio.Client, *, flushed: bool) -> None:
        """Lose the connection under the send: its ack can never be read."""
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
