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
from app.ops.jobs import start_background_jobs  # noqa: E402
from app.ops.serving import listening_socket  # noqa: E402
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


def _eventlet_protocol():
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
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    if ASYNC_MODE == "eventlet":
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
                             protocol=_eventlet_protocol())
    else:
        print(f"Chorus serving on http://{host}:{port} ({ASYNC_MODE})", flush=True)
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=ASYNC_MODE == "threading")
