"""Who is online: each user's presence (active, idle, offline), and its changes sent coalesced.

A user is `offline` with no live socket anywhere, `active` when a page had input in the last
PRESENCE_IDLE_SECONDS (the `activity` event), `idle` otherwise. Two stores answer the same
calls: `MemoryPresenceStore` in the embedded mode (one process), `RedisPresenceStore` in the
cluster mode, where every server process and the Celery workers share the state.

Nothing is emitted where a change happens: a change marks the user dirty, and the flusher
(every PRESENCE_FLUSH_SECONDS) sends each dirty user's state once, and only if it differs
from the last state sent to anyone (kept in the store, so two servers never send the same
change and a reconnect within the window sends nothing). The sweep finds what changes
with time alone: a user idle since PRESENCE_IDLE_SECONDS, and, in the cluster mode, the
sockets of a server that stopped refreshing them (killed) PRESENCE_TTL_SECONDS ago.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Iterable

from flask import Flask, current_app

from app.extensions import socketio

log = logging.getLogger(__name__)

ACTIVE, IDLE, OFFLINE = "active", "idle", "offline"
# Dirty users taken per round trip of the flusher.
FLUSH_BATCH = 500
# How long a user's audience (who shares a room with them) is reused before it is read again.
AUDIENCE_CACHE_SECONDS = 10.0
_AUDIENCE_CACHE_MAX = 10_000


class MemoryPresenceStore:
    """Presence of one process's sockets (embedded mode): plain dictionaries under a lock."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._sockets: dict[int, set[str]] = defaultdict(set)
        self._user_of: dict[str, int] = {}
        self._active_until: dict[int, float] = {}
        self._dirty: set[int] = set()
        self._last_sent: dict[int, str] = {}
        self.audience = AudienceCache()

    def connected(self, user_id: int, sid: str, now: float | None = None) -> None:
        """A socket of the user connected here."""
        with self._lock:
            self._sockets[user_id].add(sid)
            self._user_of[sid] = user_id
            self._dirty.add(user_id)

    def disconnected(self, sid: str, now: float | None = None) -> int | None:
        """A socket connected here went; returns its user's id (None if it was not known)."""
        with self._lock:
            user_id = self._user_of.pop(sid, None)
            if user_id is None:
                return None
            sids = self._sockets.get(user_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._sockets[user_id]
            self._dirty.add(user_id)
            return user_id

    def record_activity(self, user_id: int, now: float | None = None) -> None:
        """A page of the user had input: active for PRESENCE_IDLE_SECONDS from now."""
        now = time.time() if now is None else now
        with self._lock:
            before = self._active_until.get(user_id)
            self._active_until[user_id] = now + self.idle_seconds
            if before is None or before <= now:
                self._dirty.add(user_id)

    def mark_dirty(self, user_ids: Iterable[int]) -> None:
        """Have the flusher look at these users again (their status changed)."""
        with self._lock:
            self._dirty.update(user_ids)

    def get_states(self, user_ids: Iterable[int], now: float | None = None) -> dict[int, str]:
        """The current state of each user."""
        now = time.time() if now is None else now
        with self._lock:
            return {user_id: self._state(user_id, now) for user_id in user_ids}

    def _state(self, user_id: int, now: float) -> str:
        if not self._sockets.get(user_id):
            return OFFLINE
        return ACTIVE if self._active_until.get(user_id, 0) > now else IDLE

    def heartbeat(self, now: float | None = None) -> int:
        """Nothing to refresh: the process is the whole world and dies with its sockets."""
        return 0

    def sweep(self, now: float | None = None) -> int:
        """Mark dirty the users whose input is older than PRESENCE_IDLE_SECONDS; returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            due = [user_id for user_id, until in self._active_until.items() if until <= now]
            for user_id in due:
                del self._active_until[user_id]
            self._dirty.update(due)
        return len(due)

    def take_dirty(self, limit: int = FLUSH_BATCH) -> list[int]:
        """Remove and return up to limit dirty users."""
        with self._lock:
            taken = []
            while self._dirty and len(taken) < limit:
                taken.append(self._dirty.pop())
            return taken

    def claim_change(self, user_id: int, status_key: str, now: float | None = None) -> str | None:
        """The user's state if it (with status_key) differs from the last one sent, now recorded
        as sent; None when there is nothing new to send."""
        now = time.time() if now is None else now
        with self._lock:
            state = self._state(user_id, now)
            value = f"{state}|{status_key}"
            if self._last_sent.get(user_id) == value:
                return None
            self._last_sent[user_id] = value
            return state


# Expired sockets (a member "<user id>:<sid>" of the expiry set, score its deadline): removed
# from the set and from their user's sockets, the user marked dirty, all in one step, so
# that of several servers sweeping at once exactly one handles each expiry.
_SWEEP_EXPIRED = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[1], member)
  local sep = string.find(member, ':', 1, true)
  local user_id = string.sub(member, 1, sep - 1)
  redis.call('ZREM', ARGV[3] .. user_id, string.sub(member, sep + 1))
  redis.call('SADD', KEYS[2], user_id)
end
return #gone
"""
# Users whose last input is older than the idle threshold: out of the active set, dirty.
_SWEEP_IDLE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, user_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], user_id)
  redis.call('SADD', KEYS[2], user_id)
end
return #due
"""
# Input: active until ARGV[2]; dirty only when the user was not active already.
_ACTIVITY = """
local before = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if (not before) or tonumber(before) <= tonumber(ARGV[3]) then
  redis.call('SADD', KEYS[2], ARGV[1])
  return 1
end
return 0
"""
# The state now, compared with (and recorded as) the last one sent, in one step: of two
# servers flushing the same user, only the first sends a given state.
_CLAIM = """
local state = 'offline'
if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf') > 0 then
  local until_ = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if until_ and tonumber(until_) > tonumber(ARGV[2]) then state = 'active' else state = 'idle' end
end
local value = state .. '|' .. ARGV[3]
if redis.call('HGET', KEYS[3], ARGV[1]) == value then
  return false
end
redis.call('HSET', KEYS[3], ARGV[1], value)
return state
"""


class RedisPresenceStore:
    """Presence shared by every process through Redis (cluster mode).

    Keys under `<prefix>presence:`: `sockets:<user id>` (a sorted set of the user's sids,
    scored by when each expires), `expiry` (every socket as "<user id>:<sid>", scored the
    same, for the sweep), `active` (users scored by when they turn idle), `dirty` (a set of
    users to flush), `sent` (a hash: the last state and status sent for each user). Each
    server refreshes the deadlines of its own sockets every PRESENCE_HEARTBEAT_SECONDS; the
    sockets of a server that stops are swept PRESENCE_TTL_SECONDS after its last refresh.
    Times are the servers' clocks (epoch seconds).
    """

    def __init__(self, redis_url: str, prefix: str, idle_seconds: float, ttl_seconds: float) -> None:
        from app.realtime.registry import shared_redis

        self.idle_seconds = idle_seconds
        self.ttl_seconds = ttl_seconds
        self._redis = shared_redis(redis_url)
        self._prefix = prefix
        self._expiry = f"{prefix}expiry"
        self._active = f"{prefix}active"
        self._dirty = f"{prefix}dirty"
        self._sent = f"{prefix}sent"
        self._sweep_expired = self._redis.register_script(_SWEEP_EXPIRED)
        self._sweep_idle = self._redis.register_script(_SWEEP_IDLE)
        self._activity = self._redis.register_script(_ACTIVITY)
        self._claim = self._redis.register_script(_CLAIM)
        self._lock = threading.Lock()
        self._user_of: dict[str, int] = {}  # this process's sockets
        self.audience = AudienceCache()

    def _sockets_key(self, user_id: int) -> str:
        return f"{self._prefix}sockets:{user_id}"

    def _key_lifetime(self) -> int:
        # The per-user set outlives its members' deadlines, so the sweep always finds them.
        return int(self.ttl_seconds * 3) + 60

    def connected(self, user_id: int, sid: str, now: float | None = None) -> None:
        """A socket of the user connected to this process."""
        now = time.time() if now is None else now
        with self._lock:
            self._user_of[sid] = user_id
        deadline = now + self.ttl_seconds
        pipe = self._redis.pipeline()
        pipe.zadd(self._sockets_key(user_id), {sid: deadline})
        pipe.expire(self._sockets_key(user_id), self._key_lifetime())
        pipe.zadd(self._expiry, {f"{user_id}:{sid}": deadline})
        pipe.sadd(self._dirty, user_id)
        pipe.execute()

    def disconnected(self, sid: str, now: float | None = None) -> int | None:
        """A socket of this process went; returns its user's id (None if it was not known)."""
        with self._lock:
            user_id = self._user_of.pop(sid, None)
        if user_id is None:
            return None
        self._forget(user_id, [sid])
        return user_id

    def _forget(self, user_id: int, sids: list[str]) -> None:
        pipe = self._redis.pipeline()
        pipe.zrem(self._sockets_key(user_id), *sids)
        pipe.zrem(self._expiry, *(f"{user_id}:{sid}" for sid in sids))
        pipe.sadd(self._dirty, user_id)
        pipe.execute()

    def record_activity(self, user_id: int, now: float | None = None) -> None:
        """A page of the user had input: active for PRESENCE_IDLE_SECONDS from now."""
        now = time.time() if now is None else now
        self._activity(keys=[self._active, self._dirty], args=[user_id, now + self.idle_seconds, now])

    def mark_dirty(self, user_ids: Iterable[int]) -> None:
        """Have a flusher (of any server) look at these users again."""
        user_ids = list(user_ids)
        if user_ids:
            self._redis.sadd(self._dirty, *user_ids)

    def get_states(self, user_ids: Iterable[int], now: float | None = None) -> dict[int, str]:
        """The current state of each user, as any process sees it."""
        now = time.time() if now is None else now
        user_ids = list(user_ids)
        if not user_ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zcount(self._sockets_key(user_id), f"({now}", "+inf")
        for user_id in user_ids:
            pipe.zscore(self._active, user_id)
        results = pipe.execute()
        sockets, active = results[:len(user_ids)], results[len(user_ids):]
        return {
            user_id: OFFLINE if not live else ACTIVE if until is not None and until > now else IDLE
            for user_id, live, until in zip(user_ids, sockets, active)
        }

    def heartbeat(self, now: float | None = None) -> int:
        """Push back the deadline of every socket of this process; returns how many.

        A socket the sweep had already removed (this process stalled for longer than the
        TTL) is added back and its user marked dirty, so they come back online.
        """
        now = time.time() if now is None else now
        with self._lock:
            local = list(self._user_of.items())
        if not local:
            return 0
        deadline = now + self.ttl_seconds
        for start in range(0, len(local), 1000):
            if start:
                socketio.sleep(0)  # let the sockets of this process run between chunks
            chunk = local[start:start + 1000]
            pipe = self._redis.pipeline(transaction=False)
            for sid, user_id in chunk:
                pipe.zadd(self._expiry, {f"{user_id}:{sid}": deadline})
                pipe.zadd(self._sockets_key(user_id), {sid: deadline})
                pipe.expire(self._sockets_key(user_id), self._key_lifetime())
            results = pipe.execute()
            # A socket that disconnected while its deadline was being written is removed
            # again at once (its own removal may have run before the write), and is no
            # revival: otherwise it would look alive, and be sent as such, for a TTL.
            with self._lock:
                gone = [(sid, user_id) for sid, user_id in chunk if sid not in self._user_of]
            for sid, user_id in gone:
                self._forget(user_id, [sid])
            left = {sid for sid, _ in gone}
            revived = {user_id for (sid, user_id), added in zip(chunk, results[::3]) if added and sid not in left}
            if revived:
                self.mark_dirty(revived)
        return len(local)

    def sweep(self, now: float | None = None) -> int:
        """Expire the sockets past their deadline and idle the users past theirs; returns how many."""
        now = time.time() if now is None else now
        count = 0
        for script, key in ((self._sweep_expired, self._expiry), (self._sweep_idle, self._active)):
            while True:
                done = script(keys=[key, self._dirty], args=[now, 1000, f"{self._prefix}sockets:"])
                count += done
                if done < 1000:
                    break
        return count

    def take_dirty(self, limit: int = FLUSH_BATCH) -> list[int]:
        """Remove and return up to limit dirty users (each taken by exactly one process)."""
        return [int(user_id) for user_id in self._redis.spop(self._dirty, limit) or ()]

    def claim_change(self, user_id: int, status_key: str, now: float | None = None) -> str | None:
        """The user's state if it (with status_key) differs from the last one sent by any
        process, now recorded as sent; None when there is nothing new to send."""
        now = time.time() if now is None else now
        state = self._claim(keys=[self._sockets_key(user_id), self._active, self._sent],
                            args=[user_id, now, status_key])
        return state.decode() if state else None


class AudienceCache:
    """Who hears about a user's presence, read again after AUDIENCE_CACHE_SECONDS."""

    def __init__(self, seconds: float = AUDIENCE_CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._entries: dict[int, tuple[float, list[int]]] = {}

    def get(self, user_id: int) -> list[int]:
        """The ids of everyone sharing a room or DM with the user, the user included."""
        from app.queries import presence as presence_queries

        now = time.monotonic()
        entry = self._entries.get(user_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        audience = presence_queries.get_audience(user_id)
        if len(self._entries) >= _AUDIENCE_CACHE_MAX:
            self._entries.clear()
        self._entries[user_id] = (now + self.seconds, audience)
        return audience


def make_store(app: Flask):
    """The store for this app: Redis when REDIS_URL is set, memory otherwise."""
    config = app.config
    if config["REDIS_URL"]:
        return RedisPresenceStore(config["REDIS_URL"], config["REDIS_KEY_PREFIX"] + "presence:",
                                  config["PRESENCE_IDLE_SECONDS"], config["PRESENCE_TTL_SECONDS"])
    return MemoryPresenceStore(config["PRESENCE_IDLE_SECONDS"])


def store():
    """The current app's presence store."""
    return current_app.extensions["chorus.presence"]


# --- What the rest of the app calls -------------------------------------------------------

def get_states(user_ids: Iterable[int]) -> dict[int, str]:
    """Each user's state ("active", "idle", "offline"); works in web processes and Celery workers."""
    return store().get_states(list(user_ids))


def status_changed(user_id: int) -> None:
    """The user's status fields changed (committed): push their presence to those who see it."""
    store().mark_dirty([user_id])


def socket_connected(user_id: int, sid: str) -> None:
    """A socket of the user connected to this process."""
    store().connected(user_id, sid)


def socket_disconnected(sid: str) -> None:
    """A socket of this process went."""
    store().disconnected(sid)


def record_activity(user_id: int) -> None:
    """A page of the user had input."""
    store().record_activity(user_id)


def flush_now(now: float | None = None) -> int:
    """Sweep, then send every dirty user's presence that changed; returns how many were sent.

    Runs in an app context. The background job calls it every PRESENCE_FLUSH_SECONDS;
    tests call it to deliver pending changes at once.
    """
    from app import events
    from app.queries import presence as presence_queries

    presence = store()
    now = time.time() if now is None else now
    presence.sweep(now)
    sent = 0
    while True:
        user_ids = presence.take_dirty(FLUSH_BATCH)
        if not user_ids:
            return sent
        statuses = presence_queries.get_statuses(user_ids)
        for user_id in user_ids:
            status = statuses.get(user_id)
            if status is None:  # no such user (any more)
                continue
            state = presence.claim_change(user_id, presence_queries.status_key(status), now)
            if state is None:
                continue
            events.send_presence({"user_id": user_id, "state": state, **status}, presence.audience.get(user_id))
            sent += 1
        if len(user_ids) < FLUSH_BATCH:
            return sent
        socketio.sleep(0)


class PresenceJobs:
    """The background tasks of start_presence_jobs; `stop()` ends them at their next round."""

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        """Have the tasks return (tests; a server runs them for its whole life)."""
        self.stopped = True


def start_presence_jobs(app: Flask) -> PresenceJobs | None:
    """In a web server process: the flusher and sweep every PRESENCE_FLUSH_SECONDS and, in the
    cluster mode, the heartbeat of this process's sockets every PRESENCE_HEARTBEAT_SECONDS.

    Two background tasks, so that a slow database (the flusher reads statuses) never
    delays the heartbeat past the TTL. None when the app has no presence store.
    """
    presence = app.extensions.get("chorus.presence")
    if presence is None:
        return None
    flush_every = max(0.05, app.config["PRESENCE_FLUSH_SECONDS"])
    heartbeat_every = max(0.05, app.config["PRESENCE_HEARTBEAT_SECONDS"])
    jobs = PresenceJobs()

    def flush_forever():
        while not jobs.stopped:
            socketio.sleep(flush_every)
            try:
                with app.app_context():
                    flush_now()
            except Exception:  # Redis or the database away: try again next round
                log.warning("presence flush failed", exc_info=True)

    def heartbeat_forever():
        while not jobs.stopped:
            socketio.sleep(heartbeat_every)
            try:
                presence.heartbeat()
            except Exception:
                log.warning("presence heartbeat failed", exc_info=True)

    socketio.start_background_task(flush_forever)
    if isinstance(presence, RedisPresenceStore):
        socketio.start_background_task(heartbeat_forever)
    return jobs
