"""The one place that talks to sockets: events and room subscriptions, sent after commit.

Actions call `send_event_on_commit` (and `enqueue_on_commit` for Celery tasks) while their
transaction is open. Nothing leaves the process until the transaction commits; a rollback
drops it all. Channels are `room:<id>` and `user:<id>`.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from flask import current_app
from sqlalchemy import event as sa_event

from app.extensions import db, socketio
from app.ops import metrics

log = logging.getLogger(__name__)

_PENDING = "chorus.on_commit"
# Tasks wait for the end of the transaction, not only its commit: until then the session still
# holds its pooled connection, and an in-process task (the embedded mode, where Celery runs
# tasks eagerly) would take a second one; with a task per thread reply, a busy server's sends
# would then empty the pool.
_PENDING_TASKS = "chorus.tasks_on_commit"
_READY_TASKS = "chorus.tasks_ready"
NAMESPACE = "/"


def room_channel(room_id: int) -> str:
    """The channel every member's sockets of a room are subscribed to."""
    return f"room:{room_id}"


def user_channel(user_id: int) -> str:
    """The channel every socket of one user is subscribed to."""
    return f"user:{user_id}"


def on_commit(callback: Callable[[], Any]) -> None:
    """Run callback after the current transaction commits; drop it if it rolls back."""
    db.session.info.setdefault(_PENDING, []).append(callback)


def send_event_on_commit(event: str, data: dict, to: str | list[str]) -> None:
    """Emit event to the given channels once the current transaction has committed."""
    on_commit(lambda: _emit(event, data, to))


def enqueue_on_commit(task, *args: Any) -> None:
    """Queue a Celery task after commit, so no worker can read rows that are not there yet.

    The task receives `enqueued_at` (epoch seconds) to measure its latency.
    """

    def _enqueue():
        metrics.tasks.labels(task.name, "queued").inc()
        task.apply_async(args=args, kwargs={"enqueued_at": time.time()})

    db.session.info.setdefault(_PENDING_TASKS, []).append(_enqueue)


def subscribe_on_commit(user_id: int, room_id: int) -> None:
    """After commit, add the user's live sockets to the room's channel."""
    on_commit(lambda: _change_subscription(user_id, room_id, join=True))


def unsubscribe_on_commit(user_id: int, room_id: int) -> None:
    """After commit, take the user's live sockets out of the room's channel."""
    on_commit(lambda: _change_subscription(user_id, room_id, join=False))


def disconnect_user_on_commit(user_id: int) -> None:
    """After commit, close every live socket of the user (logout, disabled account)."""
    on_commit(lambda: _disconnect_user(user_id))


def disconnect_user_now(user_id: int) -> None:
    """Close every live socket of the user now (nothing to commit, as at logout)."""
    _disconnect_user(user_id)


def _emitter():
    # Celery workers hold a write-only SocketIO on the Redis queue; servers use the extension.
    return current_app.extensions.get("chorus.emitter") or socketio


def _emit(event: str, data: dict, to: str | list[str]) -> None:
    _emitter().emit(event, data, to=to, namespace=NAMESPACE)
    metrics.events_emitted.labels(event).inc()


def _user_sids(user_id: int) -> list[str]:
    registry = current_app.extensions.get("chorus.sockets")
    if registry is None:
        return []
    return registry.sids_of(user_id)


def _change_subscription(user_id: int, room_id: int, *, join: bool) -> None:
    server = getattr(_emitter(), "server", None)
    if server is None:
        return
    for sid in _user_sids(user_id):
        try:
            if join:
                server.enter_room(sid, room_channel(room_id), namespace=NAMESPACE)
            else:
                server.leave_room(sid, room_channel(room_id), namespace=NAMESPACE)
        except (KeyError, ValueError):
            log.info("socket %s is gone; skipped", sid)  # closed since it was registered


def _disconnect_user(user_id: int) -> None:
    server = getattr(_emitter(), "server", None)
    if server is None:
        return
    for sid in _user_sids(user_id):
        try:
            server.disconnect(sid, namespace=NAMESPACE)
        except (KeyError, ValueError):
            log.info("socket %s is gone; skipped", sid)


def _run_pending(session) -> None:
    callbacks = session.info.pop(_PENDING, None)
    _run(callbacks, "after-commit callback failed")
    tasks = session.info.pop(_PENDING_TASKS, None)
    if tasks:
        session.info.setdefault(_READY_TASKS, []).extend(tasks)


def _run_ready_tasks(session, transaction) -> None:
    """Queue (or, embedded, run) a committed transaction's tasks once its connection is back in
    the pool: SQLAlchemy ends the outermost transaction after releasing its connections."""
    if transaction.parent is None:
        _run(session.info.pop(_READY_TASKS, None), "after-commit task failed")


def _run(callbacks, failed: str) -> None:
    for callback in callbacks or ():
        try:
            callback()
        except Exception:  # one failed emit or task must not hide the others or the commit
            log.exception(failed)


def _drop_pending(session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_PENDING_TASKS, None)


def register_session_hooks() -> None:
    """Wire the after-commit and after-rollback hooks once per process."""
    if getattr(register_session_hooks, "done", False):
        return
    sa_event.listen(db.session, "after_commit", _run_pending)
    sa_event.listen(db.session, "after_rollback", _drop_pending)
    sa_event.listen(db.session, "after_transaction_end", _run_ready_tasks)
    register_session_hooks.done = True


def send_presence(data: dict, user_ids: list[int]) -> None:
    """Emit a user's `presence` now to the user channels of user_ids, in one emit (nothing to commit)."""
    if user_ids:
        _emit("presence", data, [user_channel(user_id) for user_id in user_ids])


def send_typing(data: dict, room_id: int, skip_sids: list[str]) -> None:
    """Relay a `typing` notice now to a room's channel, except to the sockets in skip_sids (the typist's)."""
    _emitter().emit("typing", data, to=room_channel(room_id), skip_sid=list(skip_sids), namespace=NAMESPACE)
    metrics.events_emitted.labels("typing").inc()


def is_subscribed(sid: str, channel: str) -> bool:
    """Whether a socket of this process is in a channel (the socket layer's own bookkeeping, no query)."""
    server = getattr(_emitter(), "server", None)
    if server is None:
        return False
    room = server.manager.rooms.get(NAMESPACE, {}).get(channel)
    return room is not None and sid in room
