"""Settings, every one read from the environment with an embedded-mode default."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{INSTANCE_DIR / 'chorus.db'}"
    # Heroku-style URLs name the scheme "postgres", which SQLAlchemy no longer accepts.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    # SQLAlchemy 2.1 picks psycopg 3 for a bare "postgresql://", and psycopg 3 does not
    # cooperate with eventlet; psycopg2 does.
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


class Config:
    """Defaults for the embedded mode; DATABASE_URL and REDIS_URL switch to the cluster mode."""

    # Signs session cookies and CSRF tokens. Unset, the embedded mode makes a random one
    # and keeps it in SECRET_KEY_FILE; the cluster mode refuses to serve (app/security.py).
    SECRET_KEY = os.environ.get("SECRET_KEY") or None
    SECRET_KEY_FILE = os.environ.get("SECRET_KEY_FILE") or str(INSTANCE_DIR / "secret_key")
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # A pooled connection idle for longer is checked (SELECT 1) before use; one in steady
    # use is not, which saves a round trip per socket event (app/__init__.py).
    DB_PING_IDLE_SECONDS = float(os.environ.get("DB_PING_IDLE_SECONDS", "5"))
    # The embedded mode's SQLite: NORMAL syncs the write-ahead log at checkpoints instead of
    # at every commit (survives a crash of the process, not a power cut: docs/DEPLOY.md);
    # FULL syncs every commit. A server checkpoints every SQLITE_CHECKPOINT_SECONDS in the
    # background (0: SQLite's own automatic checkpoints, inside a commit).
    SQLITE_SYNCHRONOUS = os.environ.get("SQLITE_SYNCHRONOUS", "NORMAL").strip().upper()
    SQLITE_CHECKPOINT_SECONDS = float(os.environ.get("SQLITE_CHECKPOINT_SECONDS", "1"))
    # Log pages after which a committing connection checkpoints (SQLite's default); a server
    # that checkpoints in the background sets 0 before it serves (app/ops/sqlite_wal.py).
    SQLITE_WAL_AUTOCHECKPOINT = 1000
    REDIS_URL = os.environ.get("REDIS_URL") or None
    REGISTRATION_OPEN = _bool("REGISTRATION_OPEN", True)
    MESSAGE_MAX_LENGTH = 4000
    # How long after sending an author may edit or delete a message (unset: always).
    # Room owners and administrators may delete any message at any time, never edit one.
    MESSAGE_EDIT_WINDOW_SECONDS = (
        float(os.environ["MESSAGE_EDIT_WINDOW_SECONDS"]) if os.environ.get("MESSAGE_EDIT_WINDOW_SECONDS") else None
    )
    # Distinct emoji one message may carry.
    MAX_REACTIONS_PER_MESSAGE = 50
    HISTORY_PAGE_SIZE = 50
    HISTORY_MAX_PAGE_SIZE = 200
    MAX_CONTENT_LENGTH = 64 * 1024
    SOCKETIO_ASYNC_MODE = os.environ.get("SOCKETIO_ASYNC_MODE") or None
    # Engine.IO's heartbeat: a ping every SOCKETIO_PING_INTERVAL seconds, and a socket whose
    # client does not answer within SOCKETIO_PING_TIMEOUT is closed.
    SOCKETIO_PING_INTERVAL = float(os.environ.get("SOCKETIO_PING_INTERVAL", "25"))
    SOCKETIO_PING_TIMEOUT = float(os.environ.get("SOCKETIO_PING_TIMEOUT", "20"))
    # The channel the servers and the Celery workers share on Redis; a mismatch drops
    # every emit from the workers silently, so it is set in one place.
    SOCKETIO_CHANNEL = os.environ.get("SOCKETIO_CHANNEL", "flask-socketio")
    # Prefix of every Redis key Chorus and its Celery broker write; lets several
    # deployments (or test runs) share one Redis server without seeing each other.
    REDIS_KEY_PREFIX = os.environ.get("REDIS_KEY_PREFIX", "chorus:")
    # permessage-deflate costs a zlib context per socket (~90 KB from its first frame on)
    # and a compression per recipient of every broadcast; chat frames are small. Off unless
    # asked for (see docs/BENCHMARKS.md).
    WEBSOCKET_COMPRESSION = _bool("WEBSOCKET_COMPRESSION", False)
    CORS_ALLOWED_ORIGINS = [
        o.strip() for o in os.environ.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()
    ] or None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # A login (a user_sessions row) ends this long after it began, whatever the cookies
    # say; "keep me logged in" lasts as long.
    SESSION_LIFETIME = timedelta(days=float(os.environ.get("SESSION_LIFETIME_DAYS", "30")))
    REMEMBER_COOKIE_DURATION = SESSION_LIFETIME
    # How often a session's last_seen_at is written, and a socket re-checks its session.
    SESSION_TOUCH_SECONDS = float(os.environ.get("SESSION_TOUCH_SECONDS", "300"))
    # Wrong current passwords given to a password change, per account: a stolen session
    # must not be a way to guess the password (and so keep the account after a change).
    PASSWORD_CHANGE_FAILURES = os.environ.get("PASSWORD_CHANGE_FAILURES", "10 per 15 minutes")
    WTF_CSRF_TIME_LIMIT = None
    DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "chorus-demo")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    # How often each server queues the sweep of mentions whose task was lost (0: never).
    MENTION_SWEEP_SECONDS = float(os.environ.get("MENTION_SWEEP_SECONDS", "30"))
    # How often a server collects everything once and freezes what survives (app/ops/heap.py).
    GC_REFREEZE_SECONDS = float(os.environ.get("GC_REFREEZE_SECONDS", "300"))
    # Above this many members the page asks before sending @room, @all, @everyone or @here.
    WILDCARD_WARN_MEMBERS = int(os.environ.get("WILDCARD_WARN_MEMBERS", "20"))
    # A task a killed worker had taken goes back to the queue after this many seconds.
    CELERY_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "300"))
    CHORUS_ENV = os.environ.get("CHORUS_ENV", "development")
    # Set when several processes share metrics (prometheus_client reads it itself too).
    PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    # How many reverse proxies (nginx) stand in front; their X-Forwarded-* headers are trusted.
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

    # Server resources (docs/SECURITY.md, "Server resources"). An Engine.IO session must
    # connect to the Socket.IO namespace (log in) within SOCKET_AUTH_TIMEOUT seconds, and
    # one client address may have MAX_UNAUTHENTICATED_SOCKETS_PER_ADDRESS such sessions
    # waiting at once. The HTTP_* timeouts and MAX_CONNECTIONS_PER_ADDRESS apply to the
    # eventlet server of wsgi.py; the per-address TCP cap is off behind TRUSTED_PROXIES,
    # where every peer is the proxy. 0 turns any of them off.
    SOCKET_AUTH_TIMEOUT = float(os.environ.get("SOCKET_AUTH_TIMEOUT", "5"))
    MAX_UNAUTHENTICATED_SOCKETS_PER_ADDRESS = int(os.environ.get("MAX_UNAUTHENTICATED_SOCKETS_PER_ADDRESS", "50"))
    MAX_CONNECTIONS_PER_ADDRESS = int(os.environ.get("MAX_CONNECTIONS_PER_ADDRESS", "200"))
    HTTP_HEADER_TIMEOUT = float(os.environ.get("HTTP_HEADER_TIMEOUT", "10"))
    HTTP_BODY_TIMEOUT = float(os.environ.get("HTTP_BODY_TIMEOUT", "30"))
    HTTP_KEEPALIVE_TIMEOUT = float(os.environ.get("HTTP_KEEPALIVE_TIMEOUT", "15"))

    # GET /metrics: with a token, for requests carrying it as a bearer token; without one,
    # for scrapers on the server's own host only.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None

    # Rate limits (the `limits` notation). HTTP through Flask-Limiter, sockets and login
    # failures through app.ratelimit; the storage is Redis in cluster mode, memory otherwise.
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    # No X-RateLimit-* headers: Flask-Limiter would also rewrite Retry-After to its own
    # window's reset, which is not when a refused login or registration is accepted again.
    # A 429 carries Retry-After from the limit that refused it (app/__init__.py).
    RATELIMIT_HEADERS_ENABLED = False
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "20 per minute")
    REGISTER_RATE_LIMIT = os.environ.get("REGISTER_RATE_LIMIT", "10 per hour")
    API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "600 per minute")
    # Failed logins are counted per account and address (a stranger's guesses lock only the
    # stranger out), per account from every address (a ceiling on distributed guessing,
    # which also locks the owner out), and per address.
    LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS = os.environ.get("LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS",
                                                            "10 per 15 minutes")
    LOGIN_FAILURES_PER_ACCOUNT = os.environ.get("LOGIN_FAILURES_PER_ACCOUNT", "100 per 15 minutes")
    LOGIN_FAILURES_PER_ADDRESS = os.environ.get("LOGIN_FAILURES_PER_ADDRESS", "50 per 15 minutes")
    # Per user and event; toggling a reaction in a loop is a broadcast to the room each time.
    SOCKET_EVENT_LIMITS = {
        "send": os.environ.get("SOCKET_SEND_LIMIT", "30 per 10 seconds"),
        "react": os.environ.get("SOCKET_REACT_LIMIT", "30 per 10 seconds"),
        # A page sends typing at most every 3 s; a user typing in a few tabs stays under this.
        "typing": os.environ.get("SOCKET_TYPING_LIMIT", "60 per minute"),
    }
    SOCKET_DEFAULT_LIMIT = os.environ.get("SOCKET_DEFAULT_LIMIT", "120 per minute")

    # Presence (app/realtime/presence.py): idle after PRESENCE_IDLE_SECONDS without input;
    # in cluster mode a server refreshes its sockets every PRESENCE_HEARTBEAT_SECONDS and
    # the users of a server that stopped doing so go offline PRESENCE_TTL_SECONDS after its
    # last refresh; changes are sent at most once per PRESENCE_FLUSH_SECONDS.
    PRESENCE_IDLE_SECONDS = float(os.environ.get("PRESENCE_IDLE_SECONDS", "300"))
    PRESENCE_TTL_SECONDS = float(os.environ.get("PRESENCE_TTL_SECONDS", "60"))
    PRESENCE_HEARTBEAT_SECONDS = float(os.environ.get("PRESENCE_HEARTBEAT_SECONDS", "20"))
    PRESENCE_FLUSH_SECONDS = float(os.environ.get("PRESENCE_FLUSH_SECONDS", "1"))

    @classmethod
    def celery_settings(cls, redis_url: str | None, key_prefix: str = "chorus:", visibility_timeout: int = 300) -> dict:
        """Celery settings: a Redis broker in cluster mode, in-process tasks when embedded."""
        if redis_url:
            return {
                "broker_url": redis_url,
                "broker_transport_options": {
                    "global_keyprefix": f"{key_prefix}celery:",
                    "visibility_timeout": visibility_timeout,
                },
                "result_backend": redis_url,
                "task_always_eager": False,
                "task_acks_late": True,
                "task_reject_on_worker_lost": True,
                "worker_prefetch_multiplier": 1,
                "task_ignore_result": True,
                "broker_connection_retry_on_startup": True,
            }
        return {
            "broker_url": "memory://",
            "task_always_eager": True,
            "task_eager_propagates": True,
            "task_ignore_result": True,
        }


class TestConfig(Config):
    """Unit tests: a throw-away SQLite file, no CSRF on forms, no Redis."""

    TESTING = True
    SECRET_KEY = "test-secret"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    REDIS_URL = None
    WTF_CSRF_ENABLED = False
    SOCKETIO_ASYNC_MODE = "threading"
    RATELIMIT_ENABLED = False  # the rate-limit tests turn it on


class ProductionConfig(Config):
    """Cluster deployments: secure cookies and an explicit secret."""

    CHORUS_ENV = "production"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True


def base_config() -> type:
    """The settings class the environment asks for: ProductionConfig under CHORUS_ENV=production."""
    return ProductionConfig if os.environ.get("CHORUS_ENV") == "production" else Config
