"""A bare Flask-SocketIO server that only authenticates, joins rooms and broadcasts.

The yardstick for Chorus: the same async mode, monkey-patching and serving as `wsgi.py`,
the same Socket.IO options and the same wire shapes (a `send` event acknowledged with
`{ok, message, duplicate}` and a `message` broadcast to `room:<id>`), but no database,
no markdown, no access checks beyond a dict lookup.

Environment:
  BASELINE_MEMBERS  JSON file {"tokens": {token: user_id}, "users": {user_id: [username, [room ids]]}}
  SOCKETIO_ASYNC_MODE, HOST, PORT, REDIS_URL, SOCKETIO_CHANNEL, WEBSOCKET_COMPRESSION   as for Chorus
"""
import os
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
ASYNC_MODE = os.environ.get("SOCKETIO_ASYNC_MODE", "eventlet")
if ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
elif ASYNC_MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()

import itertools  # noqa: E402
import json  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from flask import Flask, request  # noqa: E402
from flask_socketio import ConnectionRefusedError, SocketIO, join_room  # noqa: E402
from markupsafe import escape  # noqa: E402

with open(os.environ["BASELINE_MEMBERS"]) as fh:
    _DATA = json.load(fh)
TOKENS: dict[str, int] = _DATA["tokens"]
USERS: dict[int, tuple[str, set[int]]] = {int(k): (v[0], set(v[1])) for k, v in _DATA["users"].items()}
del _DATA

app = Flask(__name__)
options = {
    "async_mode": ASYNC_MODE,
    "max_http_buffer_size": 64 * 1024,
    "async_handlers": False,
}
if os.environ.get("REDIS_URL"):
    options.update(message_queue=os.environ["REDIS_URL"], channel=os.environ.get("SOCKETIO_CHANNEL", "flask-socketio"))
socketio = SocketIO(app, **options)
if os.environ.get("WEBSOCKET_COMPRESSION", "0") not in {"1", "true", "yes", "on"}:
    # As Chorus does by default: no permessage-deflate, whatever the client offers.
    _inner = app.wsgi_app

    def _no_extensions(environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return _inner(environ, start_response)

    app.wsgi_app = _no_extensions
_ids = itertools.count(1)
_sid_user: dict[str, int] = {}


@app.get("/healthz")
def healthz():
    """Ready once serving."""
    return {"status": "ok"}


@socketio.on("connect")
def on_connect(auth=None):
    """Accept a known token; join the user's channel and rooms."""
    user_id = TOKENS.get(auth.get("token")) if isinstance(auth, dict) else None
    if user_id is None:
        raise ConnectionRefusedError("Log in first.", {"code": "unauthorized"})
    _sid_user[request.sid] = user_id
    join_room(f"user:{user_id}")
    for room_id in USERS[user_id][1]:
        join_room(f"room:{room_id}")


@socketio.on("disconnect")
def on_disconnect(*_args):
    """Forget the socket."""
    _sid_user.pop(request.sid, None)


@socketio.on("send")
def on_send(data):
    """Broadcast {room_id, body, client_id} to the room; ack with the message."""
    user_id = _sid_user.get(request.sid)
    room_id = data.get("room_id") if isinstance(data, dict) else None
    if user_id is None or room_id not in USERS[user_id][1]:
        return {"ok": False, "error": {"code": "not_member", "message": "Join the room first."}}
    username = USERS[user_id][0]
    body = data.get("body", "")
    message = {
        "id": next(_ids),
        "room_id": room_id,
        "author": {"id": user_id, "username": username, "display_name": username},
        "body": body,
        "html": f"<p>{escape(body)}</p>",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "mentions": [],
        "client_id": data.get("client_id"),
    }
    socketio.emit("message", message, to=f"room:{room_id}")
    return {"ok": True, "message": message, "duplicate": False}


if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    options = {}
    if ASYNC_MODE == "eventlet":
        # As wsgi.py does: lift eventlet's default cap of 1,024 simultaneous connections.
        options["max_size"] = int(os.environ.get("MAX_CONNECTIONS", "20000"))
    print(f"Baseline serving on http://{host}:{port} ({ASYNC_MODE})", flush=True)
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=ASYNC_MODE == "threading", **options)
