"""Edits, deletes and reactions on PostgreSQL: the contract of tests/test_message_changes.py
on the other database, and real concurrency (threads with sessions of their own) on the
room's change sequence: sends, edits, reactions and deletes racing in one room never leave
a hole in the revs, never lose an edit, and end with one consistent state.
"""
from __future__ import annotations

import threading
import time

import pytest
from celery._state import _set_task_join_will_block

from app.extensions import db
from app.lib.errors import ChatError
from app.actions.notifications import do_create_mention_notifications
from app.models import Mention, Message, MessageEdit, Notification, Reaction, Room
from tests.integration.cluster import pg_app
from tests.test_actions import send
from tests.test_message_changes import delete, edit, react


@pytest.fixture
def app():
    """The app on a PostgreSQL database of its own (schema from the models)."""
    with pg_app("chorus_changes") as app:
        with app.app_context():
            db.create_all()
        yield app


def _race(app, jobs):
    """Run each job in a thread of its own, all at once; their outcomes (result or ChatError code)."""
    start = threading.Barrier(len(jobs))
    outcomes = [None] * len(jobs)

    def run(i, job):
        with app.app_context():
            start.wait()
            try:
                outcomes[i] = job()
            except ChatError as exc:
                db.session.rollback()
                outcomes[i] = exc.code
            except Exception as exc:  # reported by the assertion below
                db.session.rollback()
                outcomes[i] = repr(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Celery runs an in-process task between setting a process-wide "a result cannot be
    # waited for here" flag and putting back the value it found; tasks run at once from
    # several threads can leave it set, and every later `.get()` of this process would fail.
    _set_task_join_will_block(False)
    return outcomes


def test_racing_changes_take_contiguous_revs(app, team):
    alice, bob, carol, room = team["alice"], team["bob"], team["carol"], team["room"]
    with app.app_context():
        targets = [send(alice, room.id, f"target {i}").data["id"] for i in range(3)]
    jobs = []
    for i in range(6):
        jobs.append(lambda i=i: send(bob, room.id, f"new {i}").data)
        jobs.append(lambda i=i: edit(alice, targets[i % 3], f"edit {i}"))
        jobs.append(lambda i=i: react([bob, carol][i % 2], targets[i % 3], ["👍", "🎉", "👀"][i % 3]))
    outcomes = _race(app, jobs)
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    with app.app_context():
        last_rev = db.session.get(Room, room.id).last_rev
        revs = db.session.execute(db.select(Message.rev).filter_by(room_id=room.id)).scalars().all()
        # 3 first sends + 18 changes, each its own number: none lost, none twice.
        assert last_rev == 21 and len(set(revs)) == len(revs) and max(revs) == 21
        # No lost update: every edit is in history, in the order the edits took the lock.
        assert db.session.execute(db.select(db.func.count()).select_from(MessageEdit)).scalar() == 6
        for target in targets:
            message = db.session.get(Message, target)
            chain = [e.previous_body for e in message.edits] + [message.body]
            assert chain[0].startswith("target") and len(chain) == 3
        assert db.session.execute(db.select(db.func.count()).select_from(Reaction)).scalar() == 6


def test_edit_racing_a_delete_ends_deleted_either_way(app, team):
    alice, room = team["alice"], team["room"]
    with app.app_context():
        ids = [send(alice, room.id, f"m{i}").data["id"] for i in range(8)]
    jobs = []
    for message_id in ids:
        jobs.append(lambda m=message_id: edit(alice, m, "edited"))
        jobs.append(lambda m=message_id: delete(alice, m))
    outcomes = _race(app, jobs)
    for edited, deleted in zip(outcomes[::2], outcomes[1::2]):
        assert edited == "gone" or edited["body"] == "edited"  # before the delete, or refused after
        assert deleted["deleted"] is True
    with app.app_context():
        for message_id in ids:
            message = db.session.get(Message, message_id)
            assert message.is_deleted and message.body == "" and not message.edits
        revs = db.session.execute(db.select(Message.rev).filter_by(room_id=room.id)).scalars().all()
        edits_landed = sum(1 for o in outcomes[::2] if isinstance(o, dict))
        assert db.session.get(Room, room.id).last_rev == 8 + 8 + edits_landed
        assert len(set(revs)) == 8


def test_the_mention_task_waits_for_an_edit_of_its_message_instead_of_deadlocking(app, team):
    """An edit locks its message, then removes mentions; the task marking the same mentions
    handled must lock the message first too, or the two lock mention rows in opposite orders."""
    alice, room = team["alice"], team["room"]
    with app.app_context():
        message_id = send(alice, room.id, "@bob @carol look").data["id"]
        # As if the task had not run yet: its mentions unhandled, no notification made.
        db.session.execute(db.update(Mention).filter_by(message_id=message_id).values(handled_at=None))
        db.session.execute(db.delete(Notification).filter_by(message_id=message_id))
        db.session.commit()
        first, second = db.session.execute(
            db.select(Mention.id).filter_by(message_id=message_id).order_by(Mention.id)).scalars()
        engine = db.engine
    edit = engine.connect()
    # The edit's own order: its message's row, then the mentions it removes, last one first.
    edit.execute(db.text("UPDATE messages SET edited_at = now() WHERE id = :id"), {"id": message_id})
    edit.execute(db.text("DELETE FROM mentions WHERE id = :id"), {"id": second})
    outcome = {}

    def task():
        with app.app_context():
            try:
                outcome["created"] = do_create_mention_notifications(message_id)
            except Exception as exc:  # reported by the assertion below
                outcome["error"] = repr(exc)

    thread = threading.Thread(target=task)
    # Watched from a connection of its own, in autocommit: inside the edit's transaction,
    # pg_stat_activity would show the snapshot of its first reading, again and again.
    watcher = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not watcher.execute(db.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'")).scalar():
            assert time.monotonic() < deadline and thread.is_alive(), outcome
            time.sleep(0.02)
        # The task now waits on the edit. Without the lock on the message it holds the first
        # mention, and this delete would deadlock with it.
        edit.execute(db.text("DELETE FROM mentions WHERE id = :id"), {"id": first})
        edit.commit()
    finally:
        edit.close()
        watcher.close()
        thread.join(30)
    assert outcome == {"created": 0}  # the edit took both mentions away before the task read them


def test_the_same_reaction_at_once_is_one_reaction(app, team):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        target = send(alice, room.id, "pile on").data["id"]
    outcomes = _race(app, [lambda: react(bob, target, "👍") for _ in range(8)])
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(Reaction)).scalar() == 1
        assert db.session.get(Room, room.id).last_rev == 2  # the others gave their numbers back


# The change contract, on PostgreSQL (the same tests run on SQLite in tests/).
from tests.test_message_changes import (  # noqa: E402,F401
    test_a_mention_added_by_an_edit_notifies_once_ever,
    test_a_change_holds_the_room_lock_for_its_own_writes_only,
    test_a_change_racing_a_delete_is_gone,
    test_a_change_that_lost_a_race_reads_again_and_leaves_no_hole,
    test_an_edit_that_lost_a_race_keeps_both_texts,
    test_delete_leaves_a_tombstone,
    test_distinct_reactions_are_capped,
    test_edit_keeps_history_and_rerenders,
    test_every_change_takes_the_rooms_next_rev,
    test_reactions_are_idempotent_and_counted,
    test_since_and_after_zero_over_http,
    test_since_returns_every_change_in_rev_order,
    test_who_may_delete,
)
