"""Celery entry point: `celery -A celery_worker.celery worker`.

An ordinary prefork worker, never monkey-patched. It publishes events to the servers
through a write-only Socket.IO client on the shared Redis channel.
"""
from celery.signals import worker_process_init

from app import create_app
from app.extensions import db

app = create_app(worker=True)
celery = app.extensions["celery"]

import app.tasks  # noqa: E402,F401  (registers the tasks)


@worker_process_init.connect
def _fresh_connections(**_kwargs):
    # Connections inherited from the parent process must not be shared after fork.
    with app.app_context():
        db.engine.dispose(close=False)
