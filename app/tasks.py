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
    """Create and push one message's notifications: its mentions, its @room or @here, a thread
    reply's followers, a direct message's people (the name is older than all but mentions;
    queued tasks keep it).

    `enqueued_at` only feeds the latency metric.
    """
    return notifications.do_create_message_notifications(message_id)


@shared_task(name="chorus.sweep_mentions", ignore_result=True)
def sweep_mentions(min_age: float = 10.0) -> int:
    """Handle the messages whose notify_mentions task was lost (mentions not handled; replies,
    direct messages and @room/@here messages not notified); idempotent like that task."""
    return (notifications.do_sweep_unhandled_mentions(min_age=min_age)
            + notifications.do_sweep_due_messages(min_age=min_age))
