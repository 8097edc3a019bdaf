"""Rate limits beyond HTTP routes: socket events and failed logins (the `limits` library).

Flask-Limiter guards HTTP routes; Socket.IO events and login failures are counted here,
in the same storage: memory in the embedded mode, Redis in the cluster mode, so a limit
holds across every server process.
"""
from __future__ import annotations

import math
import time

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.lib import validation
from app.lib.errors import ChatError


class EventLimiter:
    """Moving-window limits keyed by a namespace and an identity (user id, account, address)."""

    def __init__(self, storage_uri: str, prefix: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self._prefix = prefix
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def _retry_after(self, item: RateLimitItem, *identity: str) -> int:
        reset_at, _remaining = self._limiter.get_window_stats(item, self._prefix, *identity)
        return max(1, math.ceil(reset_at - time.time()))

    def hit(self, limit: str, *identity: str, message: str = "Too many requests; slow down.") -> None:
        """Count one event; raise ChatError("rate_limited") with retry_after when over the limit."""
        if not self.enabled:
            return
        item = parse(limit)
        if not self._limiter.hit(item, self._prefix, *identity):
            raise ChatError("rate_limited", message, retry_after=self._retry_after(item, *identity))

    def wait(self, limit: str, *identity: str) -> int:
        """Seconds until the limit accepts one more event; 0 when it accepts one now."""
        if not self.enabled:
            return 0
        item = parse(limit)
        if self._limiter.test(item, self._prefix, *identity):
            return 0
        return self._retry_after(item, *identity)

    def check(self, limit: str, *identity: str, message: str) -> None:
        """Raise ChatError("rate_limited") if the limit is already used up, without counting."""
        if not self.enabled:
            return
        item = parse(limit)
        if not self._limiter.test(item, self._prefix, *identity):
            raise ChatError("rate_limited", message, retry_after=self._retry_after(item, *identity))

    def count(self, limit: str, *identity: str) -> None:
        """Count one event without refusing it."""
        if self.enabled:
            self._limiter.hit(parse(limit), self._prefix, *identity)


def limiter() -> EventLimiter:
    """The app's event limiter."""
    return current_app.extensions["chorus.event_limiter"]


def check_socket_event(user_id: int, event: str) -> None:
    """Per-user limit on one socket event type (SOCKET_EVENT_LIMITS, or SOCKET_DEFAULT_LIMIT)."""
    limits = current_app.config["SOCKET_EVENT_LIMITS"]
    limit = limits.get(event, current_app.config["SOCKET_DEFAULT_LIMIT"])
    limiter().hit(limit, "socket", event, str(user_id))


def _login_buckets(username: str, address: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """The failed-login counters an attempt for username from address falls under.

    Per account and address, so a stranger's guesses lock only the stranger out; per
    account from every address, a ceiling on distributed guessing; per address, so one
    client cannot try many accounts. A name that is not a valid username names no account
    and is counted against the address alone.
    """
    config = current_app.config
    buckets = []
    if validation.USERNAME_RE.match(username):
        account = username.lower()
        buckets.append((config["LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS"],
                        ("login-fail", "account-address", account, address or "-")))
        buckets.append((config["LOGIN_FAILURES_PER_ACCOUNT"], ("login-fail", "account", account)))
    if address:
        buckets.append((config["LOGIN_FAILURES_PER_ADDRESS"], ("login-fail", "address", address)))
    return buckets


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def check_login_allowed(username: str, address: str | None) -> None:
    """Refuse a login attempt while one of its failed-login counters is full.

    retry_after is the wait until every full counter has room again, that is until an
    attempt is actually accepted.
    """
    wait = max((limiter().wait(limit, *identity) for limit, identity in _login_buckets(username, address)),
               default=0)
    if wait:
        raise ChatError("rate_limited", f"Too many failed logins; try again in {_in_words(wait)}.",
                        retry_after=wait)


def record_login_failure(username: str, address: str | None) -> None:
    """Count a failed login against each of its counters."""
    for limit, identity in _login_buckets(username, address):
        limiter().count(limit, *identity)
