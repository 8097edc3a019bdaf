"""Web server entry point: `python wsgi.py` serves HTTP and Socket.IO.

Monkey-patching happens here, first, and nowhere inside app/ (the Celery worker imports
app/ unpatched). SOCKETIO_ASYNC_MODE picks eventlet (default), gevent or threading.
"""
import os
import warnings

# eventlet announces its maintenance mode on import; the operator chose it knowingly.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
ASYNC_MODE = os.environ.get("SOCKETIO_ASYNC_MODE", "eventlet")
if ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
    # psycopg2 talks to PostgreSQL in C; without this every query would block the whole hub.
    from psycogreen.eventlet import patch_psycopg

    patch_psycopg()
elif ASYNC_MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
os.environ["SOCKETIO_ASYNC_MODE"] = ASYNC_MODE

import sys  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import socketio  # noqa: E402
from app.ops.health import check_services, describe  # noqa: E402
from app.ops.heap import freeze_startup_objects, start_refreezing, watch_collections  # noqa: E402
from app.ops.jobs import start_background_jobs  # noqa: E402
from app.ops.serving import listening_socket  # noqa: E402
from app.ops.sqlite_wal import start_background_checkpoints  # noqa: E402
from app.realtime.deadline import start_auth_deadline  # noqa: E402
from app.security import ConfigError  # noqa: E402


def _open_file_budget(connections: int) -> int:
    """Raise the open-file limit towards `connections` plus some spare; returns the connections it allows."""
    import resource

    spare = 256  # database and Redis connections, log files, the listening socket
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + spare if hard == resource.RLIM_INFINITY else min(connections + spare, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return max(1, min(connections, soft - spare))


def _eventlet_protocol(config):
    """eventlet's HTTP handler with small buffers, deadlines for reading requests, and a per-address cap.

    Buffers: eventlet keeps a buffered reader (8 KiB) and writer (16 KiB) for each
    connection's whole life, and a websocket never uses them after its handshake:
    eventlet's websocket reads and writes the socket itself. With 10,000 idle sockets that
    was about 7 KB of each one's resident memory. Requests are read through a 512-byte
    buffer (longer lines take more recv calls; large reads go straight into the caller's
    buffer), and a connection asking to upgrade to a websocket swaps its writer for a
    256-byte one before the response, which then carries only the handshake or its
    refusal. Plain HTTP keeps the 16 KiB writer, so a response still leaves in one send.

    Deadlines: eventlet waits for a request line and headers for ever, so clients that
    send half a request (slowloris) held connection slots until none was left. A request's
    line and headers must now arrive within HTTP_HEADER_TIMEOUT of the connection opening
    or of its first byte, its body within HTTP_BODY_TIMEOUT of its headers, and a
    keep-alive connection may sit idle between requests for HTTP_KEEPALIVE_TIMEOUT. Each is
    one deadline for the whole phase, not a per-read timeout that a byte now and then
    resets. None applies while the application runs: a websocket after its handshake and
    a long poll waiting for data are untouched.

    Cap: one peer address (an IPv6 /64) may hold MAX_CONNECTIONS_PER_ADDRESS connections;
    the next is answered 429 and closed. Off behind TRUSTED_PROXIES, where every peer is a
    proxy and the proxy caps connections per client (docs/DEPLOY.md).
    """
    import socket
    import time

    import eventlet
    import eventlet.wsgi

    from app.ops.limits_conn import ConnectionCounter, address_key, refusal_http_response

    header_timeout = config["HTTP_HEADER_TIMEOUT"]
    body_timeout = config["HTTP_BODY_TIMEOUT"]
    keepalive_timeout = config["HTTP_KEEPALIVE_TIMEOUT"]
    per_address = ConnectionCounter(0 if config["TRUSTED_PROXIES"] else config["MAX_CONNECTIONS_PER_ADDRESS"])
    refusal = refusal_http_response("Too many connections from your address; close some and retry.")

    class BodyReader:
        """The reader of one request's body, allowed body_timeout seconds in all."""

        def __init__(self, rfile, protocol):
            self.rfile = rfile
            self.protocol = protocol
            self.deadline = time.monotonic() + body_timeout

        def read(self, size=-1):
            return self._within(self.rfile.read, size)

        def readline(self, size=-1):
            return self._within(self.rfile.readline, size)

        def _within(self, read, size):
            remaining = self.deadline - time.monotonic()
            if remaining > 0:
                timer = eventlet.Timeout(remaining)
                try:
                    return read(size)
                except eventlet.Timeout as exc:
                    if exc is not timer:
                        raise
                finally:
                    timer.cancel()
            # Past the deadline the body ends here (the application sees a short body, a
            # 400 for Flask) and the connection closes after the response.
            self.protocol.close_connection = 1
            return b""

    # Kept outside the protocol objects, which live as long as their connection: a
    # websocket's would otherwise carry these for its whole life.
    head_timers = {}  # id(protocol) -> the deadline of the request head being read
    refused = set()  # id(protocol) of connections past the per-address cap

    class HttpProtocol(eventlet.wsgi.HttpProtocol):
        rbufsize = 512

        def setup(self):
            super().setup()
            if not per_address.acquire(self.address_key()):
                refused.add(id(self))

        def finish(self):
            self.end_head_deadline()
            try:
                super().finish()
            finally:
                if id(self) in refused:
                    refused.discard(id(self))
                else:
                    per_address.release(self.address_key())

        def address_key(self):
            return address_key(self.client_address[0] if isinstance(self.client_address, tuple) else "")

        def _read_request_line(self):
            # eventlet reads each request's line here, and returns before the response: the
            # deadline lives in no frame that a websocket keeps. The timer raises
            # socket.timeout, which eventlet's server catches by closing the connection.
            self.end_head_deadline()
            if id(self) in refused:
                self.refuse()
                return ""  # eventlet closes the connection
            if "raw_requestline" in self.__dict__ and keepalive_timeout > 0 and not self.next_request_begins():
                return ""
            if header_timeout > 0:
                head_timers[id(self)] = eventlet.Timeout(header_timeout, socket.timeout("request head too slow"))
            return super()._read_request_line()

        def end_head_deadline(self):
            timer = head_timers.pop(id(self), None)
            if timer is not None:
                timer.cancel()

        def refuse(self):
            """Answer 429 without waiting for the request, then close without resetting the answer away."""
            try:
                self.wfile.write(refusal)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                # Read what the client sends meanwhile: closing with unread data would
                # send a reset, and the client could lose the answer.
                with eventlet.Timeout(1, False):
                    while self.connection.recv(4096):
                        pass
            except OSError:
                pass

        def next_request_begins(self):
            """Wait up to keepalive_timeout for the first byte of another request; False if none came."""
            timer = eventlet.Timeout(keepalive_timeout)
            try:
                return bool(self.rfile.peek(1))
            except eventlet.Timeout as exc:
                if exc is not timer:
                    raise
                return False
            except OSError:
                return False
            finally:
                timer.cancel()

        def get_environ(self):
            # Called once the line and headers are read and checked: the head's deadline ends.
            self.end_head_deadline()
            environ = super().get_environ()
            request_input = environ["eventlet.input"]
            if body_timeout > 0 and (request_input.chunked_input or request_input.content_length):
                request_input.rfile = BodyReader(request_input.rfile, self)
            return environ

        def handle_one_response(self):
            if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                # Nothing is pending in it: eventlet flushes after every response.
                spent, self.wfile = self.wfile, self.connection.makefile("wb", 256)
                spent.close()  # frees the buffer; the socket stays open (makefile holds a reference)
            super().handle_one_response()

    return HttpProtocol


def _ping_from_hub_timers() -> None:
    """python-engineio's pings by eventlet hub timers instead of a green thread per socket.

    Between two pings (25 s by default) python-engineio keeps a green thread per socket
    asleep only to send the next ping: one of the three a websocket holds, with its own
    saved stack. A timer on the hub sends the same packet at the same moment without one.
    It replaces `Socket.schedule_ping`, whose logic it keeps: a new ping only after the
    client answered the last one, none to a socket that is closing. Proposed to
    python-engineio as a timer hook for the async drivers (docs/upstream/).
    """
    import time

    from engineio import packet
    from engineio.socket import Socket
    from eventlet.hubs import get_hub

    def send_ping(socket: Socket) -> None:
        if socket.closing or socket.closed:
            return
        socket.last_ping = time.time()
        try:
            socket.send(packet.Packet(packet.PING))
        except Exception:  # closed meanwhile: nothing to ping
            pass

    def schedule_ping(socket: Socket) -> None:
        if socket.last_ping:
            socket.last_ping = None
            get_hub().schedule_call_global(socket.server.ping_interval, send_ping, socket)

    Socket.schedule_ping = schedule_ping


def _blocking_call_runner():
    """How this async mode runs a call that blocks in C (SQLite's checkpoint) without stopping the others."""
    if ASYNC_MODE == "eventlet":
        from eventlet import tpool

        return tpool.execute
    if ASYNC_MODE == "gevent":
        import gevent

        return lambda call: gevent.get_hub().threadpool.apply(call)
    return lambda call: call()  # threading: background tasks are threads already


try:
    app = create_app()
except ConfigError as exc:
    print(f"chorus: cannot start: {exc}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    problems = check_services(app)
    if problems:
        print(f"chorus: cannot start: {describe(problems)}", file=sys.stderr)
        sys.exit(2)
    start_background_jobs(app)
    start_auth_deadline(app)
    start_background_checkpoints(app, _blocking_call_runner())
    # Last before serving: everything built so far lives as long as the process.
    freeze_startup_objects()
    watch_collections()
    start_refreezing(app)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    if ASYNC_MODE == "eventlet":
        _ping_from_hub_timers()
        # What socketio.run does for eventlet, on a listener with TCP_NODELAY. eventlet's WSGI
        # server serves at most 1,024 connections at once by default, and every open socket
        # holds one: the 1,025th client would wait for someone to leave.
        import eventlet.wsgi

        max_size = _open_file_budget(int(os.environ.get("MAX_CONNECTIONS", "20000")))
        listener = listening_socket(host, port)
        print(f"Chorus serving on http://{host}:{port} ({ASYNC_MODE})", flush=True)
        # app.wsgi_app rather than app: Flask.__call__ only forwards to it, and a call through
        # an object's __call__ is one more C frame in every socket's saved greenlet stack.
        eventlet.wsgi.server(listener, app.wsgi_app, log_output=False, max_size=max_size,
                             protocol=_eventlet_protocol(app.config))
    else:
        print(f"Chorus serving on http://{host}:{port} ({ASYNC_MODE})", flush=True)
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=ASYNC_MODE == "threading")
