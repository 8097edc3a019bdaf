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


_LOGIN_MESSAGE = "Too many failed logins; wait a moment and try again."


def check_login_allowed(username: str, address: str | None) -> None:
    """Refuse a login attempt while the account or the address has failed too often."""
    config = current_app.config
    limiter().check(config["LOGIN_FAILURES_PER_ACCOUNT"], "login-fail", "account", username.lower(),
                    message=_LOGIN_MESSAGE)
    if address:
        limiter().check(config["LOGIN_FAILURES_PER_ADDRESS"], "login-fail", "address", address,
                        message=_LOGIN_MESSAGE)


def record_login_failure(username: str, address: str | None) -> None:
    """Count a failed login against the account and the address."""
    config = current_app.config
    limiter().count(config["LOGIN_FAILURES_PER_ACCOUNT"], "login-fail", "account", username.lower())
    if address:
        limiter().count(config["LOGIN_FAILURES_PER_ADDRESS"], "login-fail", "address", address)
