"""GET /healthz and GET /metrics."""
from __future__ import annotations

import os

from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import multiprocess

from app.extensions import csrf
from app.ops import bp
from app.ops.health import check_database, check_redis

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


@bp.get("/metrics")
def metrics():
    """This process's metrics in Prometheus text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        output = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        output = generate_latest(REGISTRY)
    return Response(output, mimetype=CONTENT_TYPE_LATEST)
