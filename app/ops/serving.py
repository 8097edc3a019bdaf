"""How wsgi.py serves under eventlet: the listening socket and the per-connection handler."""
from __future__ import annotations

import socket


def listening_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket with TCP_NODELAY, which Linux passes on to accepted sockets.

    Without it a small frame written right after another to the same socket (the ack that
    follows the sender's own copy of a broadcast) waits for the client's delayed ACK,
    about 40 ms. Green when the process is monkey-patched.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def eventlet_protocol():
    """eventlet's HTTP handler with per-connection buffers sized for long-lived websockets.

    eventlet keeps a buffered reader (8 KiB) and writer (16 KiB) for each connection's whole
    life, and a websocket never uses them after its handshake: eventlet's websocket reads
    and writes the socket itself. With 10,000 idle sockets that was about 7 KB of each
    one's resident memory. Requests are read through a 512-byte buffer (longer lines take
    more recv calls; large reads go straight into the caller's buffer), and a connection
    asking to upgrade to a websocket swaps its writer for a 256-byte one before the
    response, which then carries only the handshake or its refusal. Plain HTTP keeps the
    16 KiB writer, so a response still leaves in one send.
    """
    import eventlet.wsgi

    class HttpProtocol(eventlet.wsgi.HttpProtocol):
        rbufsize = 512

        def handle_one_response(self):
            if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                # Nothing is pending in it: eventlet flushes after every response.
                spent, self.wfile = self.wfile, self.connection.makefile("wb", 256)
                spent.close()  # frees the buffer; the socket stays open (makefile holds a reference)
            super().handle_one_response()

    return HttpProtocol
