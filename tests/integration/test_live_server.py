"""A real embedded-mode server: origins, oversized socket frames, hostile payloads."""
import time

import pytest
import requests
import socketio

from tests.integration.cluster import ROOT, alice_and_bob_in_general, embedded_env, embedded_server, free_port, migrate

PASSWORD = "live-server-pw-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """wsgi.py (eventlet) on SQLite, no Redis: the embedded mode as `make run` serves it."""
    tmp = tmp_path_factory.mktemp("live")
    env = embedded_env(tmp / "live.db", free_port(), SECRET_KEY="live-server-secret")
    migrate(env)
    with embedded_server(env, tmp / "server.log") as running:
        tokens, room_id = alice_and_bob_in_general(running["url"], PASSWORD)
        url = running["url"]
        yield {"url": url, "tokens": tokens, "room_id": room_id, "proc": running["proc"]}


def connect(server, name, transports=("websocket",), **kwargs):
    client = socketio.Client(reconnection=False)
    client.connect(server["url"], auth={"token": server["tokens"][name]}, transports=list(transports),
                   wait_timeout=10, **kwargs)
    return client


def test_sockets_from_a_foreign_origin_are_refused(server):
    # Long-polling sends exactly the Origin given (the websocket client adds one of its own).
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(server, "alice", transports=["polling"], headers={"Origin": "https://evil.example"})
    same = connect(server, "alice", transports=["polling"], headers={"Origin": server["url"]})
    assert same.connected
    same.disconnect()


def test_an_oversized_frame_drops_only_that_socket(server):
    received = []
    bob = connect(server, "bob")
    bob.on("message", lambda data: received.append(data["body"]))
    alice = connect(server, "alice")
    alice.emit("send", {"room_id": server["room_id"], "body": "x" * 200_000, "client_id": "huge"})
    deadline = time.monotonic() + 10
    while alice.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alice.connected  # the server closed the socket that sent 200 kB
    other = connect(server, "alice")
    ack = other.call("send", {"room_id": server["room_id"], "body": "still here", "client_id": "after"}, timeout=10)
    assert ack["ok"] is True
    deadline = time.monotonic() + 5
    while "still here" not in received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received == ["still here"] and bob.connected
    other.disconnect()
    bob.disconnect()


@pytest.mark.parametrize("payload", [
    None, 7, "text", [1, 2], {"room_id": None}, {"room_id": "1", "body": "x"}, {"room_id": 1.5, "body": "x"},
    {"room_id": 10**30, "body": "x"}, {"room_id": -1, "body": "x"}, {"room_id": True, "body": "x"},
    {"room_id": 1, "body": {"nested": ["junk", {"deeper": 1}]}}, {"room_id": 1, "body": ["x"]},
    {"room_id": 1, "body": "x", "client_id": "y" * 500}, {"room_id": 1, "body": "x" * 4001},
])
def test_malformed_sends_get_an_error_ack_and_the_server_keeps_serving(server, payload):
    alice = connect(server, "alice")
    ack = alice.call("send", payload, timeout=10)
    assert ack["ok"] is False and set(ack["error"]) >= {"code", "message"}
    assert ack["error"]["code"] in {"invalid", "too_large", "not_found"}
    assert requests.get(f"{server['url']}/healthz", timeout=5).status_code == 200
    alice.disconnect()
    assert server["proc"].poll() is None


# --- The HTTP handler with small per-connection buffers (wsgi.py) -----------------------------

def test_long_headers_large_bodies_and_large_responses_pass_whole(server):
    """Requests are read through a 512-byte buffer; responses keep the 16 KiB writer."""
    url, token = server["url"], server["tokens"]["alice"]
    session = requests.Session()  # one keep-alive connection for every request below
    headers = {"Authorization": f"Bearer {token}", "X-Padding": "p" * 6000}
    body = "x" * 3999 + "é"
    sent = session.post(f"{url}/api/v1/rooms/{server['room_id']}/messages", json={"body": body}, headers=headers)
    assert sent.status_code == 201, sent.text
    assert sent.json()["body"] == body
    page = session.get(f"{url}/api/v1/rooms/{server['room_id']}/messages?limit=200", headers=headers)
    assert page.status_code == 200 and page.json()["messages"][-1]["body"] == body
    script = session.get(f"{url}/static/js/room.js")
    assert script.status_code == 200 and script.content == (ROOT / "static/js/room.js").read_bytes()
    too_big = session.post(f"{url}/api/v1/rooms/{server['room_id']}/messages", data="{" + " " * 70000 + "}",
                           headers={**headers, "Content-Type": "application/json"})
    assert too_big.status_code == 413


def test_sockets_work_over_polling_upgrades_and_after_a_refused_handshake(server):
    refused = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(server["url"], auth={"token": "not-a-token"}, transports=["websocket"], wait_timeout=5)
    got = []
    bob = connect(server, "bob", transports=("polling", "websocket"))
    alice = connect(server, "alice")
    try:
        bob.on("message", got.append)
        ack = alice.call("send", {"room_id": server["room_id"], "body": "through both transports"}, timeout=10)
        assert ack["ok"] is True
        deadline = time.monotonic() + 5
        while not any(m["id"] == ack["message"]["id"] for m in got) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m["body"] for m in got if m["id"] == ack["message"]["id"]] == ["through both transports"]
    finally:
        bob.disconnect()
        alice.disconnect()


def test_startup_objects_are_kept_out_of_garbage_collections_and_pauses_are_measured(server):
    # A full collection used to walk every object built at start-up (~170,000), stopping
    # the whole process for 60-130 ms every 10-15 s under load (docs/BENCHMARKS.md).
    text = requests.get(f"{server['url']}/metrics", timeout=5).text
    frozen = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("chorus_gc_frozen_objects ")]
    assert frozen and frozen[0] > 50_000, text[:2000]
    assert 'chorus_gc_pause_seconds_count{generation="0"}' in text
