"""Celery entry point: `celery -A celery_worker.celery worker`.

An ordinary prefork worker, never monkey-patched. It publishes events to the servers
through a write-only Socket.IO client on the shared Redis channel. Its children's metrics
are gathered in PROMETHEUS_MULTIPROC_DIR and served on WORKER_METRICS_PORT when that is set.
"""
import os
import sys
import tempfile

# Must be set before prometheus_client is imported anywhere.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="chorus-worker-metrics-"))

from celery.signals import worker_init, worker_process_init  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.ops.health import check_services, describe  # noqa: E402
from app.ops.heap import freeze_startup_objects, watch_collections  # noqa: E402
from app.security import ConfigError  # noqa: E402

try:
    flask_app = create_app(worker=True)
except ConfigError as exc:
    print(f"chorus worker: cannot start: {exc}", file=sys.stderr)
    sys.exit(2)
celery = flask_app.extensions["celery"]

from app import tasks as _tasks  # noqa: E402,F401  (registers the tasks)


@worker_init.connect
def _check_and_serve_metrics(**_kwargs):
    problems = check_services(flask_app)
    if problems:
        print(f"chorus worker: cannot start: {describe(problems)}", file=sys.stderr)
        os._exit(2)
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(int(port), addr=os.environ.get("WORKER_METRICS_HOST", "127.0.0.1"), registry=registry)
    # In the parent, before it forks the pool: the children inherit a frozen start-up heap
    # (no collection walks it, and no collection dirties its pages after the fork).
    freeze_startup_objects()
    watch_collections()


@worker_process_init.connect
def _fresh_connections(**_kwargs):
    # Connections inherited from the parent process must not be shared after fork.
    with flask_app.app_context():
        db.engine.dispose(close=False)
