"""Presence and typing across real server processes sharing Redis and PostgreSQL.

Short presence settings (a socket expires 6 s after its server's last heartbeat, heartbeats
every second), so that a killed server's users go offline within seconds. Every wait polls
with a deadline; nothing sleeps a fixed time to let something happen.
"""
from __future__ import annotations

import itertools
import time

import pytest

from tests.integration.cluster import Listener, require_services, running_cluster

TTL = 6
ENV = {
    "PRESENCE_TTL_SECONDS": str(TTL),
    "PRESENCE_HEARTBEAT_SECONDS": "1",
    "PRESENCE_FLUSH_SECONDS": "0.5",
    "REGISTER_RATE_LIMIT": "1000 per hour",  # every test registers people of its own
}
_names = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Servers "a" and "b" (no worker: presence and typing need none) with short presence settings."""
    require_services()
    with running_cluster(tmp_path_factory.mktemp("presence"), worker=False, env=ENV) as cluster:
        yield cluster


class Tab(Listener):
    """A real Socket.IO client on one server recording `presence` and `typing` (handlers set before connecting)."""

    def __init__(self, url: str, token: str):
        super().__init__(url, token, events=("presence", "typing"))

    def of(self, name: str, **match) -> list[dict]:
        """Payloads of one event type whose fields include match."""
        with self._lock:
            return [d for e, d in self.events if e == name and all(d.get(k) == v for k, v in match.items())]

    def wait_for(self, name: str, timeout: float = 20.0, **match) -> list[dict]:
        """Poll until an event of the type matching match arrived; returns those received (maybe none)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(name, **match)
            if got:
                return got
            time.sleep(0.02)
        return self.of(name, **match)

    def call(self, event: str, data: dict) -> dict:
        """Emit with an ack and return it."""
        return self.client.call(event, data, timeout=10)


@pytest.fixture
def tabs():
    """Open Tabs on servers; every one is closed after the test."""
    opened: list[Tab] = []

    def _open(cluster, server: str, token: str) -> Tab:
        tab = Tab(cluster.servers[server], token)
        opened.append(tab)
        return tab

    yield _open
    for tab in opened:
        try:
            tab.close()
        except Exception:
            pass


def people(cluster, *roles: str) -> tuple[dict, int]:
    """Fresh users (registered on server a), all in one new room: {role: {"token", "id"}}, room id."""
    users = {}
    for role in roles:
        name = f"{role}{next(_names)}"
        token = cluster.register("a", name)
        me = cluster.api("a", token, "GET", "/me").json()
        users[role] = {"token": token, "id": me["id"], "username": name}
    owner = users[roles[0]]
    room = cluster.api("a", owner["token"], "POST", "/rooms", json={"name": f"room{next(_names)}"}).json()
    for role in roles[1:]:
        added = cluster.api("a", owner["token"], "POST", f"/rooms/{room['id']}/members",
                            json={"username": users[role]["username"]})
        assert added.status_code == 201, added.text
    return users, room["id"]


def presence_via(cluster, server: str, viewer: dict, user: dict) -> str | None:
    """The user's state as GET /api/v1/presence on one server tells the viewer."""
    response = cluster.api(server, viewer["token"], "GET", f"/presence?user_ids={user['id']}")
    assert response.status_code == 200, response.text
    found = response.json()["presence"]
    return found[0]["state"] if found else None


def wait_state(cluster, server: str, viewer: dict, user: dict, state: str, timeout: float = 20.0) -> str | None:
    """Poll GET /api/v1/presence until it says state (or the deadline passes); returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        got = presence_via(cluster, server, viewer, user)
        if got == state or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def states_of(tab: Tab, user: dict) -> list[str]:
    return [p["state"] for p in tab.of("presence", user_id=user["id"])]


def test_a_user_on_server_b_is_seen_on_server_a(cluster, tabs):
    users, _room = people(cluster, "alice", "bob")
    alice, bob = users["alice"], users["bob"]
    watcher = tabs(cluster, "a", bob["token"])
    assert presence_via(cluster, "a", bob, alice) == "offline"

    tab = tabs(cluster, "b", alice["token"])
    got = watcher.wait_for("presence", user_id=alice["id"], state="idle")
    assert got and got[0] == {"user_id": alice["id"], "state": "idle", "status_text": "", "status_emoji": "",
                              "dnd_until": None}
    assert presence_via(cluster, "a", bob, alice) == "idle"

    assert tab.call("activity", {}) == {"ok": True}
    assert watcher.wait_for("presence", user_id=alice["id"], state="active")
    assert presence_via(cluster, "a", bob, alice) == "active"

    tab.close()
    assert watcher.wait_for("presence", user_id=alice["id"], state="offline")
    assert wait_state(cluster, "a", bob, alice, "offline") == "offline"
    assert states_of(watcher, alice) == ["idle", "active", "offline"]


def test_presence_is_not_told_to_people_sharing_nothing(cluster, tabs):
    users, _room = people(cluster, "alice", "bob")
    loner, _ = people(cluster, "loner")
    alice, bob, loner = users["alice"], users["bob"], loner["loner"]
    outsider = tabs(cluster, "a", loner["token"])
    watcher = tabs(cluster, "a", bob["token"])
    tabs(cluster, "b", alice["token"])
    assert watcher.wait_for("presence", user_id=alice["id"], state="idle")
    # The flush that told bob is done; the loner's own idle came in the same or an earlier one.
    assert outsider.wait_for("presence", user_id=loner["id"])
    assert outsider.of("presence", user_id=alice["id"]) == []
    assert presence_via(cluster, "a", loner, alice) is None


def test_typing_crosses_servers_and_skips_every_tab_of_the_typist(cluster, tabs):
    users, room_id = people(cluster, "alice", "bob", "carol")
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    alice_a, alice_b = tabs(cluster, "a", alice["token"]), tabs(cluster, "b", alice["token"])
    bob_a, carol_b = tabs(cluster, "a", bob["token"]), tabs(cluster, "b", carol["token"])

    assert alice_b.call("typing", {"room_id": room_id, "thread_root_id": 77}) == {"ok": True}
    notice = {"room_id": room_id, "thread_root_id": 77, "stop": False,
              "user": {"id": alice["id"], "username": alice["username"], "display_name": alice["username"]}}
    assert bob_a.wait_for("typing") == [notice]
    assert carol_b.wait_for("typing") == [notice]

    # carol's notice leaves server b after alice's: once both of alice's tabs have carol's,
    # alice's own would have come before it had it been sent to them.
    assert carol_b.call("typing", {"room_id": room_id, "stop": True}) == {"ok": True}
    for tab in (alice_a, alice_b):
        got = tab.wait_for("typing", user={"id": carol["id"], "username": carol["username"],
                                           "display_name": carol["username"]})
        assert [t["stop"] for t in got] == [True]
        assert [t["user"]["id"] for t in tab.of("typing")] == [carol["id"]]


def test_typing_in_a_room_one_is_not_in_is_refused(cluster, tabs):
    users, room_id = people(cluster, "alice", "bob")
    outsiders, _ = people(cluster, "eve")
    eve = tabs(cluster, "b", outsiders["eve"]["token"])
    bob = tabs(cluster, "a", users["bob"]["token"])
    ack = eve.call("typing", {"room_id": room_id})
    assert ack["ok"] is False and ack["error"]["code"] == "not_member"  # a public room
    # A notice from bob after eve's: once alice sees bob's, eve's would have arrived first.
    alice = tabs(cluster, "b", users["alice"]["token"])
    assert bob.call("typing", {"room_id": room_id}) == {"ok": True}
    got = alice.wait_for("typing")
    assert [t["user"]["id"] for t in got] == [users["bob"]["id"]]


def test_many_tabs_opened_and_closed_quickly_make_one_presence_event(cluster, tabs):
    """Twenty tabs over both servers, each opened before the previous one closes: the user is
    never without a socket, so those who watch hear "idle" once, then "offline" at the end."""
    users, _room = people(cluster, "alice", "bob")
    alice, bob = users["alice"], users["bob"]
    watcher = tabs(cluster, "a", bob["token"])
    current = tabs(cluster, "a", alice["token"])
    # Seen online first: otherwise a churn quicker than one flush is rightly told as one "offline".
    assert watcher.wait_for("presence", user_id=alice["id"], state="idle")
    for i in range(20):
        following = tabs(cluster, "ab"[i % 2], alice["token"])
        current.close()
        current = following
    current.close()
    assert watcher.wait_for("presence", user_id=alice["id"], state="offline")
    assert states_of(watcher, alice) == ["idle", "offline"]


def test_a_killed_servers_users_go_offline_within_the_expiry(cluster, tabs):
    users, _room = people(cluster, "alice", "bob")
    alice, bob = users["alice"], users["bob"]
    watcher = tabs(cluster, "a", bob["token"])
    tabs(cluster, "b", alice["token"])
    assert watcher.wait_for("presence", user_id=alice["id"], state="idle")
    try:
        killed_at = time.monotonic()
        cluster.kill("b")
        assert presence_via(cluster, "a", bob, alice) == "idle"  # until the expiry
        got = watcher.wait_for("presence", timeout=TTL + 30, user_id=alice["id"], state="offline")
        took = time.monotonic() - killed_at
        assert got, f"alice never went offline:\n{cluster.log('a')[-3000:]}"
        # The last heartbeat was at most a second before the kill; the sweep runs every flush.
        assert took < TTL + 10, took
        assert presence_via(cluster, "a", bob, alice) == "offline"
        assert states_of(watcher, alice) == ["idle", "offline"]
    finally:
        cluster.start_server("b")
