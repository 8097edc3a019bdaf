"""GET /healthz and GET /metrics."""
from __future__ import annotations

import hmac
import ipaddress

from flask import Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import multiprocess

from app.extensions import csrf
from app.ops import bp
from app.ops.health import check_database, check_redis
from app.security import bearer_token

csrf.exempt(bp)


@bp.get("/healthz")
def healthz():
    """200 when the database and Redis answer; 503 naming the failing part otherwise."""
    checks = {"database": check_database(), "redis": check_redis(current_app.config.get("REDIS_URL"))}
    failing = {part: error for part, error in checks.items() if error}
    body = {
        "status": "ok" if not failing else "unavailable",
        "checks": {part: ("ok" if not error else f"failing: {error}") for part, error in checks.items()},
    }
    if not current_app.config.get("REDIS_URL"):
        body["checks"]["redis"] = "not configured (embedded mode)"
    return body, 200 if not failing else 503


def _metrics_refusal() -> tuple[dict, int, dict] | None:
    """Why this request may not read /metrics, as a reply; None when it may.

    With METRICS_TOKEN set, the request must carry it as a bearer token. Without it, only
    a scraper on this host, connecting directly, may read them: a request from a local
    proxy carries X-Forwarded-For, and comes from somebody else.
    """
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = bearer_token(request)
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return None
        return ({"error": {"code": "unauthorized", "message": "Send the metrics token as a bearer token."}},
                401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    if _is_loopback(request.remote_addr) and "X-Forwarded-For" not in request.headers:
        return None
    return ({"error": {"code": "forbidden",
                       "message": "Metrics are served to this host only; set METRICS_TOKEN to scrape from elsewhere."}},
            403, {})


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


@bp.get("/metrics")
def metrics():
    """This process's metrics in Prometheus text format, for local scrapers or METRICS_TOKEN's bearer."""
    refusal = _metrics_refusal()
    if refusal is not None:
        return refusal
    if current_app.config["PROMETHEUS_MULTIPROC_DIR"]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        output = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        output = generate_latest(REGISTRY)
    return Response(output, mimetype=CONTENT_TYPE_LATEST)
