"""Celery bound to the Flask app: every task runs inside an application context."""
from __future__ import annotations

import time

from celery import Celery, Task
from celery.signals import task_postrun
from flask import Flask

from app.ops import metrics

_STATES = {"SUCCESS": "done", "RETRY": "retried", "FAILURE": "failed"}


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app from the Flask config and store it in app.extensions."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            # A fresh app context gives the task its own database session, also when it
            # runs in-process (embedded mode) right after the sender's commit.
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


@task_postrun.connect
def _count_task(task=None, kwargs=None, state=None, **_extra):
    """Count every finished run, and time the successful ones from their enqueueing."""
    label = _STATES.get(state, (state or "unknown").lower())
    metrics.tasks.labels(task.name, label).inc()
    enqueued_at = (kwargs or {}).get("enqueued_at")
    if label == "done" and isinstance(enqueued_at, (int, float)):
        metrics.task_latency.labels(task.name).observe(max(0.0, time.time() - enqueued_at))
