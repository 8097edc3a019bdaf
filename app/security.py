"""Security wiring: rate limits, response headers with a CSP nonce, proxy trust, secrets."""
from __future__ import annotations

import inspect
import logging
import os
import secrets
from pathlib import Path

import click
from flask import Flask, current_app, g, request
from flask.cli import ScriptInfo
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from app.ratelimit import EventLimiter

log = logging.getLogger(__name__)

INSECURE_DEFAULT_KEYS = {"chorus-embedded-dev-key", "", None}
# Keys that were ever published in Chorus's source: anyone could sign a session with them.
PUBLIC_KEYS = {"chorus-embedded-dev-key"}
MIN_KEY_LENGTH = 32


class ConfigError(RuntimeError):
    """A setting that makes it unsafe or impossible to start."""


def rate_limit_key() -> str:
    """Per user when logged in, per address otherwise."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return address_key()


def address_key() -> str:
    """Per client address, whoever is logged in: login and registration attempts count so,
    or a token or session of one's own would buy a fresh allowance."""
    return f"addr:{get_remote_address()}"


def bearer_token(req) -> str | None:
    """The token of the request's `Authorization: Bearer <token>` header, or None without one.

    A request that has one is authenticated by it alone (app.auth.routes), so any such
    header counts, a junk one included.
    """
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


limiter = Limiter(key_func=rate_limit_key)
# Attempts to log in (the form and POST /api/v1/auth/token) and to register (the form and
# POST /api/v1/users); each is one allowance per address, whichever door is used.
login_limit = limiter.shared_limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], scope="login",
                                   key_func=address_key, methods=["POST"])
registration_limit = limiter.shared_limit(lambda: current_app.config["REGISTER_RATE_LIMIT"], scope="register",
                                          key_func=address_key, methods=["POST"])


def csp_nonce() -> str:
    """The per-response nonce allowing the few inline scripts of the admin console."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def check_secret_key(app: Flask) -> None:
    """Make sure sessions are signed with a key nobody else has, or refuse to start.

    A key given in SECRET_KEY is used, unless it is one published in the source (or, in
    production, shorter than 32 characters). Without one, the embedded mode keeps a random
    key in SECRET_KEY_FILE, made on first start; the cluster mode (PostgreSQL or Redis) and
    production refuse to serve, since every server and worker must share a key only the
    operator can hand out. Flask CLI commands (`flask db upgrade`, `flask seed-demo`) sign
    nothing that outlives them and get a random key of their own instead.
    """
    key = app.config.get("SECRET_KEY")
    production = app.config.get("CHORUS_ENV") == "production"
    if key:
        if key in PUBLIC_KEYS:
            raise ConfigError("SECRET_KEY is a key published in Chorus's source; set a random one")
        if production and len(key) < MIN_KEY_LENGTH:
            raise ConfigError("SECRET_KEY must be set to a random string of at least 32 characters in production")
        return
    if production or _cluster_mode(app):
        if _flask_cli_command() not in (None, "run"):
            app.config["SECRET_KEY"] = secrets.token_urlsafe(48)
            return
        where = "in production" if production else "in the cluster mode (DATABASE_URL or REDIS_URL set)"
        raise ConfigError(f"SECRET_KEY must be set {where}, the same random string of at least "
                          "32 characters for every server and worker")
    app.config["SECRET_KEY"] = load_or_create_secret_key(Path(app.config["SECRET_KEY_FILE"]))


def _cluster_mode(app: Flask) -> bool:
    return bool(app.config.get("REDIS_URL")) or not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")


def _flask_cli_command() -> str | None:
    """The `flask` sub-command loading this app, or None outside the Flask CLI."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.find_object(ScriptInfo) is None:
        return None
    # `flask run` loads the app inside its own context; other commands load it while
    # the top-level group looks them up.
    return ctx.info_name


def load_or_create_secret_key(path: Path) -> str:
    """The key kept in path; made on first use, readable by the owner only.

    It is written to a private temporary file and then hard-linked into place, which fails
    if the file exists: of two processes starting together one key wins and both read it.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask left
            os.write(fd, (secrets.token_urlsafe(48) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            log.info("made a new secret key in %s", path)
    except OSError as exc:
        raise ConfigError(f"cannot keep a secret key in {path} ({exc.strerror}); set SECRET_KEY") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return _read_key(path)


def _read_key(path: Path) -> str:
    try:
        key = path.read_text().strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise  # the caller makes it
    except OSError as exc:
        raise ConfigError(f"cannot read the secret key in {path} ({exc.strerror}); set SECRET_KEY") from None
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"the secret key in {path} is shorter than {MIN_KEY_LENGTH} characters; "
                          "delete the file to make a new one, or set SECRET_KEY")
    if mode & 0o077:
        try:
            os.chmod(path, 0o600)
            log.warning("%s was open to other users; made it readable by its owner only", path)
        except OSError:
            log.warning("%s is open to other users: make it readable by its owner only", path)
    return key


def register_security(app: Flask) -> None:
    """Rate limiters, trusted proxies and security headers."""
    check_secret_key(app)
    storage = app.config["REDIS_URL"] or "memory://"
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", app.config["REDIS_KEY_PREFIX"] + "limits")
    limiter.init_app(app)
    app.extensions["chorus.event_limiter"] = EventLimiter(
        app.config["RATELIMIT_STORAGE_URI"], app.config["REDIS_KEY_PREFIX"] + "events",
        enabled=app.config.get("RATELIMIT_ENABLED", True),
    )
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:
        # Behind nginx, the client's address and scheme come from X-Forwarded-* headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    @app.after_request
    def security_headers(response):
        # Those the response has not set itself, in one pass over its headers (setdefault
        # raises and catches a KeyError per missing name: ~25 µs a response, this ~10).
        present = {name.lower() for name in response.headers.keys()}
        values = security_header_values(csp_nonce(), secure=request.is_secure)
        response.headers.extend([(name, value) for name, value in values.items() if name.lower() not in present])
        return response


# Read by python-engineio's same-origin check (BaseServer._cors_allowed_origins), which
# accepts an Origin naming the Host or these.
_FORWARDED_ORIGIN_HEADERS = ("HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO")


def drop_untrusted_forwarded_headers(app: Flask) -> None:
    """With no trusted proxy, remove the client's own X-Forwarded-Host and -Proto from every request.

    Installed once the Socket.IO layer is in place, outside it: otherwise a client could
    name the origin its Socket.IO handshake is checked against. Behind TRUSTED_PROXIES the
    proxy must set both headers itself (docs/DEPLOY.md).
    """
    if app.config.get("TRUSTED_PROXIES", 0):
        return
    wsgi_app = app.wsgi_app
    # A middleware object's bound __call__: calling the object itself goes through C, one
    # more C frame in the stack every waiting socket keeps.
    call = wsgi_app if inspect.isfunction(wsgi_app) or inspect.ismethod(wsgi_app) else wsgi_app.__call__

    def without_forwarded_origin(environ, start_response):
        for key in _FORWARDED_ORIGIN_HEADERS:
            environ.pop(key, None)
        return call(environ, start_response)

    app.wsgi_app = without_forwarded_origin


def security_header_values(nonce: str | None, *, secure: bool) -> dict[str, str]:
    """The security headers of every response: Flask's and Engine.IO's (app.realtime.guard).

    nonce allows the inline scripts of the page that carries it; without one, none run.
    """
    scripts = f"script-src 'self' 'nonce-{nonce}'; " if nonce else "script-src 'self'; "
    values = {
        "Content-Security-Policy": (
            "default-src 'self'; "
            f"{scripts}"
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; "
            "connect-src 'self'; "
            "font-src 'self' data:; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        # Pages, API replies and polling responses carry messages and tokens: no cache keeps
        # them. Static files set their own (no-cache with an ETag), which this leaves alone.
        "Cache-Control": "no-store",
    }
    if secure:
        values["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return values
