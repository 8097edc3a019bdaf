"""Delivery guarantees in one process: idempotent sends under a race, resync paging, and the
mention task's retries and acknowledgement settings. The same guarantees across real
processes and faults are in tests/integration/test_faults.py.
"""
from __future__ import annotations

import pytest
import redis
from sqlalchemy.exc import OperationalError

from app import tasks
from app.actions import messages, notifications
from app.config import Config
from app.extensions import db
from app.models import Message, Notification, Room, User
from tests.conftest import events_named


def count(model, **filters) -> int:
    return db.session.execute(db.select(db.func.count()).select_from(model).filter_by(**filters)).scalar_one()


def send(app, user, room_id, body, client_id=None):
    with app.app_context():
        return messages.do_send_message(db.session.get(User, user.id), room_id, body, client_id).message.id


@pytest.fixture
def lookups(monkeypatch):
    """Records the client_id lookups a send makes (there is none before the insert)."""
    original = messages._find_by_client_id
    calls = []

    def lookup(user_id, client_id):
        calls.append(client_id)
        return original(user_id, client_id)

    monkeypatch.setattr(messages, "_find_by_client_id", lookup)
    return calls


def room_seq(app, room_id) -> int:
    with app.app_context():
        return db.session.get(Room, room_id).last_seq


# --- Idempotent send ------------------------------------------------------------------------

def test_a_retried_send_hits_the_unique_constraint_and_returns_the_original(app, team, emitted, lookups):
    """Also what a concurrent retry that loses the insert race gets: the winner."""
    alice, room = team["alice"], team["room"]
    first = send(app, alice, room.id, "@bob once", "race-1")
    assert lookups == [] and room_seq(app, room.id) == 1
    emitted.clear()
    with app.app_context():
        result = messages.do_send_message(db.session.get(User, alice.id), room.id, "@bob once", "race-1")
        assert not result.created and result.message.id == first
        assert result.data["seq"] == 1
        assert count(Message, client_id="race-1") == 1
    assert lookups == ["race-1"], "looked up once, after the insert hit the unique constraint"
    assert room_seq(app, room.id) == 1, "the failed insert rolled its seq back: no gap"
    assert emitted == []  # nothing broadcast again, no second notification
    assert send(app, alice, room.id, "next") and room_seq(app, room.id) == 2


def test_rest_retry_answers_200_with_the_original(app, team, bearer):
    alice, room = team["alice"], team["room"]
    first = send(app, alice, room.id, "hello", "race-2")
    response = app.test_client().post(
        f"/api/v1/rooms/{room.id}/messages", json={"body": "hello", "client_id": "race-2"}, headers=bearer(alice)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["id"] == first
    with app.app_context():
        assert count(Message, client_id="race-2") == 1


def test_socket_retry_acks_the_original(app, team, live):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    first = send(app, alice, room.id, "hello", "race-3")
    a, b = live(alice), live(bob)
    ack = a.emit("send", {"room_id": room.id, "body": "hello", "client_id": "race-3"}, callback=True)
    assert ack["ok"] is True and ack["duplicate"] is True and ack["message"]["id"] == first
    assert events_named(b, "message") == []
    with app.app_context():
        assert count(Message, client_id="race-3") == 1


def test_retry_of_a_mention_notifies_once(app, team):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    first = send(app, alice, room.id, "@bob look", "mention-1")
    again = send(app, alice, room.id, "@bob look", "mention-1")
    assert again == first
    with app.app_context():
        assert count(Notification, message_id=first, user_id=bob.id) == 1


# --- Resync -----------------------------------------------------------------------------------

def test_resync_after_a_cursor_pages_through_everything_in_order(app, team, bearer):
    """What a client does after a reconnect: after=<last id>, repeated while has_more."""
    alice, bob, room = team["alice"], team["bob"], team["room"]
    seen = [send(app, alice, room.id, f"before {i}") for i in range(3)]
    missed = [send(app, alice, room.id, f"while away {i}") for i in range(7)]
    client = app.test_client()
    got, cursor, pages = [], seen[-1], 0
    while True:
        body = client.get(f"/api/v1/rooms/{room.id}/messages?after={cursor}&limit=3", headers=bearer(bob)).get_json()
        pages += 1
        ids = [m["id"] for m in body["messages"]]
        assert ids == sorted(ids) and all(i > cursor for i in ids)
        got += ids
        if not body["has_more"]:
            break
        cursor = ids[-1]
    assert got == missed and pages == 3


# --- The mention task -----------------------------------------------------------------------

def test_cluster_mode_acknowledges_tasks_late():
    settings = Config.celery_settings("redis://127.0.0.1:6379/0", "p:")
    assert settings["task_acks_late"] is True
    assert settings["task_reject_on_worker_lost"] is True
    assert settings["worker_prefetch_multiplier"] == 1


def test_mention_task_retries_with_backoff():
    task = tasks.notify_mentions
    assert issubclass(OperationalError, tuple(task.autoretry_for))
    assert issubclass(redis.exceptions.ConnectionError, tuple(task.autoretry_for))
    assert task.retry_backoff and task.max_retries >= 5


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("INSERT INTO notifications", {}, Exception("server closed the connection")),
        redis.exceptions.ConnectionError("Connection refused"),
    ],
    ids=["database", "redis"],
)
def test_mention_task_survives_failures_for_a_while(app, team, monkeypatch, failure):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    runs = []
    original = notifications.do_create_message_notifications

    def flaky(message_id):
        runs.append(message_id)
        if len(runs) <= 2:
            raise failure
        return original(message_id)

    with app.app_context():
        message_id = messages.do_send_message(
            db.session.get(User, alice.id), room.id, "no mention here"
        ).message.id
        # A mention added by hand, so that only the task run below creates a notification.
        from app.models import Mention

        db.session.add(Mention(message_id=message_id, user_id=bob.id))
        db.session.commit()
    monkeypatch.setattr(notifications, "do_create_message_notifications", flaky)
    # Eager runs follow retries in-process (without the countdown) once failures do not propagate.
    monkeypatch.setitem(tasks.notify_mentions.app.conf, "task_eager_propagates", False)
    result = tasks.notify_mentions.apply(args=[message_id])
    assert result.successful(), result.traceback
    assert runs == [message_id] * 3
    with app.app_context():
        assert count(Notification, message_id=message_id, user_id=bob.id) == 1


def test_notification_made_while_offline_is_listed_and_counted(app, team, bearer, live):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    message_id = send(app, alice, room.id, "@bob when you are back")  # bob has no socket
    client = app.test_client()
    body = client.get("/api/v1/notifications", headers=bearer(bob)).get_json()
    assert [n["message"]["id"] for n in body["notifications"]] == [message_id]
    assert body["unread"] == 1
    assert client.get("/api/v1/me", headers=bearer(bob)).get_json()["unread_notifications"] == 1
    # Coming back online does not push it again: the list is where a client finds it.
    assert events_named(live(bob), "notification") == []
