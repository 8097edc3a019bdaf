"""Chorus: a self-hosted team chat. `create_app` builds the Flask app for every process."""
from __future__ import annotations

import logging
import math
import os
import time

from flask import Flask, jsonify, render_template, request

from app.config import INSTANCE_DIR, base_config
from app.extensions import csrf, db, login_manager, migrate
from app.json_provider import OrjsonProvider
from app.logs import configure_logging
from app.security import ConfigError, drop_untrusted_forwarded_headers, register_security

log = logging.getLogger(__name__)


def create_app(config: type | dict | None = None, *, worker: bool = False) -> Flask:
    """Build the app: web server by default, a write-only emitter when worker is true."""
    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder="../static",
        instance_path=str(INSTANCE_DIR),
    )
    app.json = OrjsonProvider(app)
    base = base_config()
    app.config.from_object(base)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    app.config["SOCKETIO_WRITE_ONLY"] = worker
    app.config.setdefault("CELERY", base.celery_settings(
        app.config["REDIS_URL"], app.config["REDIS_KEY_PREFIX"], app.config["CELERY_VISIBILITY_TIMEOUT"]
    ))
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        os.makedirs(app.instance_path, exist_ok=True)

    configure_logging(app)
    register_extensions(app)
    register_security(app)
    register_blueprints(app)
    register_sockets(app)
    drop_untrusted_forwarded_headers(app)
    register_errorhandlers(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind every extension to the app."""
    from app.celery_app import celery_init_app
    from app.events import register_session_hooks

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    celery_init_app(app)
    register_session_hooks()
    with app.app_context():
        _ping_idle_connections(db.engine, app.config["DB_PING_IDLE_SECONDS"])
        if db.engine.dialect.name == "sqlite":
            _tune_sqlite(db.engine, app.config)


def _ping_idle_connections(engine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it sat idle for idle_seconds.

    SQLAlchemy's pool_pre_ping checks every checkout, a round trip per socket event. A
    connection that went bad while idle (a database restart, an idle timeout) is the case
    worth checking; one that failed while in use has already made SQLAlchemy invalidate
    the pool. A failed check is a DisconnectionError, on which the pool connects afresh.
    """
    import time

    from sqlalchemy import event, exc

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["chorus.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        idle_since = record.info.get("chorus.idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.DisconnectionError() from error
            raise


def _tune_sqlite(engine, config) -> None:
    from sqlalchemy import event

    synchronous = config["SQLITE_SYNCHRONOUS"]
    if synchronous not in ("NORMAL", "FULL"):
        raise ConfigError(f"SQLITE_SYNCHRONOUS must be NORMAL or FULL, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        # WAL lets readers and the writer work at once; foreign keys are off by default.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit is not synced to disk; the log is synced at each checkpoint. A
        # crash of the process loses nothing; a power cut or OS crash can lose the last
        # commits (never the database's integrity). See docs/DEPLOY.md.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # Read at each connect: a server that checkpoints in the background has set 0 by then.
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(config['SQLITE_WAL_AUTOCHECKPOINT'])}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


def register_blueprints(app: Flask) -> None:
    """Mount the page, API and admin blueprints."""
    from app.admin import init_admin
    from app.api import bp as api_bp
    from app.auth import bp as auth_bp
    from app.chat import bp as chat_bp
    from app.ops import bp as ops_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(chat_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(ops_bp)
    init_admin(app)


def register_sockets(app: Flask) -> None:
    """Bind Socket.IO (see app.realtime)."""
    from app.realtime import register_sockets as _register

    _register(app)


def register_errorhandlers(app: Flask) -> None:
    """JSON errors under /api, plain pages elsewhere."""
    from flask_limiter.errors import RateLimitExceeded
    from werkzeug.exceptions import HTTPException

    from app.security import limiter

    from app.lib.errors import ChatError

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(ChatError)
    def chat_error(exc: ChatError):
        db.session.rollback()
        if wants_json():
            response = jsonify(exc.to_dict())
        else:
            response = app.make_response(render_template("error.html", code=exc.status, message=exc.message))
        response.status_code = exc.status
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        current = limiter.current_limit
        retry_after = max(1, math.ceil(current.reset_at - time.time())) if current else 60
        error = ChatError("rate_limited", f"Too many requests ({exc.description}); slow down.",
                          retry_after=retry_after)
        return chat_error(error)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            code = {
                400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "too_large", 429: "rate_limited",
            }.get(exc.code, "error")
            return jsonify({"error": {"code": code, "message": exc.description}}), exc.code
        return render_template("error.html", code=exc.code, message=exc.description), exc.code

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s", request.path)
        if wants_json():
            return jsonify({"error": {"code": "internal", "message": "Something went wrong."}}), 500
        return render_template("error.html", code=500, message="Something went wrong."), 500


def register_cli(app: Flask) -> None:
    """Add the flask sub-commands."""
    from app.cli import register

    register(app)
