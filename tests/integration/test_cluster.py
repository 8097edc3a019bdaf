"""Two server processes and a Celery worker share rooms through Redis and PostgreSQL."""
import time
import uuid

import pytest
import requests

SETTLE = 0.7  # seconds to wait for anything that should NOT arrive


@pytest.fixture(scope="module")
def team(cluster):
    """alice, bob and carol in #general (alice's); dave in no room. Sockets spread over a and b."""
    tokens = {name: cluster.register("a", name) for name in ("alice", "bob", "carol", "dave")}
    r = cluster.api("a", tokens["alice"], "POST", "/rooms", json={"name": "general"})
    assert r.status_code == 201, r.text
    room_id = r.json()["id"]
    for name in ("bob", "carol"):
        r = cluster.api("a", tokens["alice"], "POST", f"/rooms/{room_id}/members", json={"username": name})
        assert r.status_code == 201, r.text
    sockets = {
        "alice@a": cluster.connect("a", tokens["alice"]),
        "alice@b": cluster.connect("b", tokens["alice"]),
        "bob@b": cluster.connect("b", tokens["bob"]),
        "carol@a": cluster.connect("a", tokens["carol"]),
        "dave@a": cluster.connect("a", tokens["dave"]),
        "dave@b": cluster.connect("b", tokens["dave"]),
    }
    yield {"tokens": tokens, "room_id": room_id, "sockets": sockets}
    for listener in sockets.values():
        listener.close()


def bodies(listener, body):
    return [m for m in listener.of("message") if m["body"] == body]


def test_socket_send_on_a_reaches_every_member_on_both_servers_once(team):
    s, room_id = team["sockets"], team["room_id"]
    body = f"Hello team {uuid.uuid4().hex[:6]}"
    ack = s["alice@a"].send(room_id, body, client_id=uuid.uuid4().hex)
    assert ack["ok"] is True, ack
    for name in ("alice@a", "alice@b", "bob@b", "carol@a"):
        deadline = time.monotonic() + 10
        while not bodies(s[name], body) and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(SETTLE)
    for name in ("alice@a", "alice@b", "bob@b", "carol@a"):
        got = bodies(s[name], body)
        assert len(got) == 1, f"{name} received {len(got)} copies"
        assert got[0]["id"] == ack["message"]["id"]
    for name in ("dave@a", "dave@b"):
        assert s[name].of("message") == []


def test_rest_post_on_b_broadcasts_to_sockets_on_a(cluster, team):
    s, room_id = team["sockets"], team["room_id"]
    body = f"from the API {uuid.uuid4().hex[:6]}"
    r = cluster.api("b", team["tokens"]["carol"], "POST", f"/rooms/{room_id}/messages",
                    json={"body": body, "client_id": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    for name in ("alice@a", "carol@a", "bob@b", "alice@b"):
        deadline = time.monotonic() + 10
        while not bodies(s[name], body) and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(SETTLE)
    for name in ("alice@a", "carol@a", "bob@b", "alice@b"):
        assert [m["id"] for m in bodies(s[name], body)] == [r.json()["id"]], name
    assert s["dave@a"].of("message") == [] and s["dave@b"].of("message") == []


def test_mention_notification_comes_from_the_worker_to_the_other_server(cluster, team):
    s, room_id = team["sockets"], team["room_id"]
    before = {name: len(listener.of("notification")) for name, listener in s.items()}
    ack = s["alice@a"].send(room_id, "@bob please review", client_id=uuid.uuid4().hex)
    assert ack["ok"] is True and ack["message"]["mentions"] == ["bob"]
    notes = s["bob@b"].wait_for("notification", before["bob@b"] + 1, timeout=15)
    time.sleep(SETTLE)
    new = notes[before["bob@b"]:]
    assert len(new) == 1, new
    assert new[0]["message"]["id"] == ack["message"]["id"] and new[0]["kind"] == "mention"
    for name in ("alice@a", "alice@b", "carol@a", "dave@a", "dave@b"):
        assert len(s[name].of("notification")) == before[name], name
    rows = cluster.sql(
        "SELECT n.user_id, u.username FROM notifications n JOIN users u ON u.id = n.user_id WHERE n.message_id = %s",
        ack["message"]["id"],
    )
    assert [r[1] for r in rows] == ["bob"]
    assert "chorus.notify_mentions" in cluster.log("worker")


def test_non_members_on_either_server_received_nothing(team):
    for name in ("dave@a", "dave@b"):
        assert team["sockets"][name].of("message") == []
        assert team["sockets"][name].of("notification") == []


def test_leaving_on_one_server_unsubscribes_sockets_on_the_other(cluster, team):
    s, room_id, tokens = team["sockets"], team["room_id"], team["tokens"]
    r = cluster.api("a", tokens["carol"], "DELETE", f"/rooms/{room_id}/members/me")
    assert r.status_code == 204
    carol_b = cluster.connect("b", tokens["carol"])  # connects after leaving: not subscribed either
    try:
        time.sleep(SETTLE)
        body = f"after carol left {uuid.uuid4().hex[:6]}"
        assert s["alice@b"].send(room_id, body, client_id=uuid.uuid4().hex)["ok"] is True
        assert len(s["bob@b"].wait_for("message", len(s["bob@b"].of("message")), timeout=1)) >= 1
        deadline = time.monotonic() + 10
        while not bodies(s["bob@b"], body) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(SETTLE)
        assert len(bodies(s["bob@b"], body)) == 1
        assert bodies(s["carol@a"], body) == [] and bodies(carol_b, body) == []
        # Joining again subscribes carol's live sockets on both servers at once.
        r = cluster.api("b", tokens["carol"], "POST", f"/rooms/{room_id}/members", json={})
        assert r.status_code == 200, r.text
        time.sleep(SETTLE)
        body = f"welcome back {uuid.uuid4().hex[:6]}"
        assert s["alice@a"].send(room_id, body, client_id=uuid.uuid4().hex)["ok"] is True
        for listener in (s["carol@a"], carol_b):
            deadline = time.monotonic() + 10
            while not bodies(listener, body) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(bodies(listener, body)) == 1
    finally:
        carol_b.close()


def test_health_and_metrics_on_each_server(cluster):
    for url in cluster.servers.values():
        health = requests.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200
        assert health.json()["checks"] == {"database": "ok", "redis": "ok"}
        text = requests.get(f"{url}/metrics", timeout=5).text
        assert "chorus_connected_sockets" in text and "chorus_events_emitted_total" in text


def test_no_process_logged_an_error(cluster, team):
    # Runs last in this module: every process so far served without a traceback.
    for name in ("a", "b", "worker"):
        log = cluster.log(name)
        assert "Traceback" not in log and " raised: " not in log, f"{name}:\n{log[-3000:]}"
