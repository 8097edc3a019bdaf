"""Engine.IO's heartbeat on a real eventlet server, whose pings go out from hub timers (wsgi.py).

With a one-second interval: a client that answers keeps getting pings and stays connected,
one that stops answering is closed, and the ping_interval and ping_timeout settings reach
the handshake.
"""
from __future__ import annotations

import json
import time

import pytest
import requests
import socketio
import websocket

from tests.integration.cluster import alice_and_bob_in_general, embedded_env, embedded_server, free_port, migrate

PASSWORD = "heartbeat-pw-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("heartbeat")
    env = embedded_env(tmp / "heartbeat.db", free_port(), SECRET_KEY="heartbeat-secret",
                       SOCKETIO_PING_INTERVAL=1, SOCKETIO_PING_TIMEOUT=1)
    migrate(env)
    with embedded_server(env, tmp / "server.log") as running:
        tokens, room_id = alice_and_bob_in_general(running["url"], PASSWORD)
        yield {**running, "tokens": tokens, "room_id": room_id}


def open_logged_in(server) -> tuple[websocket.WebSocket, dict]:
    """A raw websocket, Engine.IO handshake read and Socket.IO namespace joined with a token."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{server['port']}/socket.io/?EIO=4&transport=websocket",
                                     timeout=10)
    opened = ws.recv()
    assert opened.startswith("0"), opened
    ws.send("40" + json.dumps({"token": server["tokens"]["bob"]}))
    assert ws.recv().startswith("40{"), "logged in"
    return ws, json.loads(opened[1:])


def test_pings_keep_coming_while_answered_and_a_silent_client_is_closed(server):
    ws, handshake = open_logged_in(server)
    assert (handshake["pingInterval"], handshake["pingTimeout"]) == (1000, 1000)
    pings, started = 0, time.monotonic()
    ws.settimeout(3)
    while time.monotonic() - started < 4.5:
        frame = ws.recv()
        if frame == "2":
            pings += 1
            ws.send("3")
    assert 3 <= pings <= 6, pings
    # Now silent: the next ping goes unanswered and the server closes the socket.
    silent_since, closed_after = time.monotonic(), None
    ws.settimeout(1)
    while time.monotonic() - silent_since < 8:
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketException, ConnectionError, OSError):
            frame = ""
        if frame in ("", None, "1"):
            closed_after = time.monotonic() - silent_since
            break
    assert closed_after is not None and closed_after < 5, closed_after


def test_a_client_answering_pings_stays_connected_and_can_send(server):
    client = socketio.Client(reconnection=False)
    client.connect(server["url"], auth={"token": server["tokens"]["alice"]}, transports=["websocket"], wait_timeout=10)
    try:
        time.sleep(4)  # four pings; a client that misses them for 2 s drops the connection itself
        assert client.connected
        ack = client.call("send", {"room_id": server["room_id"], "body": "still here"}, timeout=10)
        assert ack["ok"] is True and ack["message"]["body"] == "still here"
    finally:
        client.disconnect()
    assert requests.get(f"{server['url']}/healthz", timeout=5).status_code == 200
