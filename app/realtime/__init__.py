"""The Socket.IO layer: authentication at connect and thin event handlers."""
from __future__ import annotations

from flask import Flask

from app.extensions import socketio

# Imported before any init_app: Flask-SocketIO then keeps the handlers and binds them to
# every app's server, not only to the first one created in the process.
from app.realtime import guard, handlers, presence  # noqa: F401
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
        # Workers read presence (@here) and mark status changes; the servers' flushers send them.
        app.extensions["chorus.presence"] = presence.make_store(app)
        return
    options = {
        "async_mode": app.config["SOCKETIO_ASYNC_MODE"],
        "cors_allowed_origins": app.config["CORS_ALLOWED_ORIGINS"],
        # A message is at most 4,000 characters; anything far larger is not ours.
        "max_http_buffer_size": 64 * 1024,
        # Seconds between pings, and how long a client has to answer one.
        "ping_interval": app.config["SOCKETIO_PING_INTERVAL"],
        "ping_timeout": app.config["SOCKETIO_PING_TIMEOUT"],
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
    app.wsgi_app = guard.http_guard(app, app.wsgi_app, socketio.server,
                                    websocket_compression=app.config.get("WEBSOCKET_COMPRESSION", False))
    app.extensions["chorus.sockets"] = RedisSocketRegistry(redis_url, app.config["REDIS_KEY_PREFIX"] + "sockets:") if redis_url else LocalSocketRegistry()
    app.extensions["chorus.presence"] = presence.make_store(app)
