"""Periodic jobs of a web server process, run as background tasks of its async mode."""
from __future__ import annotations

import logging

from flask import Flask

from app.extensions import socketio

log = logging.getLogger(__name__)


def start_background_jobs(app: Flask) -> None:
    """Start the presence jobs (app.realtime.presence: flusher, sweep, heartbeat) and, every
    MENTION_SWEEP_SECONDS, queue the sweep of messages whose notification task was lost
    (unhandled mentions, thread replies whose followers were not told).

    Each server queues it; the sweep is idempotent, so several servers only repeat work.
    In the embedded mode the sweep runs in-process.
    """
    from app.realtime.presence import start_presence_jobs

    start_presence_jobs(app)
    interval = app.config["MENTION_SWEEP_SECONDS"]
    if interval <= 0:
        return
    from app import tasks

    def sweep_forever():
        while True:
            socketio.sleep(interval)
            try:
                with app.app_context():
                    tasks.sweep_mentions.apply_async(kwargs={"min_age": interval / 2})
            except Exception:  # Redis down: try again next round
                log.warning("could not queue the notification sweep", exc_info=True)

    socketio.start_background_task(sweep_forever)
