"""Which live sockets belong to which user, so membership changes and logouts reach them."""
from __future__ import annotations

import functools
import threading
from collections import defaultdict

# Redis connections one server process opens for sockets and presence. Beyond them a call
# waits for a free one (up to REDIS_POOL_TIMEOUT seconds) instead of failing: a burst of
# thousands of disconnects, as after a deploy, must queue, not lose its presence changes.
REDIS_POOL_SIZE = 50
REDIS_POOL_TIMEOUT = 20


@functools.cache
def shared_redis(redis_url: str):
    """One client per process and URL over a blocking pool, shared by the socket registry and
    the presence store (redis-py's default pool raises "Too many connections" past 100)."""
    import redis

    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=REDIS_POOL_SIZE,
                                                 timeout=REDIS_POOL_TIMEOUT)
    return redis.Redis(connection_pool=pool)


class LocalSocketRegistry:
    """One process's sockets (embedded mode)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_user: dict[int, set[str]] = defaultdict(set)
        self._user_of: dict[str, int] = {}

    def add(self, user_id: int, sid: str) -> None:
        """Remember a connected socket."""
        with self._lock:
            self._by_user[user_id].add(sid)
            self._user_of[sid] = user_id

    def remove(self, sid: str) -> bool:
        """Forget a disconnected socket; False if it was not known."""
        with self._lock:
            user_id = self._user_of.pop(sid, None)
            if user_id is None:
                return False
            sids = self._by_user.get(user_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._by_user[user_id]
            return True

    def sids_of(self, user_id: int) -> list[str]:
        """Every live socket of the user."""
        with self._lock:
            return list(self._by_user.get(user_id, ()))


class RedisSocketRegistry:
    """Sockets of every server process, kept in Redis (cluster mode).

    A set of sids per user, and a hash from sid to user. A server that dies leaves its
    sids behind; room changes sent to a dead sid are ignored by every server, and the
    per-user sets expire a day after their last change.
    """

    TTL = 24 * 3600

    def __init__(self, redis_url: str, prefix: str = "chorus:sockets:") -> None:
        self._redis = shared_redis(redis_url)
        self._prefix = prefix
        self._owners = f"{prefix}owner"

    def _key(self, user_id: int) -> str:
        return f"{self._prefix}user:{user_id}"

    def add(self, user_id: int, sid: str) -> None:
        """Remember a connected socket."""
        pipe = self._redis.pipeline()
        pipe.sadd(self._key(user_id), sid)
        pipe.expire(self._key(user_id), self.TTL)
        pipe.hset(self._owners, sid, user_id)
        pipe.execute()

    def remove(self, sid: str) -> bool:
        """Forget a disconnected socket; False if it was not known."""
        user_id = self._redis.hget(self._owners, sid)
        if user_id is None:
            return False
        pipe = self._redis.pipeline()
        pipe.srem(self._key(int(user_id)), sid)
        pipe.hdel(self._owners, sid)
        pipe.execute()
        return True

    def sids_of(self, user_id: int) -> list[str]:
        """Every live socket of the user, on any server."""
        return [s.decode() for s in self._redis.smembers(self._key(user_id))]
