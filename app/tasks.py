"""Celery tasks: ids in, actions called; safe to run twice."""
from __future__ import annotations

from celery import shared_task

from app.actions import notifications


@shared_task(
    name="chorus.notify_mentions",
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def notify_mentions(message_id: int, enqueued_at: float | None = None) -> int:
    """Create and push the notifications for the mentions in one message.

    `enqueued_at` only feeds the latency metric.
    """
    return notifications.do_create_mention_notifications(message_id)
