"""The Socket.IO layer: authentication at connect and thin event handlers."""
from __future__ import annotations

import inspect

from flask import Flask

from app.extensions import socketio

# Imported before any init_app: Flask-SocketIO then keeps the handlers and binds them to
# every app's server, not only to the first one created in the process.
from app.realtime import guard, handlers  # noqa: F401
from app.realtime.registry import LocalSocketRegistry, RedisSocketRegistry


def register_sockets(app: Flask) -> None:
    """Bind Socket.IO to the app: a server in web processes, a write-only emitter in workers."""
    redis_url = app.config["REDIS_URL"]
    channel = app.config["SOCKETIO_CHANNEL"]
    if app.config.get("SOCKETIO_WRITE_ONLY"):
        from flask_socketio import SocketIO

        # Celery workers only publish to the servers' Redis channel.
        app.extensions["chorus.emitter"] = SocketIO(message_queue=redis_url, channel=channel, async_mode="threading")
        app.extensions["chorus.sockets"] = RedisSocketRegistry(redis_url, app.config["REDIS_KEY_PREFIX"] + "sockets:") if redis_url else None
        return
    options = {
        "async_mode": app.config["SOCKETIO_ASYNC_MODE"],
        "cors_allowed_origins": app.config["CORS_ALLOWED_ORIGINS"],
        # A message is at most 4,000 characters; anything far larger is not ours.
        "max_http_buffer_size": 64 * 1024,
        # Events of one socket are handled one after another, in the order sent, so a
        # client sending fast gets ids in its own order; sockets still run concurrently.
        "async_handlers": False,
        # Decodes frames refusing events named connect, disconnect and the like (guard.py).
        "serializer": guard.Packet,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if redis_url:
        options.update(message_queue=redis_url, channel=channel)
    socketio.init_app(app, **options)
    guard.install(socketio.server)
    if not app.config.get("WEBSOCKET_COMPRESSION"):
        app.wsgi_app = _without_websocket_extensions(app.wsgi_app)
    app.extensions["chorus.sockets"] = RedisSocketRegistry(redis_url, app.config["REDIS_KEY_PREFIX"] + "sockets:") if redis_url else LocalSocketRegistry()


def _without_websocket_extensions(wsgi_app):
    """Hide the client's Sec-WebSocket-Extensions offer, so no socket negotiates permessage-deflate.

    Every websocket server Flask-SocketIO runs on (eventlet's, simple-websocket's) accepts
    the compression that browsers offer; without the offer it stays off.
    """
    # Flask-SocketIO's middleware is an object: calling it runs its __call__ from C, one more
    # C frame in the stack every socket's reader keeps while it waits (about 0.6 KB a socket,
    # measured at 2,000 idle sockets). Its bound __call__ is a plain Python-to-Python call.
    call = wsgi_app if inspect.isfunction(wsgi_app) or inspect.ismethod(wsgi_app) else wsgi_app.__call__

    def middleware(environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return call(environ, start_response)

    return middleware
