"""Edits, deletes and reactions through faults: real servers, worker, Redis and PostgreSQL.

The clusters, users and checks of test_faults.py, with one more kind of traffic: while the
six users send, each also edits and deletes its own messages and reacts to (and takes back
reactions from) everyone's, every 150-300 ms, through `ReliableClient`. Then a server is
killed, or Redis is restarted, and afterwards PostgreSQL is the judge:

- every acknowledged send is stored once, and every acknowledged change is what is stored
  (the last edit's text, every delete, each user's reactions as last set);
- every member's client holds every message of its rooms exactly as stored: rev, text,
  deleted or not, edited or not, each reaction's emoji, count and users;
- every mention (edits add some) has one notification, which its user's client holds.

A one-line summary per scenario is printed (see it with `pytest -s`).
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.integration.client import ReliableClient
from tests.integration.cluster import Background, Cluster
from tests.integration.test_faults import (
    HOMES, ROOMS, Team, Traffic, cluster_log_errors, finish, notification_problems, protocol_problems,
    stored_once_problems, team_on_cluster,
)

EMOJI = ["👍", "🎉", "❤️", "👀"]


class ChangeTraffic(Background):
    """While running, every client given queues an operation every `every` seconds (150-300 ms
    by default): a new message (a `sends` share of them, none by default), an edit of one of
    its own acknowledged messages (every fourth mentioning another member), now and then a
    delete of one, or a reaction (on or off) to one of the newest messages it holds."""

    name = "change-traffic"

    def __init__(self, clients: dict[str, ReliableClient], members: dict[int, list[str]], usernames: dict[str, str],
                 *, seed: int = 0, every: tuple[float, float] = (0.15, 0.3), sends: float = 0.0):
        self.clients = clients
        self.members = members      # room id -> short names of its members
        self.usernames = usernames  # short name -> username
        self.every = every
        self.sends = sends
        self.deleted: set[int] = set()                       # messages a delete was queued for
        self.reacted: dict[tuple[str, int, str], bool] = {}  # (user, message, emoji) -> last asked
        super().__init__(seed=seed)

    @classmethod
    def of_team(cls, team: Team, **kwargs) -> "ChangeTraffic":
        """Changes by the six users of a fault-test team, in their rooms."""
        return cls({short: team.clients[short] for short in HOMES},
                   {team.room_ids[room]: members for room, members in ROOMS.items()},
                   {short: team.username(short) for short in HOMES}, **kwargs)

    def _run(self) -> None:
        low, high = self.every
        due = {short: time.monotonic() + self.random.uniform(low, high) for short in self.clients}
        while not self._stop.is_set():
            now = time.monotonic()
            for short, client in self.clients.items():
                if due[short] > now:
                    continue
                due[short] = now + self.random.uniform(low, high)
                self._one(short, client)
            time.sleep(0.005)

    def _one(self, short: str, client: ReliableClient) -> None:
        self.count += 1
        rooms = list(client.rooms)
        if self.random.random() < self.sends:
            client.queue_send(self.random.choice(rooms), f"{short} says {self.count}")
            return
        own = [s.message["id"] for s in client.sends[-30:]
               if s.message is not None and s.message["id"] not in self.deleted]
        held = [i for room_id in rooms for i in client.ids(room_id)[-40:] if i not in self.deleted]
        roll = self.random.random()
        if roll < 0.1 and len(own) > 3:
            target = self.random.choice(own[:-2])
            self.deleted.add(target)
            client.queue_delete(target)
        elif roll < 0.4 and own:
            target = self.random.choice(own)
            body = f"{short} edits {target} ({self.count})"
            if self.count % 4 == 0:
                room_id = next(r for r in rooms if target in client.ids(r))
                other = self.random.choice([m for m in self.members[room_id] if m != short])
                body += f" @{self.usernames[other]}"
            client.queue_edit(target, body)
        elif held:
            target, emoji = self.random.choice(held), self.random.choice(EMOJI)
            key = (short, target, emoji)
            on = not self.reacted.get(key, False)
            self.reacted[key] = on
            client.queue_react(target, emoji, on)


def change_problems(cluster: Cluster, clients) -> list[str]:
    """Every change the clients queued settled, and is stored as its ack said: the last edit's
    text, every delete, each (user, message, emoji) reaction as its last settled `react`
    left it. Assumes each user's changes come from one client."""
    problems = []
    deleted = {row[0] for row in cluster.sql("SELECT id FROM messages WHERE deleted_at IS NOT NULL")}
    bodies = dict(cluster.sql("SELECT id, body FROM messages WHERE deleted_at IS NULL"))
    reactions = {tuple(row) for row in cluster.sql("SELECT message_id, user_id, emoji FROM reactions")}
    last_edit: dict[int, str] = {}
    last_react: dict[tuple[int, int, str], bool] = {}
    for client in clients:
        for op in client.changes:
            if op.error is not None:
                # Only a reaction may be refused: its message was deleted meanwhile.
                if not (op.kind == "react" and op.error.get("code") == "gone" and op.message_id in deleted):
                    problems.append(f"{client.name}: {op.kind} of {op.message_id} refused: {op.error}")
                continue
            if op.message is None:
                problems.append(f"{client.name}: {op.kind} of {op.message_id} never acknowledged "
                                f"({op.attempts} attempts)")
                continue
            if op.kind == "edit":
                last_edit[op.message_id] = op.body
            elif op.kind == "delete":
                if op.message_id not in deleted:
                    problems.append(f"{client.name}: delete of {op.message_id} acknowledged, message not deleted")
            else:
                last_react[(op.message_id, client.user_id, op.emoji)] = op.on
    for message_id, body in last_edit.items():
        if message_id not in deleted and bodies.get(message_id) != body:
            problems.append(f"message {message_id}: last edit {body!r}, stored {bodies.get(message_id)!r}")
    for (message_id, user_id, emoji), on in last_react.items():
        stored = (message_id, user_id, emoji) in reactions
        if stored != (on and message_id not in deleted):
            problems.append(f"reaction {emoji} of user {user_id} on {message_id}: last set {on}, stored {stored}")
    unexplained = reactions - {key for key, on in last_react.items() if on}
    if unexplained:
        problems.append(f"reactions stored that no settled react made: {sorted(unexplained)[:10]}")
    return problems


def changes_made(clients) -> dict:
    """How many changes of each kind were acknowledged, how many took more than one attempt,
    and how many reactions found their message deleted."""
    ops = [op for c in clients for op in c.changes]
    return {
        "edits": sum(op.kind == "edit" and op.message is not None for op in ops),
        "deletes": sum(op.kind == "delete" and op.message is not None for op in ops),
        "reactions": sum(op.kind == "react" and op.message is not None for op in ops),
        "changes_retried": sum(op.attempts > 1 for op in ops),
        "reactions_gone": sum(op.error is not None for op in ops),
    }


class ChangeInvariants:
    """The checks both scenarios end with."""

    def test_every_acked_message_is_stored_once(self, outcome):
        assert outcome.facts["drained"]
        assert stored_once_problems(outcome.team) == []

    def test_every_acked_change_is_stored_as_acknowledged(self, outcome):
        made = outcome.facts["made"]
        assert made["edits"] >= 20 and made["deletes"] >= 5 and made["reactions"] >= 40, made
        assert change_problems(outcome.team.cluster, outcome.team.clients.values()) == []

    def test_every_client_holds_every_message_as_stored(self, outcome):
        assert outcome.gaps == []
        assert protocol_problems(outcome.team) == []

    def test_every_mention_has_one_notification(self, outcome):
        assert outcome.unnotified == []
        assert notification_problems(outcome.team) == []


class TestChangesWhileServerKilled(ChangeInvariants):
    """Server a dies while everyone sends, edits, deletes and reacts; its clients move to b,
    catch up, and do there again what a never acknowledged."""

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "changes-kill-server", "c1") as (cluster, team, _):
            on_a = [c for short, c in team.clients.items() if HOMES[short] == "a"]
            with Traffic(team, seed=11), ChangeTraffic.of_team(team, seed=12) as changes:
                time.sleep(2.0)
                cluster.kill("a")
                killed_at = time.monotonic()
                time.sleep(1.0)
                for client in on_a:
                    client.use([cluster.servers["b"]])
                time.sleep(3.0)
            # Changes the clients of b made while their peers were away, and those of a that
            # waited in their queues for the move.
            while_away = sum(op.acked_at is not None and op.acked_at > killed_at
                             for c in team.clients.values() for op in c.changes)
            facts = {"made": changes_made(team.clients.values()), "while_away": while_away,
                     "moved": sum(c.url == cluster.servers["b"] for c in on_a), "change_count": changes.count}
            yield finish("changes: kill -9 server a", team, facts, **facts["made"], changes_after_kill=while_away)

    def test_clients_of_the_dead_server_moved_and_caught_up(self, outcome):
        on_a = [c for short, c in outcome.team.clients.items() if HOMES[short] == "a"]
        assert outcome.facts["moved"] == len(on_a)
        assert all(c.connects >= 2 for c in on_a)
        assert outcome.facts["while_away"] >= 10

    def test_the_surviving_server_and_worker_logged_no_error(self, outcome):
        assert cluster_log_errors(outcome.team.cluster, ["b", "worker"]) == {}


class TestChangesWhileRedisRestarts(ChangeInvariants):
    """Redis (the message queue) stops for two seconds and comes back empty while everyone
    sends, edits, deletes and reacts: every change stored meanwhile was broadcast to nobody,
    and the clients, still connected, find them by the jump in rev of the next change (or
    the room's head)."""

    @pytest.fixture(scope="class")
    @classmethod
    def outcome(cls, tmp_path_factory):
        with team_on_cluster(tmp_path_factory, "changes-restart-redis", "c2",
                             private_redis=True) as (cluster, team, redis_server):
            with Traffic(team, seed=13), ChangeTraffic.of_team(team, seed=14):
                time.sleep(2.0)
                redis_server.stop()
                stopped_at = time.monotonic()
                time.sleep(2.0)
                redis_server.start()
                started_at = time.monotonic()
                time.sleep(2.5)
                worker_exited = not cluster.alive("worker")
                if worker_exited:  # see TestRedisRestarted: a supervisor would restart it
                    cluster.stop("worker")
                    cluster.start_worker("worker2")
            # Changes acknowledged while Redis was down: stored, and broadcast to nobody.
            while_down = sum(op.message is not None and stopped_at <= op.acked_at <= started_at
                             for c in team.clients.values() for op in c.changes)
            facts = {"made": changes_made(team.clients.values()), "while_down": while_down,
                     "worker_exited": worker_exited}
            outcome = finish("changes: restart Redis", team, facts, converge_timeout=8, notify_timeout=10,
                             **facts["made"], changes_while_down=while_down, worker_exited=int(worker_exited))
            outcome.facts["resync_newer"] = sum(c.resync_newer for c in team.clients.values())
            outcome.facts["health"] = [
                requests.get(f"{url}/healthz", timeout=5).status_code for url in cluster.servers.values()
            ]
            yield outcome

    def test_changes_were_made_while_redis_was_down(self, outcome):
        assert outcome.facts["while_down"] >= 5
        # Clients that stayed connected learnt of them by catching up: they replaced states
        # they held with newer ones from the pages.
        assert sum(c.gap_catch_ups() for c in outcome.team.clients.values()) >= 1
        assert outcome.facts["resync_newer"] >= 1
        assert outcome.facts["health"] == [200, 200]
