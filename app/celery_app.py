"""Celery bound to the Flask app: every task runs inside an application context."""
from __future__ import annotations

from celery import Celery, Task
from flask import Flask


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
