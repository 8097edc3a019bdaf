"""The Socket.IO protocol below the event handlers: what a client may send.

python-socketio dispatches a client's EVENT by its name alone, so an event named `connect`
or `disconnect` reached the connect and disconnect handlers as if the server had called
them. Frames are decoded here by a Packet class that refuses reserved names and events
without a string name; the refusal is answered with an error ack.
"""
from __future__ import annotations

import logging

import socketio
from socketio import packet as sio_packet

log = logging.getLogger(__name__)

# Names python-socketio, Flask-SocketIO or the Socket.IO clients give a meaning of their own.
RESERVED_EVENTS = frozenset({
    "connect", "disconnect", "connect_error", "disconnecting", "newListener", "removeListener", "*",
})

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

