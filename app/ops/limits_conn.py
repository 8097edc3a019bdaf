"""Connections per client address: whose they are, how many are open, and the refusal past a cap.

The eventlet server (wsgi.py) counts its TCP connections per peer with these; the socket
layer (app.realtime.deadline) counts Engine.IO sessions not yet authenticated per client.
"""
from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Callable, Iterable

REFUSAL_CODE = "too_many_connections"
RETRY_AFTER_SECONDS = 5


def client_address(environ: dict, trusted_proxies: int) -> str | None:
    """The client's address: the peer's, or behind proxies the X-Forwarded-For entry the outermost one wrote.

    The same rule as werkzeug's ProxyFix, which Socket.IO requests never pass through
    (Flask-SocketIO's middleware sits outside it). None behind proxies that did not say:
    the peer is then a proxy, and counting it would count every client as one.
    """
    if trusted_proxies <= 0:
        return environ.get("REMOTE_ADDR") or ""
    forwarded = [part.strip() for part in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) >= trusted_proxies and forwarded[-trusted_proxies]:
        return forwarded[-trusted_proxies]
    return None


def address_key(address: str) -> str:
    """What a per-address cap counts by: the IPv4 address, or the /64 network of an IPv6 one.

    One IPv6 host usually has a whole /64 to pick addresses from, so counting single
    addresses would not cap it at all.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class ConnectionCounter:
    """Open connections per address key, refusing one past `cap` (0: no cap)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        """Count one more connection of `key`; False (and nothing counted) when it has `cap` already."""
        if self.cap <= 0:
            return True
        with self._lock:
            count = self._open.get(key, 0)
            if count >= self.cap:
                return False
            self._open[key] = count + 1
            return True

    def release(self, key: str) -> None:
        """Forget one connection of `key` that acquire had counted."""
        if self.cap <= 0:
            return
        with self._lock:
            count = self._open.get(key, 0) - 1
            if count > 0:
                self._open[key] = count
            else:
                self._open.pop(key, None)

    def open(self, key: str) -> int:
        """How many connections of `key` are counted now."""
        with self._lock:
            return self._open.get(key, 0)


def refusal_body(message: str) -> bytes:
    """The JSON error body of a refused connection."""
    return json.dumps({"error": {"code": REFUSAL_CODE, "message": message}}).encode()


def refusal_http_response(message: str) -> bytes:
    """A whole HTTP/1.1 429 response that closes the connection, for a server writing bytes itself."""
    body = refusal_body(message)
    head = (
        "HTTP/1.1 429 Too Many Requests\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def refuse(start_response: Callable, message: str) -> Iterable[bytes]:
    """Answer a WSGI request with 429 and the JSON error body."""
    body = refusal_body(message)
    start_response("429 Too Many Requests", [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Retry-After", str(RETRY_AFTER_SECONDS)),
    ])
    return [body]
