"""Security wiring: rate limits, response headers with a CSP nonce, proxy trust, secrets."""
from __future__ import annotations

import secrets

from flask import Flask, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from app.ratelimit import EventLimiter

INSECURE_DEFAULT_KEYS = {"chorus-embedded-dev-key", "", None}


class ConfigError(RuntimeError):
    """A setting that makes it unsafe or impossible to start."""


def rate_limit_key() -> str:
    """Per user when logged in, per address otherwise."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"addr:{get_remote_address()}"


limiter = Limiter(key_func=rate_limit_key)


def csp_nonce() -> str:
    """The per-response nonce allowing the few inline scripts of the admin console."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def check_secret_key(app: Flask) -> None:
    """Refuse to run in production with the development key or a short one."""
    key = app.config.get("SECRET_KEY")
    if app.config.get("CHORUS_ENV") == "production" and (key in INSECURE_DEFAULT_KEYS or len(key) < 32):
        raise ConfigError("SECRET_KEY must be set to a random string of at least 32 characters in production")


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
        nonce = csp_nonce()
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; "
            f"script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; "
            "connect-src 'self'; "
            "font-src 'self' data:; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
