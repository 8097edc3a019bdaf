"""Fault tests: two servers, a worker, Redis and PostgreSQL, real processes, clients sending steadily.

Each scenario (a test class) starts a cluster of its own, lets six users (two rooms, spread
over both servers) send every 50-100 ms through `ReliableClient`, breaks something, lets the
clients recover, and then checks against PostgreSQL:

- every acknowledged send is stored exactly once, under its client_id;
- every member's client holds exactly the stored messages of its rooms, each as stored
  (rev, text, deleted, reactions), none missing, and no change was delivered to it twice;
- every mention has exactly one notification, and its user's client has it.

A one-line summary per scenario is printed (see it with `pytest -s`).
"""
from __future__ import annotations

import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import psycopg2
import pytest
import redis
import requests

from app.lib.serializers import REACTION_USERS_SHOWN
from tests.integration.client import ReliableClient, wait_for
from tests.integration.cluster import Background, Cluster, Listener, RedisServer, require_services, running_cluster

# The fault clusters measure delivery, not the rate limits: six users sending every 50-100 ms
# would be throttled on purpose. Lost mention tasks are looked for every second and a killed
# worker's tasks come back after 5 s, so that recovery fits in a test's time.
ENV = {"RATELIMIT_ENABLED": "0", "MENTION_SWEEP_SECONDS": "1", "CELERY_VISIBILITY_TIMEOUT": "5"}
LOST_TASK_WAIT = 10  # seconds to wait for the sweep to handle mentions whose task was lost
HOMES = {"u0": "a", "u1": "b", "u2": "a", "u3": "b", "u4": "a", "u5": "b"}
ROOMS = {"one": ["u0", "u1", "u2", "u3"], "two": ["u2", "u3", "u4", "u5"]}


# --- A team of users and clients on one cluster -----------------------------------------------

@dataclass
class Team:
    """Users (by short name), their rooms and their clients on one cluster."""

    cluster: Cluster
    prefix: str
    user_ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    room_ids: dict[str, int] = field(default_factory=dict)
    clients: dict[str, ReliableClient] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    extra_client_ids: set[str] = field(default_factory=set)  # sent outside the clients

    @classmethod
    def create(cls, cluster: Cluster, prefix: str) -> "Team":
        """Register the users, make the rooms and connect every client to its home server."""
        team = cls(cluster, prefix)
        for short in HOMES:
            token = cluster.register("a", team.username(short))
            team.tokens[short] = token
            team.user_ids[short] = cluster.api("a", token, "GET", "/me").json()["id"]
        owner = team.tokens["u2"]  # a member of both rooms
        for room, members in ROOMS.items():
            r = cluster.api("a", owner, "POST", "/rooms", json={"name": f"{prefix}-{room}"})
            assert r.status_code == 201, r.text
            team.room_ids[room] = r.json()["id"]
            for short in members:
                if short != "u2":
                    r = cluster.api("a", owner, "POST", f"/rooms/{team.room_ids[room]}/members",
                                    json={"username": team.username(short)})
                    assert r.status_code == 201, r.text
        try:
            for short, home in HOMES.items():
                team.clients[short] = ReliableClient(
                    short, team.user_ids[short], team.tokens[short], [cluster.servers[home]], team.rooms_of(short),
                ).start()
            for client in team.clients.values():
                assert client.wait_until(lambda c=client: c.connected, 20), f"{client.name} did not connect"
        except BaseException:
            team.close()
            raise
        return team

    def username(self, short: str) -> str:
        return f"{self.prefix}_{short}"

    def rooms_of(self, short: str) -> list[int]:
        return [self.room_ids[room] for room, members in ROOMS.items() if short in members]

    def members_of(self, room_id: int) -> list[str]:
        room = next(name for name, rid in self.room_ids.items() if rid == room_id)
        return ROOMS[room]

    def listener(self, short: str, server: str) -> Listener:
        """A bare socket of a user, for sends the test drives itself."""
        listener = self.cluster.connect(server, self.tokens[short])
        self.listeners.append(listener)
        return listener

    def close(self) -> None:
        """Stop every client and close every socket."""
        for client in self.clients.values():
            client.stop()
        for listener in self.listeners:
            listener.close()


class Traffic(Background):
    """While running, every client queues a message every 50-100 ms; every `mention_every`-th
    message mentions another member of its room."""

    name = "traffic"

    def __init__(self, team: Team, *, mention_every: int = 5, seed: int = 0):
        self.team = team
        self.mention_every = mention_every
        super().__init__(seed=seed)

    def _run(self) -> None:
        due = {short: time.monotonic() + self.random.uniform(0, 0.1) for short in self.team.clients}
        while not self._stop.is_set():
            now = time.monotonic()
            for short, client in self.team.clients.items():
                if due[short] > now:
                    continue
                due[short] = now + self.random.uniform(0.05, 0.1)
                room_id = self.random.choice(self.team.rooms_of(short))
                self.count += 1
                body = f"{short} says {self.count}"
                if self.count % self.mention_every == 0:
                    other = self.random.choice([m for m in self.team.members_of(room_id) if m != short])
                    body += f" @{self.team.username(other)}"
                client.queue_send(room_id, body)
            time.sleep(0.005)


# --- Waiting and checking ------------------------------------------------------------------

def newest_id(cluster: Cluster) -> int:
    return cluster.sql("SELECT coalesce(max(id), 0) FROM messages")[0][0]


def drain(clients, timeout: float = 30) -> bool:
    """Wait until every client given is connected with nothing left to send."""
    deadline = time.monotonic() + timeout
    return all(c.wait_until(c.idle, max(0.0, deadline - time.monotonic())) for c in clients)


def stored_states(cluster: Cluster, room_id: int) -> list[tuple]:
    """A room's messages as PostgreSQL holds them, in id order, as `client.canonical` tuples:
    (id, rev, body or None, deleted, edited, ((emoji, count, first 20 users), ...))."""
    reactions: dict[int, dict[str, list[str]]] = {}
    for message_id, emoji, username in cluster.sql(
            "SELECT r.message_id, r.emoji, u.username FROM reactions r JOIN users u ON u.id = r.user_id "
            "JOIN messages m ON m.id = r.message_id WHERE m.room_id = %s ORDER BY r.id", room_id):
        reactions.setdefault(message_id, {}).setdefault(emoji, []).append(username)
    states = []
    for message_id, rev, body, deleted, edited in cluster.sql(
            "SELECT id, rev, body, deleted_at IS NOT NULL, edited_at IS NOT NULL FROM messages "
            "WHERE room_id = %s ORDER BY id", room_id):
        if deleted:
            states.append((message_id, rev, None, True, False, ()))
            continue
        summary = tuple((emoji, len(users), tuple(users[:REACTION_USERS_SHOWN]))
                        for emoji, users in reactions.get(message_id, {}).items())
        states.append((message_id, rev, body, False, edited, summary))
    return states


def client_gaps(team: Team) -> list[str]:
    """How each client's rooms differ from PostgreSQL (empty when every client is whole):
    messages missing or extra, and messages held in another state than stored."""
    problems = []
    stored = {room_id: stored_states(team.cluster, room_id) for room_id in team.room_ids.values()}
    for short, client in team.clients.items():
        for room_id in team.rooms_of(short):
            expected, have = stored[room_id], client.states(room_id)
            if have == expected:
                continue
            want, got = {s[0]: s for s in expected}, {s[0]: s for s in have}
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            differ = [(got[i], want[i]) for i in sorted(set(got) & set(want)) if got[i] != want[i]]
            problems.append(f"{short} in room {room_id}: {len(have)} held, {len(expected)} stored; "
                            f"missing {missing[:20]}{'...' if len(missing) > 20 else ''}, extra {extra[:20]}, "
                            f"{len(differ)} not as stored (held, stored): {differ[:3]}")
    return problems


def converge(team: Team, timeout: float = 10) -> list[str]:
    """Wait (bounded) for every client to hold exactly the stored messages; the gaps left."""
    deadline = time.monotonic() + timeout
    while True:
        gaps = client_gaps(team)
        if not gaps or time.monotonic() > deadline:
            return gaps
        time.sleep(0.2)


def unnotified_mentions(cluster: Cluster) -> list[tuple[int, int]]:
    return cluster.sql(
        "SELECT m.message_id, m.user_id FROM mentions m LEFT JOIN notifications n "
        "ON n.message_id = m.message_id AND n.user_id = m.user_id AND n.kind = 'mention' "
        "WHERE n.id IS NULL ORDER BY m.message_id"
    )


def wait_for_notifications(cluster: Cluster, timeout: float = 20) -> list[tuple[int, int]]:
    """Wait (bounded) until every mention has its notification; the mentions still without one."""
    deadline = time.monotonic() + timeout
    while True:
        missing = unnotified_mentions(cluster)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.2)


def stored_once_problems(team: Team) -> list[str]:
    """Every send acknowledged and stored exactly once under its client_id; nothing else stored."""
    problems = []
    # The body as sent: the first edit's previous text if it was edited; none left once deleted.
    rows = team.cluster.sql(
        "SELECT m.author_id, m.client_id, count(*), min(m.id), min(CASE WHEN m.deleted_at IS NULL THEN "
        "coalesce((SELECT e.previous_body FROM message_edits e WHERE e.message_id = m.id ORDER BY e.id LIMIT 1), "
        "m.body) END) FROM messages m GROUP BY m.author_id, m.client_id")
    by_key = {(author, client_id): (n, first, body) for author, client_id, n, first, body in rows}
    known = set(team.extra_client_ids)
    for short, client in team.clients.items():
        for send in client.sends:
            known.add(send.client_id)
            if send.error is not None:
                problems.append(f"{short}: {send.client_id} refused: {send.error}")
                continue
            if send.message is None:
                problems.append(f"{short}: {send.client_id} never acknowledged ({send.attempts} attempts)")
                continue
            n, first, body = by_key.get((client.user_id, send.client_id), (0, None, None))
            if n != 1 or first != send.message["id"] or (body is not None and body != send.body):
                problems.append(f"{short}: {send.client_id} stored {n} times (ids from {first}), "
                                f"acked as {send.message['id']}")
    for (author, client_id), (n, first, _) in by_key.items():
        if n != 1:
            problems.append(f"client_id {client_id} of user {author} stored {n} times")
        if client_id not in known:
            problems.append(f"message {first} ({client_id}) was stored but never sent by the test")
    return problems


def notification_problems(team: Team) -> list[str]:
    """Exactly one notification per mention, and each one held (pushed or listed) by its user's client."""
    problems = [f"message {m} user {u}: {n} notifications" for m, u, n in team.cluster.sql(
        "SELECT message_id, user_id, count(*) FROM notifications GROUP BY message_id, user_id HAVING count(*) <> 1"
    )]
    problems += [f"mention of user {u} in message {m} has no notification" for m, u in unnotified_mentions(team.cluster)]
    for short, client in team.clients.items():
        ids = {row[0] for row in team.cluster.sql("SELECT id FROM notifications WHERE user_id = %s",
                                                   client.user_id)}
        missing = sorted(ids - set(client.notifications))
        if missing:
            problems.append(f"{short} lacks notifications {missing}")
        twice = [i for i, n in client.pushed.items() if n > 1]
        if twice:
            problems.append(f"{short} was pushed notifications {twice} more than once")
    return problems


def protocol_problems(team: Team) -> list[str]:
    """Anything a client noticed: pages out of order, broadcasts twice, acks not matching."""
    return [f"{short}: {p}" for short, client in team.clients.items() for p in client.problems]


def summary(label: str, team: Team, **more) -> str:
    """One line of counts: sent, acked, stored, seen per client, and anything scenario-specific."""
    clients = team.clients.values()
    sends = [s for c in clients for s in c.sends]
    client_ids = {s.client_id for s in sends} | team.extra_client_ids
    stored = team.cluster.sql("SELECT count(*) FROM messages WHERE client_id = ANY(%s)", list(client_ids))[0][0]
    total = team.cluster.sql("SELECT count(*) FROM messages")[0][0]
    mentions = team.cluster.sql("SELECT count(*) FROM mentions")[0][0]
    notes = team.cluster.sql("SELECT count(*) FROM notifications")[0][0]
    seen = " ".join(f"{c.name}={sum(len(c.ids(r)) for r in c.rooms)}" for c in clients)
    extra = "".join(f" {k}={v}" for k, v in more.items())
    return (f"[{label}] sent={len(sends)} acked={sum(s.message is not None for s in sends)} "
            f"retried={sum(s.attempts > 1 for s in sends)} duplicate_acks={sum(bool(s.duplicate) for s in sends)} "
            f"stored={stored}/{total} seen: {seen} | reconnects={sum(c.connects - 1 for c in clients)} "
            f"resync_filled={sum(len(c.via_resync) for c in clients)} "
            f"catchups_after_connect={sum(c.catch_ups['connect'] for c in clients)} "
            f"gap_catchups={sum(c.gap_catch_ups() for c in clients)} "
            f"late_broadcasts={sum(c.late_live for c in clients)} mentions={mentions} "
            f"notifications={notes}{extra}")


@dataclass
class Outcome:
    """What a scenario left behind, for its tests to check."""

    team: Team
    gaps: list[str]
    unnotified: list[tuple[int, int]]
    line: str
    facts: dict = field(default_factory=dict)


def finish(label: str, team: Team, facts: dict | None = None, *, drain_timeout: float = 30,
           converge_timeout: float = 10, notify_timeout: float = 20, **counts) -> Outcome:
    """After the traffic: drain every queue, let clients converge and the worker catch up; summarise.

    `facts` are kept for the scenario's tests; `counts` go into the summary line.
    """
    drained = drain(team.clients.values(), drain_timeout)
    gaps = converge(team, converge_timeout)
    unnotified = wait_for_notifications(team.cluster, notify_timeout)
    line = summary(label, team, **counts)
    print(line)
    return Outcome(team, gaps, unnotified, line, {**(facts or {}), "drained": drained})


def cluster_log_errors(cluster: Cluster, names) -> dict[str, str]:
    """Tracebacks in the named processes' logs (only the first lines of each)."""
    found = {}
    for name in names:
        log = cluster.log(name)
        if "Traceback" in log:
            start = log.index("Traceback")
            found[name] = log[start:start + 1500]
    return found


@contextmanager
def team_on_cluster(tmp_path_factory, name: str, prefix: str, *, private_redis: bool = False):
    """A cluster of its own and the team on it: (cluster, team, redis_server or None).

    With private_redis the cluster uses a redis-server of its own, which the test may stop
    and start. Afterwards the team is closed, the cluster stopped, the redis-server stopped.
    """
    require_services()
    tmp = tmp_path_factory.mktemp(name)
    with ExitStack() as stack:
        redis_server = redis_url = None
        if private_redis:
            redis_server = RedisServer(tmp)
            redis_server.start()
            stack.callback(redis_server.stop)
            redis_url = f"{redis_server.url}/0"
        cluster = stack.enter_context(running_cluster(tmp, redis_url=redis_url, env=ENV))
        team = Team.create(cluster, prefix)
        stack.callback(team.close)
        yield cluster, team, redis_server


# --- Scenario 1: kill -9 one server ------------------------------------------------------------

class Invariants:
    """The checks every fault scenario ends with (its `outcome` fixture gives the facts)."""

    def test_every_acked_message_is_stored_once(self, outcome):
        assert outcome.facts["drained"]
        assert stored_once_problems(outcome.team) == []

    def test_every_client_has_exactly_the_stored_messages(self, outcome):
        assert outcome.gaps == []
        assert protocol_problems(outcome.team) == []

    def test_every_mention_has_one_notification(self, outcome):
        assert outcome.unnotified == []
        assert notification_problems(outcome.team) == []


class TestServerKilled(Invariants):
    """Server a dies mid-traffic; its clients reconnect to b, resync, and send there again what
    a never acknowledged. (TestServerKilledBetweenCommitAndBroadcast makes sure that a send
    is between its commit and its broadcast when a dies; here it is chance.)"""

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "kill-server", "s1") as (cluster, team, _):
            on_a = [c for short, c in team.clients.items() if HOMES[short] == "a"]
            with Traffic(team, seed=1):
                time.sleep(2.0)
                cluster.kill("a")
                # The clients of a try to come back to a, fail, and are pointed at b.
                time.sleep(1.0)
                failed_on_a = sum(c.failed_connects for c in on_a)
                for client in on_a:
                    client.use([cluster.servers["b"]])
                time.sleep(3.0)
            moved = sum(c.url == cluster.servers["b"] for c in on_a)
            yield finish("kill -9 server a", team, {"failed_on_a": failed_on_a, "moved": moved},
                         failed_connects_to_a=failed_on_a, moved_to_b=moved)

    def test_clients_of_the_dead_server_moved_and_resynced(self, outcome):
        on_a = [c for short, c in outcome.team.clients.items() if HOMES[short] == "a"]
        assert outcome.facts["failed_on_a"] > 0
        assert outcome.facts["moved"] == len(on_a)
        assert all(c.connects >= 2 for c in on_a)
        # While they were away the others kept talking: the resync brought what they missed.
        assert sum(len(c.via_resync) for c in on_a) > 0

    def test_the_surviving_server_and_worker_logged_no_error(self, outcome):
        assert cluster_log_errors(outcome.team.cluster, ["b", "worker"]) == {}


class TestServerKilledBetweenCommitAndBroadcast:
    """Server a dies after committing messages and before publishing them.

    The window is widened on purpose: Redis holds every write for a moment (CLIENT PAUSE WRITE),
    so a's sends commit and then wait in the publish; a is killed -9 there (Redis drops the
    commands of a closed connection) and Redis goes on. The senders retry on b and get their
    messages back as duplicates; everyone else must still end up with them.
    """

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "kill-server-mid-send", "s5",
                             private_redis=True) as (cluster, team, redis_server):
            on_a = {short: c for short, c in team.clients.items() if HOMES[short] == "a"}
            with Traffic(team, seed=7):
                time.sleep(1.5)
                for client in on_a.values():
                    client.hold()
                admin = redis.Redis.from_url(redis_server.url)
                admin.client_pause(10_000, all=False)
                # Each client of a sends a mention first; it commits and waits in the publish.
                stuck = [on_a[short].queue_send(
                    team.room_ids["two" if short == "u4" else "one"],
                    f"{short} sends as a dies @{team.username('u3')}", first=True) for short in on_a]
                for client in on_a.values():
                    client.release()
                committed = wait_for(lambda: len(cluster.sql(
                    "SELECT id FROM messages WHERE client_id = ANY(%s)", [s.client_id for s in stuck]
                )) == len(stuck), 3)
                cluster.kill("a")
                admin.client_unpause()
                for client in on_a.values():
                    client.use([cluster.servers["b"]])
                time.sleep(2.5)
            outcome = finish("kill -9 server a between commit and broadcast", team,
                             {"stuck": stuck, "committed": committed},
                             converge_timeout=5, notify_timeout=LOST_TASK_WAIT,
                             committed_unbroadcast=len(stuck))
            yield outcome

    def test_the_senders_get_their_messages_back_once(self, outcome):
        assert outcome.facts["committed"]
        for send in outcome.facts["stuck"]:
            assert send.attempts >= 2 and send.duplicate is True
        assert stored_once_problems(outcome.team) == []

    def test_no_client_holds_a_message_twice_or_out_of_order(self, outcome):
        assert protocol_problems(outcome.team) == []

    def test_every_client_has_exactly_the_stored_messages(self, outcome):
        """Nobody broadcasts the stuck messages (the retries are duplicates): the clients that
        stayed connected find them by the jump in rev of the next change of the room."""
        assert outcome.gaps == []

    def test_every_mention_has_one_notification(self, outcome):
        """The stuck messages' mention tasks were never queued: the sweep of unhandled mentions
        notifies them."""
        assert outcome.unnotified == []
        assert notification_problems(outcome.team) == []


# --- Scenario 2: restart Redis ----------------------------------------------------------------

class TestRedisRestarted:
    """A private Redis (the message queue and the broker) is stopped for two seconds and started
    again empty; the servers and the worker reconnect by themselves."""

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "restart-redis", "s2",
                             private_redis=True) as (cluster, team, redis_server):
            with Traffic(team, seed=2):
                time.sleep(2.0)
                before = newest_id(cluster)
                redis_server.stop()
                time.sleep(2.0)
                during = cluster.sql("SELECT count(*) FROM messages WHERE id > %s", before)[0][0]
                redis_server.start()
                time.sleep(3.0)
                # A worker that held unacknowledged tasks when the broker went away may
                # exit (kombu's restore of them fails); systemd restarts it
                # (Restart=always in docs/DEPLOY.md), and so does the test.
                worker_exited = not cluster.alive("worker")
                if worker_exited:
                    cluster.stop("worker")
                    cluster.start_worker("worker2")
                time.sleep(1.0)
            outcome = finish("restart Redis", team, {"stored_while_down": during},
                             converge_timeout=5, notify_timeout=LOST_TASK_WAIT,
                             stored_while_down=during, worker_exited=int(worker_exited))
            # Afterwards: one more message reaches every member live, through both servers.
            probe = team.clients["u2"].queue_send(team.room_ids["one"], "after the restart")
            team.clients["u2"].wait_until(lambda: probe.message is not None, 15)
            members = [team.clients[m] for m in ROOMS["one"]]
            probe_id = probe.message["id"] if probe.message else None
            outcome.facts["probe_live"] = [
                m.name for m in members if m.wait_until(lambda m=m: m.live[probe_id] == 1, 10)
            ]
            outcome.facts["health"] = [
                requests.get(f"{url}/healthz", timeout=5).status_code for url in cluster.servers.values()
            ]
            yield outcome

    def test_servers_are_healthy_and_deliver_live_again(self, outcome):
        assert outcome.facts["health"] == [200, 200]
        assert sorted(outcome.facts["probe_live"]) == sorted(ROOMS["one"])

    def test_every_acked_message_is_stored_once(self, outcome):
        assert outcome.facts["stored_while_down"] > 0  # the clients did send during the outage
        assert outcome.facts["drained"]
        assert stored_once_problems(outcome.team) == []

    def test_no_client_holds_a_message_twice_or_out_of_order(self, outcome):
        assert protocol_problems(outcome.team) == []

    def test_every_client_has_exactly_the_stored_messages(self, outcome):
        """Messages stored while Redis was down were never broadcast and no socket was closed:
        the clients catch up when the rev of the next change jumps (or the heads show it)."""
        assert outcome.gaps == []

    def test_no_mention_is_notified_twice(self, outcome):
        assert outcome.team.cluster.sql(
            "SELECT message_id, user_id, count(*) FROM notifications GROUP BY 1, 2 HAVING count(*) <> 1") == []

    def test_every_mention_has_one_notification(self, outcome):
        """The tasks of mentions sent while Redis was down could not be queued (and Redis came
        back empty): the sweep of unhandled mentions notifies them."""
        assert outcome.unnotified == []
        assert notification_problems(outcome.team) == []


# --- Scenario 3: the worker dies ------------------------------------------------------------------

class Locked:
    """Hold a PostgreSQL lock that makes some statement of the app wait, as a stalled database would."""

    def __init__(self, cluster: Cluster, lock_sql: str, params: tuple, waiting: str):
        self.cluster = cluster
        self.waiting = waiting  # what the waiting statement contains, e.g. "INSERT INTO notifications"
        self.conn = psycopg2.connect(cluster.database_url)
        with self.conn.cursor() as cur:
            cur.execute(lock_sql, params)

    @classmethod
    def notifications(cls, cluster: Cluster) -> "Locked":
        """Every notification insert waits; reads go on."""
        return cls(cluster, "LOCK TABLE notifications IN SHARE MODE", (), "INSERT INTO notifications")

    @classmethod
    def membership(cls, cluster: Cluster, user_id: int, room_id: int) -> "Locked":
        """The read-marker update of a user's send waits, after the message got its seq and id
        (within the one statement that stores a message, which pg_stat_activity shows only
        in part, its first kilobyte: it is known by its start)."""
        return cls(cluster, "SELECT id FROM memberships WHERE user_id = %s AND room_id = %s FOR UPDATE",
                   (user_id, room_id), "WITH input AS (")

    def waiting_pids(self) -> list[int]:
        """Backends waiting on the lock to run the statement."""
        return [row[0] for row in self.cluster.sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query ILIKE %s", "%" + self.waiting + "%")]

    def wait_for_waiters(self, at_least: int = 1, timeout: float = 15) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.waiting_pids()
            if len(pids) >= at_least:
                return pids
            time.sleep(0.05)
        return self.waiting_pids()

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def mention(team: Team, author: str, room: str, target: str, text: str):
    """Queue a message from author mentioning target in a room."""
    return team.clients[author].queue_send(team.room_ids[room], f"{text} @{team.username(target)}")


def unnotified_between(cluster: Cluster, first: int, last: int, timeout: float) -> list[tuple[int, int]]:
    """Wait (bounded) for the mentions in messages first..last to be notified; those still not."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [(m, u) for m, u in unnotified_mentions(cluster) if first <= m <= last]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.2)


class TestWorkerKilled:
    """The worker goes away while mentions wait in the queue or run; a new worker finishes the job."""

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "kill-worker", "s3") as (cluster, team, _):
            facts = {}
            lock = None
            try:
                away = team.clients["u1"]  # mentioned while offline and while no worker runs

                # A: the worker is killed (idle), mentions queue up with u1 offline, a new worker starts.
                cluster.kill("worker")
                away.go_offline()
                first = newest_id(cluster) + 1
                with Traffic(team, mention_every=4, seed=3):
                    for i in range(3):
                        mention(team, "u0", "one", "u1", f"while you were away {i}")
                    time.sleep(2.5)
                drain([c for c in team.clients.values() if c is not away])
                last = newest_id(cluster)
                facts["queued_without_worker"] = len(unnotified_between(cluster, first, last, 0))
                cluster.start_worker("worker2")
                facts["a_unnotified"] = unnotified_between(cluster, first, last, 20)
                away.come_back()
                away.wait_until(lambda: away.connected, 15)
                drain(team.clients.values())
                listed = {row[0] for row in cluster.sql(
                    "SELECT id FROM notifications WHERE user_id = %s", away.user_id)}
                facts["away_missing"] = sorted(listed - set(away.notifications))
                facts["away_unread"] = (away.unread, cluster.sql(
                    "SELECT count(*) FROM notifications WHERE user_id = %s AND read_at IS NULL",
                    away.user_id)[0][0])

                # C: the database drops a task's connection mid-run; the task is retried.
                lock = Locked.notifications(cluster)
                first = newest_id(cluster) + 1
                with Traffic(team, mention_every=4, seed=4):
                    waiting = lock.wait_for_waiters()
                    facts["c_waiting"] = len(waiting)
                    cluster.sql("SELECT pg_terminate_backend(pid) FROM unnest(%s) AS pid", waiting)
                    time.sleep(0.3)
                    lock.release()
                    time.sleep(1.0)
                drain(team.clients.values())
                last = newest_id(cluster)
                facts["c_unnotified"] = unnotified_between(cluster, 0, last, 20)  # and all before
                facts["c_retries"] = cluster.log("worker2").count("Retry in")

                # B: kill -9 the worker while it runs mention tasks (held by the lock).
                lock = Locked.notifications(cluster)
                first = newest_id(cluster) + 1
                with Traffic(team, mention_every=4, seed=5):
                    facts["b_running"] = len(lock.wait_for_waiters(at_least=2))
                    cluster.kill("worker2")
                    lock.release()
                    cluster.start_worker("worker3")
                    time.sleep(1.0)
                drain(team.clients.values())
                facts["b_range"] = (first, newest_id(cluster))
                yield finish("kill the worker", team, facts, notify_timeout=0,
                             queued_without_worker=facts["queued_without_worker"],
                             db_connections_killed=facts["c_waiting"], task_retries=facts["c_retries"],
                             running_when_killed=facts["b_running"])
            finally:
                if lock is not None:
                    lock.release()

    def test_mentions_queued_while_no_worker_ran_are_notified_once(self, outcome):
        assert outcome.facts["queued_without_worker"] >= 3
        assert outcome.facts["a_unnotified"] == []

    def test_a_user_offline_meanwhile_finds_them_listed_and_counted(self, outcome):
        assert outcome.facts["away_missing"] == []
        unread_seen, unread_stored = outcome.facts["away_unread"]
        assert unread_seen == unread_stored >= 3

    def test_a_task_whose_database_connection_died_is_retried(self, outcome):
        assert outcome.facts["c_waiting"] >= 1
        assert outcome.facts["c_retries"] >= 1
        assert outcome.facts["c_unnotified"] == []

    def test_mentions_running_when_the_worker_was_killed_are_notified(self, outcome):
        """The killed worker's tasks stay unacknowledged in the broker until its visibility
        timeout; the sweep of unhandled mentions does not wait that long."""
        first, last = outcome.facts["b_range"]
        assert unnotified_between(outcome.team.cluster, first, last, LOST_TASK_WAIT) == []

    def test_every_acked_message_is_stored_once(self, outcome):
        assert outcome.facts["drained"]
        assert stored_once_problems(outcome.team) == []

    def test_every_client_has_exactly_the_stored_messages(self, outcome):
        assert outcome.gaps == []
        assert protocol_problems(outcome.team) == []

    def test_every_mention_has_one_notification(self, outcome):
        """Apart from the tasks the killed worker was running (the test above)."""
        assert outcome.facts["b_running"] >= 1  # the kill did hit running tasks
        first, last = outcome.facts["b_range"]
        assert [(m, u) for m, u in outcome.unnotified if not first <= m <= last] == []
        assert not [p for p in notification_problems(outcome.team) if "has no notification" not in p]


# --- Scenario 4: a client drops in the middle of a send ---------------------------------------------

def same_client_id_at_once(team: Team, short: str, room: str, client_id: str, body: str) -> list[tuple[str, object]]:
    """Send one client_id four ways at the same moment: REST on a and b, a socket on a and b."""
    sockets = {server: team.listener(short, server) for server in ("a", "b")}
    start = threading.Barrier(4)
    results: list[tuple[str, object]] = []
    room_id = team.room_ids[room]
    payload = {"body": body, "client_id": client_id}

    def rest(server):
        start.wait(10)
        r = team.cluster.api(server, team.tokens[short], "POST", f"/rooms/{room_id}/messages", json=payload)
        results.append((f"rest@{server}", (r.status_code, r.json())))

    def sock(server):
        start.wait(10)
        results.append((f"socket@{server}", sockets[server].send(room_id, body, client_id)))

    threads = [threading.Thread(target=f, args=(s,)) for f in (rest, sock) for s in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for listener in sockets.values():
        listener.close()
    return results


class TestSendDropped(Invariants):
    """Clients lose their connection right after emitting a send, and send again with the same client_id."""

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "drop-send", "s4") as (cluster, team, _):
            facts = {}
            drops = []
            with Traffic(team, seed=6):
                time.sleep(1.0)
                for i in range(12):
                    short = ["u0", "u1", "u4", "u5"][i % 4]
                    room = "one" if short in ("u0", "u1") else "two"
                    drops.append(team.clients[short].queue_send(
                        team.room_ids[room], f"{short} drops {i}", drop="flushed" if i % 3 else "unflushed"))
                    time.sleep(0.25)
                time.sleep(1.0)
                # Meanwhile, one client_id sent four ways at once, eight times over.
                races = []
                for i in range(8):
                    client_id = f"race-{uuid.uuid4().hex[:12]}"
                    team.extra_client_ids.add(client_id)
                    races.append((client_id, same_client_id_at_once(team, "u3", "two", client_id, f"race {i}")))
            facts["drops"] = drops
            facts["races"] = races
            # One socket sending fast without waiting for acks: ids follow its order.
            burst = team.listener("u2", "b")
            acks, done = {}, threading.Event()
            client_ids = [f"burst-{uuid.uuid4().hex[:12]}" for _ in range(40)]
            team.extra_client_ids.update(client_ids)

            def on_ack(client_id):
                def record(ack):
                    acks[client_id] = ack
                    if len(acks) == len(client_ids):
                        done.set()
                return record

            for n, client_id in enumerate(client_ids):
                burst.client.emit("send", {"room_id": team.room_ids["one"], "body": f"burst {n}",
                                           "client_id": client_id}, callback=on_ack(client_id))
            done.wait(20)
            facts["burst"] = (client_ids, acks)
            yield finish("drop mid-send", team, facts, drops=len(drops),
                         drops_stored_before_retry=sum(bool(s.duplicate) for s in drops),
                         same_id_races=len(races), burst_acks=len(acks))

    def test_a_send_dropped_mid_way_is_retried_with_its_client_id(self, outcome):
        drops = outcome.facts["drops"]
        assert all(s.attempts >= 2 and s.message is not None for s in drops)
        # At least the flushed ones reached the server before the connection went: the retry
        # found them and answered with the original.
        flushed = [s for s in drops if s.drop == "flushed"]
        assert sum(bool(s.duplicate) for s in flushed) >= len(flushed) // 2
        for send in drops:
            rows = outcome.team.cluster.sql("SELECT id FROM messages WHERE client_id = %s", send.client_id)
            assert rows == [(send.message["id"],)]

    def test_the_same_client_id_sent_four_ways_at_once_is_stored_once(self, outcome):
        for client_id, results in outcome.facts["races"]:
            assert len(results) == 4, results
            ids, created = set(), 0
            for door, result in results:
                if door.startswith("rest"):
                    status, body = result
                    assert status in (200, 201), (door, result)
                    ids.add(body["id"])
                    created += status == 201
                else:
                    assert result["ok"] is True, (door, result)
                    ids.add(result["message"]["id"])
                    created += result["duplicate"] is False
            assert len(ids) == 1 and created == 1, results
            rows = outcome.team.cluster.sql("SELECT id FROM messages WHERE client_id = %s", client_id)
            assert rows == [(ids.pop(),)]

    def test_a_socket_sending_fast_gets_ids_in_its_order(self, outcome):
        client_ids, acks = outcome.facts["burst"]
        assert len(acks) == len(client_ids)
        assert all(acks[c]["ok"] for c in client_ids)
        ids = [acks[c]["message"]["id"] for c in client_ids]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        stored = outcome.team.cluster.sql(
            "SELECT client_id FROM messages WHERE client_id = ANY(%s) ORDER BY id", client_ids)
        assert [row[0] for row in stored] == client_ids

    def test_no_server_logged_an_error(self, outcome):
        assert cluster_log_errors(outcome.team.cluster, ["a", "b", "worker"]) == {}


# --- A message that commits after a newer one -------------------------------------------------------

class TestLateCommit:
    """A send held between taking its id and its commit, while the next one of the room comes.

    u0's send is held after it took its seq, rev and id (its read-marker row is locked) while
    u2 sends the next message; two more clients of u1 go offline and come back once u0's
    message committed. If u2's message could go out first, a client that saw it and then
    catches up from the newest rev it saw would skip u0's for good. One extra client catches
    up exactly so, trusting the newest rev it saw (`trust_newest`); the other as
    `ReliableClient` does by default, from the rev up to which it has seen every change.
    """

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "late-commit", "s6") as (cluster, team, _):
            lock = None
            facts = {}
            try:
                room = team.room_ids["one"]
                away = {
                    "newest": ReliableClient("u1-newest-rev", team.user_ids["u1"], team.tokens["u1"],
                                             [cluster.servers["b"]], [room], trust_newest=True),
                    "default": ReliableClient("u1-default", team.user_ids["u1"], team.tokens["u1"],
                                              [cluster.servers["b"]], [room]),
                }
                team.clients.update({c.name: c.start() for c in away.values()})
                assert all(c.wait_until(lambda c=c: c.connected, 20) for c in away.values())
                sender, other = team.clients["u0"], team.clients["u2"]
                first = sender.queue_send(room, "a first message")
                sender.wait_until(lambda: first.message is not None, 10)

                lock = Locked.membership(cluster, team.user_ids["u0"], room)
                slow = sender.queue_send(room, "id taken first, committed last")
                facts["slow_waiting"] = bool(lock.wait_for_waiters(timeout=10))
                fast = other.queue_send(room, "id taken second")
                # If the server orders a room's commits, this send waits for the first one.
                facts["fast_out_first"] = other.wait_until(lambda: fast.message is not None, 3)
                if facts["fast_out_first"]:
                    for client in away.values():
                        client.wait_until(lambda c=client: c.live[fast.message["id"]] == 1, 5)
                for client in away.values():
                    client.go_offline()
                lock.release()
                sender.wait_until(lambda: slow.message is not None, 10)
                other.wait_until(lambda: fast.message is not None, 10)
                facts["ids"] = (slow.message["id"] if slow.message else None,
                                fast.message["id"] if fast.message else None)
                for client in away.values():
                    client.come_back()
                    client.wait_until(lambda c=client: c.connected, 15)
                stored = stored_states(cluster, room)
                facts["held"] = {key: (client.states(room), stored) for key, client in away.items()}
                yield finish("late commit", team, facts, converge_timeout=3,
                             committed_out_of_order=int(facts["fast_out_first"]))
            finally:
                if lock is not None:
                    lock.release()

    def test_both_messages_are_stored_once(self, outcome):
        assert outcome.facts["slow_waiting"]
        assert stored_once_problems(outcome.team) == []

    def test_the_next_send_of_the_room_waits_for_the_held_one(self, outcome):
        slow_id, fast_id = outcome.facts["ids"]
        assert outcome.facts["fast_out_first"] is False
        assert slow_id < fast_id

    def test_a_client_resyncing_the_default_way_gets_every_message(self, outcome):
        have, stored = outcome.facts["held"]["default"]
        assert have == stored

    def test_a_client_resyncing_from_the_newest_rev_gets_every_message(self, outcome):
        """A room's changes commit in rev order (the room row is locked from taking the rev to
        the commit), so since=<the newest rev seen> cannot skip a message that commits late."""
        have, stored = outcome.facts["held"]["newest"]
        assert have == stored

    def test_clients_that_stayed_connected_got_them_live(self, outcome):
        assert outcome.gaps == []
        assert protocol_problems(outcome.team) == []
