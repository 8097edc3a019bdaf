"""A deadline for Engine.IO sessions to join the Socket.IO namespace, and a cap on those waiting.

The Engine.IO handshake needs no credentials; the credentials come with the Socket.IO
CONNECT packet, later, on the open session. python-socketio has no deadline for that
packet (its JavaScript counterpart has `connectTimeout`), so a client could open sessions
and never authenticate; each holds a connection or ~13 KB of queues until the client
stops answering pings, which it never has to. Here every new session is noted with its
time and client address; one background task closes those that have not connected to a
namespace within SOCKET_AUTH_TIMEOUT, and a handshake is refused (429) while its address
has MAX_UNAUTHENTICATED_SOCKETS_PER_ADDRESS sessions waiting.

Nothing is kept for a session once it has connected, so idle authenticated sockets cost
nothing here. A periodic pass over all sessions also finds those that left the namespace
but kept the Engine.IO session open, and gives them the same deadline.
"""
from __future__ import annotations

import logging
import threading
import time
import urllib.parse

from flask import Flask

from app.extensions import socketio
from app.ops.limits_conn import address_key, client_address, refuse

log = logging.getLogger(__name__)

# Flask-SocketIO's default path; app.realtime does not change it.
ENGINEIO_PATH = "/socket.io/"
_GONE, _CONNECTED, _WAITING = range(3)


class UnauthenticatedSockets:
    """Engine.IO sessions of one server that have not connected to a Socket.IO namespace."""

    def __init__(self, server, timeout: float, per_address: int, trusted_proxies: int = 0) -> None:
        self.server = server
        self.timeout = timeout
        self.per_address = per_address
        self.trusted_proxies = trusted_proxies
        self._since: dict[str, tuple[float, str | None]] = {}  # eio sid -> (noted at, address key)
        self._by_key: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def key_of(self, environ: dict) -> str | None:
        """The address key a request counts under; None when the proxies in front did not name the client."""
        address = client_address(environ, self.trusted_proxies)
        return None if address is None else address_key(address)

    def note(self, eio_sid: str, environ: dict) -> None:
        """A session was opened: start its clock."""
        key = self.key_of(environ)
        with self._lock:
            self._since[eio_sid] = (time.monotonic(), key)
            if key is not None:
                self._by_key.setdefault(key, set()).add(eio_sid)

    def admits(self, key: str | None) -> bool:
        """Whether a handshake from `key` may open one more session (always, for an unknown client)."""
        if self.per_address <= 0 or key is None:
            return True
        with self._lock:
            sids = list(self._by_key.get(key, ()))
        if len(sids) < self.per_address:
            return True
        waiting = 0
        for eio_sid in sids:  # forget those that connected or went since the last sweep
            if self._state(eio_sid) == _WAITING:
                waiting += 1
            else:
                self._forget(eio_sid)
        return waiting < self.per_address

    def waiting(self) -> int:
        """How many sessions are noted as not yet connected (some may have connected since)."""
        with self._lock:
            return len(self._since)

    def sweep(self, now: float | None = None) -> int:
        """Close the noted sessions past the deadline, forget those connected or gone; returns how many closed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            noted = list(self._since.items())
        closed = 0
        for eio_sid, (since, _key) in noted:
            state = self._state(eio_sid)
            if state == _WAITING:
                if self.timeout <= 0 or now - since < self.timeout:
                    continue
                self._close(eio_sid)
                closed += 1
            self._forget(eio_sid)
        return closed

    def find_strays(self, pause_every: int = 1000) -> int:
        """Note every open session that has no namespace and is not noted yet; returns how many.

        A client may leave the namespace and keep the Engine.IO session, which the
        connect hook never sees again. One pass over every session, pausing now and then
        so that the other greenlets or threads run.
        """
        eio = self.server.eio
        found = 0
        for index, eio_sid in enumerate(list(eio.sockets)):
            if index and index % pause_every == 0:
                socketio.sleep(0)
            with self._lock:
                if eio_sid in self._since:
                    continue
            if self._state(eio_sid) != _WAITING:
                continue
            environ = self.server.environ.get(eio_sid)
            self.note(eio_sid, environ if environ is not None else {})
            found += 1
        return found

    def run(self, interval: float, stray_every: float) -> None:
        """Sweep every `interval` seconds and look for strays every `stray_every`, forever."""
        next_strays = time.monotonic() + stray_every
        while True:
            socketio.sleep(interval)
            try:
                closed = self.sweep()
                if closed:
                    log.debug("closed %d socket(s) that did not authenticate in %ss", closed, self.timeout)
                if time.monotonic() >= next_strays:
                    next_strays = time.monotonic() + stray_every
                    self.find_strays()
            except Exception:  # one bad round must not end the deadline for good
                log.exception("the socket deadline sweep failed")

    def _state(self, eio_sid: str) -> int:
        session = self.server.eio.sockets.get(eio_sid)
        if session is None or session.closed:
            return _GONE
        manager = self.server.manager
        for namespace in list(manager.get_namespaces()):
            sid = manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is not None and manager.is_connected(sid, namespace):
                return _CONNECTED
        return _WAITING

    def _close(self, eio_sid: str) -> None:
        eio = self.server.eio
        session = eio.sockets.get(eio_sid)
        if session is not None and not session.closed:
            # wait=False: a polling session's CLOSE packet waits for a GET that may never come.
            session.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
        eio.sockets.pop(eio_sid, None)

    def _forget(self, eio_sid: str) -> None:
        with self._lock:
            entry = self._since.pop(eio_sid, None)
            if entry is None:
                return
            sids = self._by_key.get(entry[1])
            if sids is not None:
                sids.discard(eio_sid)
                if not sids:
                    del self._by_key[entry[1]]

    def middleware(self, wsgi_app):
        """WSGI middleware refusing an Engine.IO handshake with 429 while its address has too many waiting."""

        def refuse_excess_handshakes(environ, start_response):
            if (environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO", "").startswith(ENGINEIO_PATH)
                    # The same parsing Engine.IO applies: a request without a sid opens a session.
                    and "sid" not in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
                    and not self.admits(self.key_of(environ))):
                return refuse(start_response, "Too many connections waiting to log in from your address; retry shortly.")
            return wsgi_app(environ, start_response)

        return refuse_excess_handshakes


def start_auth_deadline(app: Flask) -> UnauthenticatedSockets | None:
    """In a web server process: close sessions that do not authenticate in time and cap those waiting.

    Hooks the Engine.IO connect event, wraps app.wsgi_app, and starts one background task
    of the app's async mode. None when both settings are 0 or the app has no socket server.
    """
    timeout = app.config["SOCKET_AUTH_TIMEOUT"]
    per_address = app.config["MAX_UNAUTHENTICATED_SOCKETS_PER_ADDRESS"]
    server = socketio.server
    if server is None or (timeout <= 0 and per_address <= 0):
        return None
    tracker = UnauthenticatedSockets(server, timeout, per_address, app.config["TRUSTED_PROXIES"])
    socketio_connect = server.eio.handlers["connect"]

    def on_engineio_connect(eio_sid, environ):
        result = socketio_connect(eio_sid, environ)
        tracker.note(eio_sid, environ)
        return result

    server.eio.on("connect", on_engineio_connect)
    app.wsgi_app = tracker.middleware(app.wsgi_app)
    # A quarter of the deadline: a session goes at most 25 % late. Without a deadline the
    # sweep still forgets connected sessions, so that the cap counts only those waiting.
    interval = min(1.0, timeout / 4) if timeout > 0 else 1.0
    socketio.start_background_task(tracker.run, max(0.1, interval), max(1.0, timeout if timeout > 0 else 5.0))
    return tracker
