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
from app.security import ConfigError  # noqa: E402

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
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    print(f"Chorus serving on http://{host}:{port} ({ASYNC_MODE})", flush=True)
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=ASYNC_MODE == "threading")
