"""The mention task: enqueued after commit, idempotent, pushing to the mentioned users only.

Celery runs eagerly here (the embedded mode): the task runs in-process right after the
sender's commit, in its own application context and database session.
"""
from __future__ import annotations

import pytest

from app import events, tasks
from app.actions import memberships, messages, notifications, users
from app.extensions import db
from app.models import Mention, Message, Notification, User


def row(model, ref):
    """The row behind a plain reference."""
    return db.session.get(model, ref.id)


def notified(app, message_id: int) -> list[int]:
    """The users notified about a message, by notification id."""
    with app.app_context():
        return list(db.session.execute(
            db.select(Notification.user_id).filter_by(message_id=message_id).order_by(Notification.id)
        ).scalars())


@pytest.fixture
def held_tasks(monkeypatch):
    """Tasks the actions enqueue, held back instead of run: a list of (task name, args)."""
    held: list[tuple[str, tuple]] = []
    monkeypatch.setattr(events, "enqueue_on_commit", lambda task, *args: held.append((task.name, args)))
    return held


@pytest.fixture
def task_runs(monkeypatch):
    """The message ids the notification action ran for (it still runs)."""
    runs: list[int] = []
    original = notifications.do_create_message_notifications

    def _record(message_id):
        runs.append(message_id)
        return original(message_id)

    monkeypatch.setattr(notifications, "do_create_message_notifications", _record)
    return runs


def test_one_notification_per_mentioned_member(app, team, emitted, task_runs):
    alice, bob, carol, room = (team[k] for k in ("alice", "bob", "carol", "room"))
    with app.app_context():
        message_id = messages.do_send_message(
            row(User, alice), room.id, "@bob @carol @BOB @dave @alice ping"
        ).message.id
    assert task_runs == [message_id]
    assert notified(app, message_id) == [bob.id, carol.id]
    pushed = [(data, to) for event, data, to in emitted if event == "notification"]
    assert [to for _, to in pushed] == [f"user:{bob.id}", f"user:{carol.id}"]
    for data, _ in pushed:
        assert data["kind"] == "mention" and data["room_id"] == room.id and data["read_at"] is None
        assert data["message"]["id"] == message_id
        assert data["message"]["mentions"] == ["bob", "carol"]
    # The message went to the room before any notification.
    assert [event for event, _, _ in emitted] == ["message", "notification", "notification"]


def test_no_task_without_mentions(app, team, held_tasks):
    with app.app_context():
        messages.do_send_message(row(User, team["alice"]), team["room"].id, "@nobody @dave `@bob` plain")
    assert held_tasks == []


def test_task_is_enqueued_with_the_message_id(app, team, held_tasks):
    with app.app_context():
        message_id = messages.do_send_message(row(User, team["alice"]), team["room"].id, "@bob").message.id
    assert held_tasks == [("chorus.notify_mentions", (message_id,))]
    assert notified(app, message_id) == []


def test_task_is_idempotent(app, team, emitted, held_tasks):
    bob = team["bob"]
    with app.app_context():
        message_id = messages.do_send_message(row(User, team["alice"]), team["room"].id, "@bob").message.id
    emitted.clear()
    assert tasks.notify_mentions(message_id) == 1
    assert tasks.notify_mentions(message_id) == 0
    assert tasks.notify_mentions.apply(args=[message_id]).get() == 0
    assert notified(app, message_id) == [bob.id]
    assert [(event, to) for event, _, to in emitted] == [("notification", f"user:{bob.id}")]


def test_task_skips_a_user_who_left_before_it_ran(app, team, emitted, held_tasks):
    alice, bob, carol, room = (team[k] for k in ("alice", "bob", "carol", "room"))
    with app.app_context():
        message_id = messages.do_send_message(row(User, alice), room.id, "@bob @carol").message.id
        memberships.do_leave_room(row(User, bob), room.id)
    emitted.clear()
    assert tasks.notify_mentions(message_id) == 1
    assert notified(app, message_id) == [carol.id]
    assert [(event, to) for event, _, to in emitted] == [("notification", f"user:{carol.id}")]


def test_task_skips_a_user_disabled_before_it_ran(app, team, held_tasks):
    with app.app_context():
        message_id = messages.do_send_message(row(User, team["alice"]), team["room"].id, "@bob @carol").message.id
        users.do_disable_user(row(User, team["bob"]))
    assert tasks.notify_mentions(message_id) == 1
    assert notified(app, message_id) == [team["carol"].id]


def test_task_never_notifies_the_author(app, team, emitted, held_tasks):
    alice, bob = team["alice"], team["bob"]
    with app.app_context():
        message_id = messages.do_send_message(row(User, alice), team["room"].id, "@alice @bob").message.id
        # Even a mention row naming the author (written by hand here) notifies nobody.
        db.session.add(Mention(message_id=message_id, user_id=alice.id))
        db.session.commit()
    emitted.clear()
    with app.app_context():
        assert notifications.do_create_mention_notifications(message_id) == 1
    assert notified(app, message_id) == [bob.id]
    assert [to for event, _, to in emitted if event == "notification"] == [f"user:{bob.id}"]


def test_task_for_a_deleted_message_does_nothing(app, team, emitted, held_tasks):
    with app.app_context():
        message_id = messages.do_send_message(row(User, team["alice"]), team["room"].id, "@bob").message.id
        db.session.delete(db.session.get(Message, message_id))
        db.session.commit()
    emitted.clear()
    assert tasks.notify_mentions(message_id) == 0
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Notification.id))).scalar_one() == 0
    assert emitted == []


def test_rolled_back_message_enqueues_nothing(app, team, emitted, task_runs, monkeypatch):
    """A failure inside the transaction, after the task and event were queued, drops both."""
    alice, room = team["alice"], team["room"]
    queued = []
    original = events.enqueue_on_commit

    def enqueue_then_fail(task, *args):
        original(task, *args)
        queued.append(args)
        raise RuntimeError("boom before commit")

    monkeypatch.setattr(events, "enqueue_on_commit", enqueue_then_fail)
    emitted.clear()
    with app.app_context():
        with pytest.raises(RuntimeError):
            messages.do_send_message(row(User, alice), room.id, "@bob doomed")
        db.session.rollback()
        assert queued, "the failure was meant to come after the task was queued"
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 0
        # A later, unrelated commit does not carry the dropped event or task along.
        users.do_set_admin(row(User, team["carol"]), True)
    assert emitted == []
    assert task_runs == []
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Notification.id))).scalar_one() == 0

    monkeypatch.setattr(events, "enqueue_on_commit", original)
    with app.app_context():
        message_id = messages.do_send_message(row(User, alice), room.id, "@bob fine").message.id
    assert task_runs == [message_id]
    assert [event for event, _, _ in emitted] == ["message", "notification"]
