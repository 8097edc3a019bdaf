"""Tasks run in-process (no Redis: Celery runs them eagerly) only once the transaction that
queued them has given its connection back: a send and its task never hold two pooled
connections at once, so a busy server whose every thread reply queues a task cannot empty
its pool (a pool of one connection is the sharpest test of that)."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Notification
from tests.integration.cluster import pg_app
from tests.test_threads import reply


@pytest.fixture
def app():
    """The app on a PostgreSQL database of its own, with one pooled connection and no overflow."""
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 3}
    with pg_app("chorus_one_connection", SQLALCHEMY_ENGINE_OPTIONS=options) as app:
        with app.app_context():
            db.create_all()
        yield app


def test_a_reply_and_its_task_share_one_pooled_connection(app, team):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")["id"]
        first = reply(bob, room.id, "first, @carol", root)["id"]
        second = reply(carol, room.id, "second", root)["id"]
        made = {(n.user_id, n.message_id, n.kind)
                for n in db.session.execute(db.select(Notification)).scalars()}
    assert made == {(alice.id, first, "thread_reply"), (carol.id, first, "mention"),
                    (alice.id, second, "thread_reply"), (bob.id, second, "thread_reply")}
