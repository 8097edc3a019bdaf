"""Per-room seq (gap detection, commit order) and the sweep of mentions whose task was lost."""
from __future__ import annotations

from datetime import timedelta

from app.actions import messages, notifications
from app.extensions import db
from app.models import Mention, Message, Notification, Room, User


def send(app, user, room_id, body):
    with app.app_context():
        return messages.do_send_message(db.session.get(User, user.id), room_id, body).message.seq


def test_seq_counts_messages_per_room(app, team, make_room):
    other = make_room(team["alice"], "other", members=[team["bob"]])
    room = team["room"]
    seqs = [send(app, team["alice"], room.id, "a1"), send(app, team["bob"], other.id, "b1"),
            send(app, team["bob"], room.id, "a2"), send(app, team["alice"], other.id, "b2"),
            send(app, team["carol"], room.id, "a3")]
    assert seqs == [1, 1, 2, 2, 3]
    with app.app_context():
        assert db.session.get(Room, room.id).last_seq == 3
        assert db.session.get(Room, other.id).last_seq == 2


def test_a_refused_send_takes_no_seq(app, team, make_user):
    room = team["room"]
    assert send(app, team["alice"], room.id, "one") == 1
    with app.app_context():
        dave = db.session.get(User, team["dave"].id)
        try:
            messages.do_send_message(dave, room.id, "not a member")
        except Exception:
            db.session.rollback()
    assert send(app, team["alice"], room.id, "two") == 2


def test_a_retried_send_keeps_its_seq(app, team):
    with app.app_context():
        alice = db.session.get(User, team["alice"].id)
        first = messages.do_send_message(alice, team["room"].id, "hi", "same").message.seq
        again = messages.do_send_message(alice, team["room"].id, "hi", "same").message.seq
        assert first == again == 1
        assert db.session.get(Room, team["room"].id).last_seq == 1


def test_heads_give_the_newest_seq_of_my_rooms(app, team, bearer, make_room):
    make_room(team["bob"], "bobs", is_private=True)
    send(app, team["alice"], team["room"].id, "x")
    send(app, team["alice"], team["room"].id, "y")
    response = app.test_client().get("/api/v1/rooms/heads", headers=bearer(team["carol"]))
    assert response.status_code == 200
    assert response.get_json() == {"heads": {str(team["room"].id): 2}}
    assert app.test_client().get("/api/v1/rooms/heads").status_code == 401


def test_messages_carry_their_seq(app, team, bearer):
    send(app, team["alice"], team["room"].id, "x")
    page = app.test_client().get(f"/api/v1/rooms/{team['room'].id}/messages", headers=bearer(team["bob"]))
    assert [m["seq"] for m in page.get_json()["messages"]] == [1]


def _lose_the_task(monkeypatch):
    """Make every enqueue vanish, as when a server dies right after its commit."""
    from app import events

    monkeypatch.setattr(events, "enqueue_on_commit", lambda task, *args: None)


def _age(app, message_id, seconds):
    with app.app_context():
        message = db.session.get(Message, message_id)
        message.created_at = message.created_at - timedelta(seconds=seconds)
        db.session.commit()


def test_the_sweep_notifies_mentions_whose_task_was_lost(app, team, monkeypatch):
    _lose_the_task(monkeypatch)
    with app.app_context():
        alice = db.session.get(User, team["alice"].id)
        message_id = messages.do_send_message(alice, team["room"].id, "@bob @carol look").message.id
        assert db.session.execute(db.select(db.func.count(Notification.id))).scalar_one() == 0
        # Too young: the task may still be on its way.
        assert notifications.do_sweep_unhandled_mentions(min_age=10) == 0
    _age(app, message_id, 30)
    with app.app_context():
        assert notifications.do_sweep_unhandled_mentions(min_age=10) == 1
        rows = db.session.execute(db.select(Notification.user_id).order_by(Notification.user_id)).scalars().all()
        assert rows == sorted([team["bob"].id, team["carol"].id])
        assert all(m.handled_at is not None for m in db.session.execute(db.select(Mention)).scalars())
        # Handled mentions are not swept again.
        assert notifications.do_sweep_unhandled_mentions(min_age=10) == 0


def test_the_sweep_leaves_day_old_mentions_alone(app, team, monkeypatch):
    _lose_the_task(monkeypatch)
    with app.app_context():
        alice = db.session.get(User, team["alice"].id)
        message_id = messages.do_send_message(alice, team["room"].id, "@bob old news").message.id
    _age(app, message_id, 2 * 86400)
    with app.app_context():
        assert notifications.do_sweep_unhandled_mentions(min_age=10) == 0
        assert db.session.execute(db.select(db.func.count(Notification.id))).scalar_one() == 0


def test_a_mention_of_someone_who_left_is_handled_without_a_notification(app, team, monkeypatch):
    from app.actions import memberships

    _lose_the_task(monkeypatch)
    with app.app_context():
        alice = db.session.get(User, team["alice"].id)
        message_id = messages.do_send_message(alice, team["room"].id, "@bob bye").message.id
        memberships.do_leave_room(db.session.get(User, team["bob"].id), team["room"].id)
    _age(app, message_id, 30)
    with app.app_context():
        assert notifications.do_sweep_unhandled_mentions(min_age=10) == 1
        assert db.session.execute(db.select(db.func.count(Notification.id))).scalar_one() == 0
        assert notifications.do_sweep_unhandled_mentions(min_age=10) == 0  # handled for good


def test_the_normal_task_marks_mentions_handled(app, team):
    with app.app_context():
        alice = db.session.get(User, team["alice"].id)
        messages.do_send_message(alice, team["room"].id, "@bob hi")
        mention = db.session.execute(db.select(Mention)).scalar_one()
        assert mention.handled_at is not None
