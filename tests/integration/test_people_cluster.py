"""Direct messages and wildcard mentions on the real engines: two eventlet servers, a Celery
worker, Redis and PostgreSQL.

- Two first requests for the same DM, one to each server at the same moment, make one room.
- A DM message reaches the other person's socket on the other server, and the worker
  notifies them once, as `dm`, also when it mentions them.
- @room and @here notifications are exactly right through the worker: @here reads presence
  from Redis, where the servers keep it (a user connected to either server is present).
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.integration.cluster import Cluster, require_services, running_cluster

ENV = {"RATELIMIT_ENABLED": "0", "MENTION_SWEEP_SECONDS": "1"}
SETTLE = 30


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Servers a and b and a worker."""
    require_services()
    with running_cluster(tmp_path_factory.mktemp("people"), servers=("a", "b"), env=ENV) as cluster:
        yield cluster


class People:
    """Users with tokens, each registered on one of the servers."""

    def __init__(self, cluster: Cluster, *shorts: str):
        self.cluster = cluster
        prefix = uuid.uuid4().hex[:6]
        self.names = {short: f"{short}_{prefix}" for short in shorts}
        self.tokens = {short: cluster.register("a", name) for short, name in self.names.items()}
        self.ids = {short: self.api(short, "a", "GET", "/me").json()["id"] for short in shorts}

    def api(self, short: str, server: str, method: str, path: str, **kwargs):
        return self.cluster.api(server, self.tokens[short], method, path, **kwargs)

    def send(self, short: str, room_id: int, body: str) -> int:
        sent = self.api(short, "a", "POST", f"/rooms/{room_id}/messages",
                        json={"body": body, "client_id": uuid.uuid4().hex})
        assert sent.status_code == 201, sent.text
        return sent.json()["id"]


def notifications_of(cluster: Cluster, message_id: int, want: int, timeout: float = SETTLE) -> list[tuple[int, str]]:
    """(user id, kind) of a message's notifications once at least `want` exist and the message
    is marked handled (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.sql("SELECT user_id, kind FROM notifications WHERE message_id = %s ORDER BY user_id",
                           message_id)
        handled = cluster.sql("SELECT notified_at IS NOT NULL FROM messages WHERE id = %s", message_id)[0][0]
        if (len(rows) >= want and handled) or time.monotonic() > deadline:
            return [tuple(r) for r in rows]
        time.sleep(0.1)


def test_one_dm_from_two_servers_at_once(cluster):
    """Both ends open the conversation at the same moment, each on a server of its own."""
    rounds = 12
    people = People(cluster, *(f"p{i}" for i in range(2 * rounds)))
    results: dict[int, list] = {i: [None, None] for i in range(rounds)}
    barrier = threading.Barrier(2 * rounds)

    def open_from(i: int, side: int) -> None:
        me, other = (f"p{2 * i}", f"p{2 * i + 1}") if side == 0 else (f"p{2 * i + 1}", f"p{2 * i}")
        barrier.wait()
        response = people.api(me, "ab"[side], "POST", "/dms", json={"usernames": [people.names[other]]})
        results[i][side] = (response.status_code, response.json())

    threads = [threading.Thread(target=open_from, args=(i, side)) for i in range(rounds) for side in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for i, (first, second) in results.items():
        assert first and second, f"round {i} did not answer"
        assert first[1]["id"] == second[1]["id"], f"round {i}: two rooms {first[1]['id']} and {second[1]['id']}"
        assert sorted((first[0], second[0])) == [200, 201], (first, second)  # one made it, one found it
        key = ",".join(str(x) for x in sorted((people.ids[f"p{2 * i}"], people.ids[f"p{2 * i + 1}"])))
        assert cluster.sql("SELECT count(*) FROM rooms WHERE dm_key = %s", key)[0][0] == 1
        assert cluster.sql("SELECT count(*) FROM memberships WHERE room_id = %s", first[1]["id"])[0][0] == 2


def test_a_dm_message_crosses_servers_and_notifies_once_through_the_worker(cluster):
    people = People(cluster, "ann", "ben", "cid")
    dm = people.api("ann", "a", "POST", "/dms", json={"usernames": [people.names["ben"], people.names["cid"]]})
    assert dm.status_code == 201, dm.text
    room_id = dm.json()["id"]
    ben = cluster.connect("b", people.tokens["ben"])  # on the other server
    try:
        plain = people.send("ann", room_id, "hello you two")
        mention = people.send("ann", room_id, f"@{people.names['ben']} especially you")
        got = ben.wait_for("message", 2)
        assert {m["id"] for m in got} >= {plain, mention}
        assert notifications_of(cluster, plain, 2) == sorted([(people.ids["ben"], "dm"), (people.ids["cid"], "dm")])
        assert notifications_of(cluster, mention, 2) == sorted([(people.ids["ben"], "dm"), (people.ids["cid"], "dm")])
        pushed = ben.wait_for("notification", 2)
        assert sorted(n["message"]["id"] for n in pushed) == sorted([plain, mention])
        assert {n["kind"] for n in pushed} == {"dm"}
    finally:
        ben.close()


def test_room_and_here_notifications_are_exact_through_the_worker(cluster):
    people = People(cluster, "own", "on_a", "on_b", "away", "left")
    created = people.api("own", "a", "POST", "/rooms", json={"name": f"all-hands-{uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    room_id = created.json()["id"]
    for short in ("on_a", "on_b", "away", "left"):
        added = people.api("own", "a", "POST", f"/rooms/{room_id}/members", json={"username": people.names[short]})
        assert added.status_code == 201, added.text
    assert people.api("left", "a", "DELETE", f"/rooms/{room_id}/members/me").status_code == 204
    on_a = cluster.connect("a", people.tokens["on_a"])
    on_b = cluster.connect("b", people.tokens["on_b"])
    try:
        # Both present, each through a server of their own (presence lives in Redis).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = people.api("own", "a", "GET", "/presence",
                                params={"user_ids": f"{people.ids['on_a']},{people.ids['on_b']}"}).json()
            if all(p["state"] != "offline" for p in states.get("presence", [])) and len(states["presence"]) == 2:
                break
            time.sleep(0.1)
        here = people.send("own", room_id, "@here quick sync?")
        everyone = people.send("own", room_id, f"@room release today; @{people.names['on_b']} drives")
        assert notifications_of(cluster, here, 2) == sorted([(people.ids["on_a"], "wildcard"),
                                                             (people.ids["on_b"], "wildcard")])
        assert notifications_of(cluster, everyone, 3) == sorted([
            (people.ids["on_a"], "wildcard"), (people.ids["on_b"], "mention"), (people.ids["away"], "wildcard")])
        # Nothing more arrives later (a rerun by the sweep adds nothing).
        time.sleep(2)
        assert len(cluster.sql("SELECT 1 FROM notifications WHERE message_id IN (%s, %s)", here, everyone)) == 5
    finally:
        on_a.close()
        on_b.close()
