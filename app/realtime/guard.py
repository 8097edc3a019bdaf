"""The Socket.IO protocol below the event handlers: what a client may send, and who may use a session.

python-socketio dispatches a client's EVENT by its name alone, so an event named `connect`
or `disconnect` reached the connect and disconnect handlers as if the server had called
them. Frames are decoded here by a Packet class that refuses reserved names and events
without a string name; the refusal is answered with an error ack.

A frame that fails to decode used to log a traceback each; now it is logged once per
connection at warning level, and the connection is closed after MAX_BAD_FRAMES.

Engine.IO answers HTTP before Flask does, so its responses get the app's security headers
here; JSONP polling is refused; and a request naming a session (`sid=`) must come from the
client that opened it: the same address and the same login cookies as the handshake, whose
environ python-socketio keeps for the session's life.
"""
from __future__ import annotations

import inspect
import io
import json
import logging
import urllib.parse

import socketio
from engineio.payload import Payload
from flask import Flask
from socketio import packet as sio_packet
from werkzeug.http import parse_cookie
from werkzeug.middleware.proxy_fix import ProxyFix

from app.security import security_header_values

log = logging.getLogger(__name__)

ENGINEIO_PATH = "/socket.io/"  # Flask-SocketIO's default; register_sockets keeps it
# Names python-socketio, Flask-SocketIO or the Socket.IO clients give a meaning of their own.
RESERVED_EVENTS = frozenset({
    "connect", "disconnect", "connect_error", "disconnecting", "newListener", "removeListener", "*",
})
MAX_BAD_FRAMES = 3

_BAD_FRAMES = "chorus.bad_frames"
_WARNED_RESERVED = "chorus.warned_reserved"


class ProtocolError(ValueError):
    """A frame that is not a Socket.IO packet this server accepts."""


class ReservedEventError(ProtocolError):
    """An EVENT named like one of the protocol's own events."""

    def __init__(self, name: str, namespace: str | None, ack_id: int | None) -> None:
        super().__init__(f"reserved event name {name!r}")
        self.name, self.namespace, self.ack_id = name, namespace, ack_id


class Packet(sio_packet.Packet):
    """python-socketio's packet, decoding only events whose name is a string and not reserved."""

    def decode(self, encoded_packet):
        """Decode as python-socketio does; raise ProtocolError for what must not be dispatched."""
        try:
            attachments = super().decode(encoded_packet)
        except Exception as exc:  # bad JSON, bad header, nesting too deep: all the client's doing
            raise ProtocolError(f"unparsable packet ({type(exc).__name__})") from None
        if self.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            data = self.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                raise ProtocolError("an event without a name")
            if data[0] in RESERVED_EVENTS:
                raise ReservedEventError(data[0], self.namespace, self.id)
        return attachments


def install(server: socketio.Server) -> None:
    """Route the server's incoming Engine.IO messages through the frame guard."""
    handle = server._handle_eio_message  # what python-socketio registered with Engine.IO

    def on_message(eio_sid, data):
        environ = server.environ.get(eio_sid)
        if environ is None:
            return  # closed while this frame was on its way
        try:
            handle(eio_sid, data)
        except ReservedEventError as exc:
            _refuse_reserved(server, eio_sid, environ, exc)
        except Exception as exc:  # anything python-socketio could not dispatch
            note_bad_frame(server, eio_sid, environ, exc)

    server.eio.on("message", on_message)


def _refuse_reserved(server, eio_sid: str, environ: dict, exc: ReservedEventError) -> None:
    if not environ.get(_WARNED_RESERVED):
        environ[_WARNED_RESERVED] = True
        log.warning("socket %s sent an event named %r; refused (further ones are not logged)",
                    eio_sid, exc.name[:64])
    namespace = exc.namespace or "/"
    sid = server.manager.sid_from_eio_sid(eio_sid, namespace)
    if exc.ack_id is None or sid is None or not server.manager.is_connected(sid, namespace):
        return
    error = {"ok": False, "error": {"code": "invalid", "message": f"'{exc.name}' is a reserved event name."}}
    server._send_packet(eio_sid, server.packet_class(sio_packet.ACK, namespace=namespace, id=exc.ack_id,
                                                     data=[error]))


def note_bad_frame(server, eio_sid: str, environ: dict, exc: Exception) -> None:
    """Count a frame that could not be handled: warn once per connection, close it at MAX_BAD_FRAMES."""
    count = environ.get(_BAD_FRAMES, 0) + 1
    environ[_BAD_FRAMES] = count
    if count == 1:
        log.warning("socket %s sent a frame that cannot be handled (%r); it is closed after %d such frames",
                    eio_sid, str(exc)[:120] or type(exc).__name__, MAX_BAD_FRAMES)
    if count >= MAX_BAD_FRAMES:
        close_connection(server, eio_sid)


def close_connection(server, eio_sid: str | None) -> None:
    """Close an Engine.IO session and its transport now, without waiting for the client to read.

    engineio's own `disconnect` waits until the client has taken every queued packet,
    which a long-polling client that stopped polling never does. Like it, this forgets the
    session at once: a later request naming it gets a plain 400, not a 500.
    """
    sock = server.eio.sockets.get(eio_sid) if eio_sid else None
    if sock is not None and not sock.closing and not sock.closed:
        sock.close(wait=False, reason=server.reason.SERVER_DISCONNECT)
        server.eio.sockets.pop(eio_sid, None)


# --- HTTP: the requests Engine.IO answers --------------------------------------------------

def http_guard(app: Flask, wsgi_app, server: socketio.Server, *, websocket_compression: bool):
    """Wrap the app's WSGI callable: Engine.IO requests are checked and get the security headers.

    Without websocket_compression the client's Sec-WebSocket-Extensions offer is hidden, so
    no socket negotiates permessage-deflate: every websocket server Flask-SocketIO runs on
    (eventlet's, simple-websocket's) accepts the compression browsers offer.
    """
    # Flask-SocketIO's middleware is an object: calling it runs its __call__ from C, one more
    # C frame in the stack every socket's reader keeps while it waits (about 0.6 KB a socket,
    # measured at 2,000 idle sockets). Its bound __call__ is a plain Python-to-Python call.
    call = wsgi_app if inspect.isfunction(wsgi_app) or inspect.ismethod(wsgi_app) else wsgi_app.__call__
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    headers = {secure: list(security_header_values(None, secure=secure).items()) for secure in (False, True)}

    def engineio(environ, start_response):
        def respond(status, response_headers, exc_info=None):
            present = {name.lower() for name, _ in response_headers}
            extra = [h for h in headers[environ.get("wsgi.url_scheme") == "https"] if h[0].lower() not in present]
            return start_response(status, response_headers + extra, exc_info)

        refusal = _check_request(app, server, environ)
        if refusal is not None:
            status, code, message = refusal
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            respond(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return call(environ, respond)

    # Flask's ProxyFix sits inside Flask-SocketIO's middleware, so Engine.IO requests never
    # passed it: the address and scheme a session is bound to come from the same headers.
    engineio_app = ProxyFix(engineio, x_for=proxies, x_proto=proxies, x_host=proxies) if proxies else engineio

    def middleware(environ, start_response):
        if not websocket_compression:
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        path = environ.get("PATH_INFO") or ""
        if path.startswith(ENGINEIO_PATH):
            return engineio_app(environ, start_response)
        return call(environ, start_response)

    return middleware


def _check_request(app: Flask, server, environ: dict) -> tuple[str, str, str] | None:
    """Why an Engine.IO request is refused (status, code, message), or None to let it through."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if "j" in query:
        # A JSONP answer runs as a script on any page that includes it, cookies and all.
        return "400 BAD REQUEST", "invalid", "JSONP polling is not supported; use XHR polling or a websocket."
    sid = query.get("sid", [None])[0]
    handshake = server.environ.get(sid) if sid else None
    if handshake is None:
        return None  # no session named, or one Engine.IO does not know and refuses itself
    if not _same_client(app, handshake, environ):
        return "403 FORBIDDEN", "forbidden", "This Socket.IO session was opened by another client."
    if environ.get("REQUEST_METHOD") == "POST":
        return _check_payload(server, sid, handshake, environ)
    return None


def _check_payload(server, sid: str, handshake: dict, environ: dict) -> tuple[str, str, str] | None:
    """Decode a long-polling POST before Engine.IO does, which logs a traceback for each bad one."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length > server.eio.max_http_buffer_size:
        return None  # Engine.IO refuses it without reading it
    try:
        if length < 0:
            raise ProtocolError("bad Content-Length")
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        Payload(encoded_payload=body.decode("utf-8"))
    except Exception as exc:
        note_bad_frame(server, sid, handshake, exc)
        return "400 BAD REQUEST", "invalid", "The payload is not Engine.IO packets."
    return None


def _same_client(app: Flask, handshake: dict, environ: dict) -> bool:
    """Whether a request comes from the address and login that opened the session."""
    if handshake.get("REMOTE_ADDR") != environ.get("REMOTE_ADDR"):
        return False
    if _login_cookies(app, handshake) == _login_cookies(app, environ):
        return True
    # The session cookie is signed afresh whenever the session changes (a flash message, a
    # CSRF token): the same login still carries the same Flask-Login id.
    login = _login_id(app, handshake)
    return login is not None and login == _login_id(app, environ)


def _login_cookies(app: Flask, environ: dict) -> tuple[str | None, str | None]:
    cookies = parse_cookie(environ)
    return (cookies.get(app.config["SESSION_COOKIE_NAME"]),
            cookies.get(app.config.get("REMEMBER_COOKIE_NAME", "remember_token")))


def _login_id(app: Flask, environ: dict) -> str | None:
    session = app.session_interface.open_session(app, app.request_class(environ))
    value = session.get("_user_id") if session is not None else None
    return value if isinstance(value, str) else None
