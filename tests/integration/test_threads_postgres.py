"""Threads on PostgreSQL: the contract of tests/test_threads.py on the other database (where
a send is one statement), and replies racing in threads of their own: the root's count stays
exact and the room's revs have no hole."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Message, Room, ThreadFollow
from tests.integration.cluster import pg_app
from tests.integration.test_changes_postgres import _race
from tests.test_message_changes import delete
from tests.test_threads import reply


@pytest.fixture
def app():
    """The app on a PostgreSQL database of its own (schema from the models)."""
    with pg_app("chorus_threads") as app:
        with app.app_context():
            db.create_all()
        yield app


def test_racing_replies_keep_the_count_exact_and_the_revs_whole(app, team, emitted):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        root = reply(alice, room.id, "root")["id"]
        doomed = reply(alice, room.id, "doomed", root)["id"]
    # 12 at once: each holds a connection of the pool of 15 while it waits for its batch.
    jobs = [lambda i=i: reply([bob, carol][i % 2], room.id, f"reply {i}", root) for i in range(10)]
    jobs += [lambda: reply(alice, room.id, "top level"), lambda: delete(alice, doomed)]
    outcomes = _race(app, jobs)
    assert all(isinstance(o, dict) for o in outcomes), [o for o in outcomes if not isinstance(o, dict)]
    with app.app_context():
        stored = db.session.get(Message, root)
        assert stored.reply_count == 10  # the doomed reply no longer counts
        assert sorted(stored.thread_repliers) == ["bob", "carol"]
        revs = db.session.execute(db.select(Message.rev).filter_by(room_id=room.id)).scalars().all()
        last_rev = db.session.get(Room, room.id).last_rev
        assert len(set(revs)) == len(revs) and max(revs) == last_rev
        # Every number taken was broadcast once, none lost: replies stored in one batch share
        # one summary of their root, so there are between 16 and 26 of them.
        broadcast = sorted(data["rev"] for event, data, _ in emitted if event in ("message", "message_updated"))
        assert broadcast == list(range(1, last_rev + 1)) and 16 <= last_rev <= 26
        followers = db.session.execute(
            db.select(ThreadFollow.user_id).filter_by(root_id=root, following=True)).scalars().all()
        assert sorted(followers) == sorted([alice.id, bob.id, carol.id])


# The thread contract, on PostgreSQL (the same tests run on SQLite in tests/).
from tests.test_threads import (  # noqa: E402,F401
    test_a_deleted_root_keeps_its_thread_and_a_deleted_reply_leaves_the_count,
    test_a_quote_reply_carries_the_start_of_the_quoted_text,
    test_a_reply_and_its_roots_summary_take_the_next_two_revs,
    test_a_reply_to_a_reply_attaches_to_the_root,
    test_changes_to_a_reply_stay_in_its_thread,
    test_replies_stay_out_of_the_main_timeline_unless_also_sent_to_the_room,
    test_replies_that_cannot_be_made_are_refused,
    test_replying_follows_the_thread_with_its_root_author_and_the_mentioned,
)
