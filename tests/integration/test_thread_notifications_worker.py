"""Notifications of thread replies through the real Celery worker, on PostgreSQL and Redis:
every follower hears of every reply exactly once (a mentioned follower by the mention only),
also when the worker is killed (SIGKILL) while it runs them. The tasks are acknowledged
late and rejected when their pool process dies, and the periodic sweep of unhandled
replies is the backstop; afterwards the database must hold exactly one notification per
user and reply, and every reply must be marked handled.

The follow, read and notification contract of tests/test_thread_follows.py runs on
PostgreSQL here too (its tests, imported, on a database of their own).
"""
from __future__ import annotations

import time
import uuid

import psutil
import psycopg2
import pytest

from app.extensions import db
from tests.integration.cluster import Cluster, pg_app, require_services, running_cluster

# Lost work is looked for every second; a killed worker's unacknowledged tasks come back
# after 5 s; the limits would throttle a test that sends fast on purpose.
ENV = {"RATELIMIT_ENABLED": "0", "MENTION_SWEEP_SECONDS": "1", "CELERY_VISIBILITY_TIMEOUT": "5"}
SETTLE = 30  # seconds to wait for every reply to be handled


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One server and one worker (both CPU-light: the test is about the worker)."""
    require_services()
    with running_cluster(tmp_path_factory.mktemp("thread-notify"), servers=("a",), env=ENV) as cluster:
        yield cluster


class Team:
    """alice (the root's author), bob (replies), carol (follows), dave (unfollowed), erin
    (follows, then leaves the room), in one room of a fresh cluster."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        prefix = uuid.uuid4().hex[:6]
        self.names = {short: f"{short}_{prefix}" for short in ("alice", "bob", "carol", "dave", "erin")}
        self.tokens = {short: cluster.register("a", name) for short, name in self.names.items()}
        self.ids = {short: self.api(short, "GET", "/me").json()["id"] for short in self.names}
        room = self.api("alice", "POST", "/rooms", json={"name": f"threads-{prefix}"})
        assert room.status_code == 201, room.text
        self.room_id = room.json()["id"]
        for short in ("bob", "carol", "dave", "erin"):
            added = self.api("alice", "POST", f"/rooms/{self.room_id}/members", json={"username": self.names[short]})
            assert added.status_code == 201, added.text

    def api(self, short: str, method: str, path: str, **kwargs):
        return self.cluster.api("a", self.tokens[short], method, path, **kwargs)

    def send(self, short: str, body: str, root_id: int | None = None) -> int:
        sent = self.api(short, "POST", f"/rooms/{self.room_id}/messages",
                        json={"body": body, "client_id": uuid.uuid4().hex, "thread_root_id": root_id})
        assert sent.status_code == 201, sent.text
        return sent.json()["id"]

    def thread(self) -> int:
        """A root by alice that carol follows, dave unfollowed and erin followed before leaving."""
        root = self.send("alice", "a question")
        for short, method in (("carol", "PUT"), ("dave", "PUT"), ("dave", "DELETE"), ("erin", "PUT")):
            answer = self.api(short, method, f"/threads/{root}/follow")
            assert answer.status_code == 200, answer.text
        return root


@pytest.fixture(scope="module")
def crew(cluster):
    """The Team, with its thread; erin has left the room since she followed it."""
    team = Team(cluster)
    root = team.thread()
    left = team.api("erin", "DELETE", f"/rooms/{team.room_id}/members/me")
    assert left.status_code == 204, left.text
    team.root = root
    return team


def expected(team: Team, bodies: dict[int, str]) -> dict[int, dict[int, str]]:
    """reply id -> {user id: kind}: alice by mention where the reply mentions her, else as a
    follower; carol as a follower; never bob (the author), dave (unfollowed), erin (left)."""
    return {
        reply_id: {team.ids["alice"]: "mention" if f"@{team.names['alice']}" in body else "thread_reply",
                   team.ids["carol"]: "thread_reply"}
        for reply_id, body in bodies.items()
    }


def stored(cluster: Cluster, reply_ids) -> tuple[dict[int, list[tuple[int, str]]], list[int]]:
    """The notifications of some replies ({reply id: [(user id, kind), ...]}) and the replies
    not yet marked handled."""
    found: dict[int, list[tuple[int, str]]] = {reply_id: [] for reply_id in reply_ids}
    for message_id, user_id, kind in cluster.sql(
            "SELECT message_id, user_id, kind FROM notifications WHERE message_id = ANY(%s) ORDER BY id",
            list(reply_ids)):
        found[message_id].append((user_id, kind))
    unhandled = [row[0] for row in cluster.sql(
        "SELECT id FROM messages WHERE id = ANY(%s) AND notified_at IS NULL ORDER BY id", list(reply_ids))]
    return found, unhandled


def settle(cluster: Cluster, want: dict[int, dict[int, str]], timeout: float = SETTLE):
    """Wait until every reply is handled and holds its notifications; what is stored then."""
    deadline = time.monotonic() + timeout
    while True:
        found, unhandled = stored(cluster, want)
        complete = all(len(found[reply_id]) >= len(users) for reply_id, users in want.items())
        if (complete and not unhandled) or time.monotonic() > deadline:
            return found, unhandled
        time.sleep(0.2)


def exactly_once(found, want) -> list[str]:
    """What differs from one notification per user and reply, of the expected kind."""
    problems = []
    for reply_id, users in want.items():
        got = found[reply_id]
        if sorted(got) != sorted(users.items()):
            problems.append(f"reply {reply_id}: stored {sorted(got)}, wanted {sorted(users.items())}")
    return problems


class NotificationsLocked:
    """Every notification insert waits (reads go on), as behind a stalled database: the
    worker's tasks are then in the middle of their run, holding their reply's row lock."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.conn = psycopg2.connect(cluster.database_url)
        with self.conn.cursor() as cur:
            cur.execute("LOCK TABLE notifications IN SHARE MODE")

    def waiting(self) -> int:
        """Sessions waiting for a lock: a task's insert behind this lock, or another run for
        the same reply (the sweep's) behind that task's lock on the reply's row."""
        return self.cluster.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'")[0][0]

    def wait_for_waiters(self, at_least: int, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.waiting() < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.waiting()

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def pool_processes(cluster: Cluster, name: str) -> list[psutil.Process]:
    """The pool processes of a worker this test started."""
    return psutil.Process(cluster.procs[name].pid).children()


def test_followers_hear_of_every_reply_once_through_the_worker(cluster, crew):
    carol = cluster.connect("a", crew.tokens["carol"])
    try:
        bodies = {}
        for i in range(8):
            body = f"answer {i}" + (f" @{crew.names['alice']}" if i % 3 == 0 else "")
            bodies[crew.send("bob", body, crew.root)] = body
        want = expected(crew, bodies)
        found, unhandled = settle(cluster, want)
        assert unhandled == []
        assert exactly_once(found, want) == []
        # Pushed live by the worker, once each, with the reply's thread.
        pushed = [n for n in carol.wait_for("notification", len(bodies), timeout=10)
                  if n["message"]["id"] in bodies]
        assert sorted(n["message"]["id"] for n in pushed) == sorted(bodies)
        assert {(n["kind"], n["message"]["thread_root_id"]) for n in pushed} == {("thread_reply", crew.root)}
        assert "chorus.notify_mentions" in cluster.log("worker")
    finally:
        carol.close()


def test_a_pool_process_killed_mid_run_leaves_each_follower_one_notification(cluster, crew):
    """SIGKILL the worker's pool processes while their tasks wait to insert notifications:
    the worker rejects those tasks (reject_on_worker_lost) and they run again, racing the
    sweep; each follower still has exactly one notification per reply."""
    lock = NotificationsLocked(cluster)
    try:
        bodies = {}
        for i in range(4):
            body = f"while stalled {i}" + (f" @{crew.names['alice']}" if i % 2 else "")
            bodies[crew.send("bob", body, crew.root)] = body
        assert lock.wait_for_waiters(at_least=2) >= 2  # both pool processes are mid-run
        children = pool_processes(cluster, "worker")
        assert children
        for child in children:
            child.kill()
        psutil.wait_procs(children, timeout=10)
    finally:
        lock.release()
    want = expected(crew, bodies)
    found, unhandled = settle(cluster, want)
    assert cluster.alive("worker")
    assert unhandled == []
    assert exactly_once(found, want) == []
    # Later runs (a redelivered task, the sweep) change nothing.
    time.sleep(6)
    assert exactly_once(stored(cluster, want)[0], want) == []


def test_a_worker_killed_mid_run_is_made_good_by_the_next_worker_and_the_sweep(cluster, crew):
    """SIGKILL the whole worker (its main process too) while its tasks wait to insert
    notifications; more replies come while no worker runs. A new worker gets the sweep's
    tasks at once and the killed worker's tasks after the visibility timeout: every follower
    ends with exactly one notification per reply, and no reply is left unhandled."""
    lock = NotificationsLocked(cluster)
    try:
        bodies = {}
        for i in range(4):
            body = f"before the kill {i}" + (f" @{crew.names['alice']}" if i % 2 else "")
            bodies[crew.send("bob", body, crew.root)] = body
        assert lock.wait_for_waiters(at_least=2) >= 2
        cluster.kill("worker")
    finally:
        lock.release()
    # The killed worker's database sessions end without committing anything.
    for i in range(3):
        body = f"while no worker runs {i} @{crew.names['alice']}" if i == 1 else f"while no worker runs {i}"
        bodies[crew.send("bob", body, crew.root)] = body
    want = expected(crew, bodies)
    found, unhandled = stored(cluster, want)
    assert len(unhandled) == len(bodies)  # nothing was handled while the insert waited
    cluster.start_worker("worker2")
    found, unhandled = settle(cluster, want)
    assert unhandled == []
    assert exactly_once(found, want) == []
    time.sleep(8)  # past the visibility timeout: the killed worker's tasks have run again
    assert exactly_once(stored(cluster, want)[0], want) == []


# --- The contract of tests/test_thread_follows.py, on PostgreSQL ----------------------------

@pytest.fixture
def app():
    """The app on a PostgreSQL database of its own (schema from the models)."""
    with pg_app("chorus_follows") as app:
        with app.app_context():
            db.create_all()
        yield app


from tests.test_thread_follows import (  # noqa: E402,F401
    call,
    test_a_mentioned_follower_gets_one_mention_and_nothing_else,
    test_an_edit_that_mentions_a_notified_follower_adds_nothing,
    test_an_unfollow_without_a_row_is_remembered_through_mentions_until_a_reply,
    test_follow_and_unfollow_answer_the_root_and_keep_the_marker,
    test_reading_a_thread_i_do_not_follow_keeps_a_marker_without_following,
    test_reading_moves_the_marker_forward_only_and_tells_my_sockets,
    test_the_list_costs_the_same_statements_for_two_threads_or_twelve,
    test_the_list_puts_unread_threads_first_then_the_latest_reply,
    test_the_sweep_handles_a_reply_whose_task_was_lost,
    test_the_task_is_idempotent_and_tells_nobody_who_followed_later,
    test_unfollowed_left_and_disabled_followers_get_nothing,
)
