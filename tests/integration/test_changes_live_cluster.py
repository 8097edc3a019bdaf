"""A busy room on two servers, no faults: the grace window absorbs reordering.

Six users, on servers a and b by turns, send, edit, delete and react in one room every
100-200 ms each, through `ReliableClient`; four more clients (two per server) of the same
users only listen. With two server processes a broadcast can overtake the one before it (the
two are published by different processes), so a client often sees a rev skip one; the
missing rev arrives milliseconds later, within the grace window, and nothing is fetched.
The test counts the catch-ups that are not the one after connecting (a gap that outlived
the window, or a head past the cursor) per 1,000 live deliveries, and asks for fewer than
one; then every client must hold every message exactly as PostgreSQL does.

`pytest -s` prints the figures: deliveries, catch-ups, deliveries that came after a later
rev, gaps opened (what a client without a grace window would have fetched) and how long the
longest gap stayed open.
"""
from __future__ import annotations

import time

import pytest

from tests.integration.client import ReliableClient, wait_for
from tests.integration.cluster import require_services, running_cluster
from tests.integration.test_changes_live_faults import ChangeTraffic, change_problems, changes_made
from tests.integration.test_faults import cluster_log_errors, stored_states

USERS = ["u0", "u1", "u2", "u3", "u4", "u5"]
LISTENERS = {"u0-b": ("u0", "b"), "u1-a": ("u1", "a"), "u2-b": ("u2", "b"), "u3-a": ("u3", "a")}
RUN_SECONDS = 12


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """The run: the cluster, the active clients, the listening ones, and what happened."""
    require_services()
    with running_cluster(tmp_path_factory.mktemp("busy-room"), env={"RATELIMIT_ENABLED": "0"}) as cluster:
        tokens = {short: cluster.register("a", f"busy_{short}") for short in USERS}
        user_ids = {short: cluster.api("a", tokens[short], "GET", "/me").json()["id"] for short in USERS}
        room = cluster.api("a", tokens["u0"], "POST", "/rooms", json={"name": "busy"}).json()["id"]
        for short in USERS[1:]:
            r = cluster.api("a", tokens["u0"], "POST", f"/rooms/{room}/members", json={"username": f"busy_{short}"})
            assert r.status_code == 201, r.text
        active = {short: ReliableClient(short, user_ids[short], tokens[short], [cluster.servers["ab"[i % 2]]], [room])
                  for i, short in enumerate(USERS)}
        listening = {name: ReliableClient(name, user_ids[short], tokens[short], [cluster.servers[server]], [room])
                     for name, (short, server) in LISTENERS.items()}
        clients = {**active, **listening}
        try:
            for client in clients.values():
                client.start()
            assert all(c.wait_until(lambda c=c: c.connected, 20) for c in clients.values())
            traffic = ChangeTraffic(active, {room: USERS}, {short: f"busy_{short}" for short in USERS},
                                    seed=21, every=(0.1, 0.2), sends=0.45)
            with traffic:
                time.sleep(RUN_SECONDS)
            drained = all(c.wait_until(c.idle, 30) for c in clients.values())
            stored = []

            def converged():
                stored[:] = stored_states(cluster, room)
                return all(c.states(room) == stored for c in clients.values())

            wait_for(converged, 10)
            result = {"cluster": cluster, "room": room, "active": active, "clients": clients, "drained": drained,
                      "stored": stored, "made": changes_made(active.values())}
            print(figures(result))
            yield result
        finally:
            for client in clients.values():
                client.stop()


def figures(run: dict) -> str:
    """One line: deliveries, catch-ups and their rate, reordering, gaps and their longest wait."""
    clients = run["clients"].values()
    deliveries = sum(c.deliveries for c in clients)
    catch_ups = sum(c.gap_catch_ups() for c in clients)
    waits = sorted(w for c in clients for w in c.gap_waits)
    made = " ".join(f"{k}={v}" for k, v in run["made"].items())
    return (f"[busy room, two servers] clients={len(clients)} messages={len(run['stored'])} {made} "
            f"deliveries={deliveries} catch_ups={catch_ups} "
            f"per_1000_deliveries={1000 * catch_ups / max(deliveries, 1):.2f} "
            f"after_connect={sum(c.catch_ups['connect'] for c in clients)} "
            f"late_deliveries={sum(c.late_live for c in clients)} gaps_opened={sum(c.gaps_opened for c in clients)} "
            f"longest_gap_ms={1000 * (waits[-1] if waits else 0):.0f}")


def test_the_grace_window_absorbs_reordering(busy):
    """Fewer than one catch-up per 1,000 deliveries when nothing fails, though revs do arrive
    out of order (gaps open and close within the window)."""
    clients = busy["clients"].values()
    deliveries = sum(c.deliveries for c in clients)
    catch_ups = sum(c.gap_catch_ups() for c in clients)
    assert deliveries >= 3000, figures(busy)
    assert 1000 * catch_ups / deliveries < 1, figures(busy)
    assert all(c.catch_ups["connect"] == 1 and c.connects == 1 for c in clients), figures(busy)


def test_every_client_holds_every_message_as_stored(busy):
    assert busy["drained"]
    made = busy["made"]
    assert made["edits"] >= 50 and made["reactions"] >= 100 and made["deletes"] >= 5, made
    for name, client in busy["clients"].items():
        assert client.states(busy["room"]) == busy["stored"], name
        assert client.problems == [], name


def test_every_change_is_stored_as_acknowledged(busy):
    assert change_problems(busy["cluster"], busy["active"].values()) == []


def test_no_process_logged_an_error(busy):
    assert cluster_log_errors(busy["cluster"], ["a", "b", "worker"]) == {}
