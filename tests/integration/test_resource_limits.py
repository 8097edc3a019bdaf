"""One client must not use up a real eventlet server: deadlines, header and body timeouts, per-address caps.

The server runs with deadlines of about a second so that the tests stay quick. The whole
127.0.0.0/8 is loopback: a client socket bound to 127.0.0.x is another client address.
"""
import http.client
import json
import shutil
import socket
import time
from contextlib import contextmanager

import pytest
import socketio
import websocket

from tests.integration.cluster import alice_and_bob_in_general, embedded_env, embedded_server, free_port, migrate

PASSWORD = "resource-limits-pw-1"
AUTH_TIMEOUT = 1.0
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 2.0  # longer than the header timeout, to tell the two apart
PER_ADDRESS = 8
WAITING_PER_ADDRESS = 3
POOL = 40  # MAX_CONNECTIONS: the eventlet server's connection slots
# A deadline of d seconds is met when the server acts within d plus this much.
SLACK = 2.0


SETTINGS = {
    "SOCKET_AUTH_TIMEOUT": AUTH_TIMEOUT, "HTTP_HEADER_TIMEOUT": HEADER_TIMEOUT, "HTTP_BODY_TIMEOUT": BODY_TIMEOUT,
    "HTTP_KEEPALIVE_TIMEOUT": KEEPALIVE_TIMEOUT, "MAX_CONNECTIONS_PER_ADDRESS": PER_ADDRESS,
    "MAX_UNAUTHENTICATED_SOCKETS_PER_ADDRESS": WAITING_PER_ADDRESS, "MAX_CONNECTIONS": POOL, "TRUSTED_PROXIES": 0,
}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """An empty, migrated SQLite database that each server starts from a copy of."""
    path = tmp_path_factory.mktemp("schema") / "schema.db"
    migrate(embedded_env(path, 0, SECRET_KEY="resource-limits-secret-0123456789abcdef"))
    return path


@contextmanager
def running_server(tmp, migrated, **settings):
    """wsgi.py in the embedded mode with `settings` over SETTINGS, and two users in one room."""
    shutil.copyfile(migrated, tmp / "limits.db")
    env = embedded_env(tmp / "limits.db", free_port(), SECRET_KEY="resource-limits-secret-0123456789abcdef",
                       **{**SETTINGS, **settings})
    with embedded_server(env, tmp / "server.log") as running:
        tokens, room_id = alice_and_bob_in_general(running["url"], PASSWORD)
        yield {**running, "tokens": tokens, "room_id": room_id}

@pytest.fixture(scope="module")
def server(tmp_path_factory, migrated):
    """The eventlet server as `make run` serves it, with short deadlines and small caps."""
    with running_server(tmp_path_factory.mktemp("limits"), migrated) as running:
        yield running


# --- helpers -------------------------------------------------------------------------------

def tcp(server, source="127.0.0.1", timeout=5.0) -> socket.socket:
    """A TCP connection to the server from `source`."""
    sock = socket.create_connection(("127.0.0.1", server["port"]), timeout=timeout, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Read until the server closes; the seconds that took, or None if it was still open after `seconds`."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def http_get(server, path, source="127.0.0.1", timeout=5.0, method="GET", body=None, headers=None):
    """One request on its own connection from `source`: (status, parsed JSON body or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=timeout, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read().decode()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data
    finally:
        conn.close()


def eio_packets(body: str) -> list[str]:
    return body.split("\x1e")


def polling_handshake(server, source) -> tuple[int, str | dict]:
    """GET /socket.io/?EIO=4&transport=polling without a sid: (status, sid or the error body)."""
    status, body = http_get(server, "/socket.io/?EIO=4&transport=polling", source=source)
    if status != 200:
        return status, body
    assert body.startswith("0"), body
    return status, json.loads(body[1:])["sid"]


def poll(server, sid, source, timeout=10.0) -> tuple[int, str]:
    return http_get(server, f"/socket.io/?EIO=4&transport=polling&sid={sid}", source=source, timeout=timeout)


def post_packet(server, sid, source, packet: str) -> int:
    status, _ = http_get(server, f"/socket.io/?EIO=4&transport=polling&sid={sid}", source=source,
                         method="POST", body=packet.encode(), headers={"Content-Type": "text/plain;charset=UTF-8"})
    return status


def raw_websocket(server, source, query="EIO=4&transport=websocket") -> websocket.WebSocket:
    """A websocket from `source` that has read the Engine.IO OPEN packet."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{server['port']}/socket.io/?{query}",
                                     socket=tcp(server, source), timeout=5)
    opened = ws.recv()
    assert opened.startswith("0"), opened
    return ws


def websocket_closed_within(ws: websocket.WebSocket, seconds: float) -> float | None:
    """Seconds until the server closed the websocket (answering pings meanwhile), or None."""
    start = time.monotonic()
    ws.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return time.monotonic() - start
        if frame == "2":
            ws.send("3")
        elif frame in ("", "1", None):
            return time.monotonic() - start
    return None


def connect(server, name, transports=("websocket",)) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(server["url"], auth={"token": server["tokens"][name]}, transports=list(transports),
                   wait_timeout=10)
    return client


def healthz_seconds(server, source="127.0.0.1", timeout=10.0) -> float:
    start = time.monotonic()
    status, _ = http_get(server, "/healthz", source=source, timeout=timeout)
    assert status == 200
    return time.monotonic() - start


# --- the Socket.IO login deadline ------------------------------------------------------------

def test_a_websocket_that_never_logs_in_is_closed_within_the_deadline(server):
    ws = raw_websocket(server, "127.0.0.4")
    took = websocket_closed_within(ws, AUTH_TIMEOUT + SLACK)
    assert took is not None, "the server kept a websocket that never sent the Socket.IO CONNECT"
    assert took >= AUTH_TIMEOUT * 0.5


def test_a_polling_session_that_never_logs_in_is_closed_within_the_deadline(server):
    status, sid = polling_handshake(server, "127.0.0.4")
    assert status == 200
    start = time.monotonic()
    try:
        status, body = poll(server, sid, "127.0.0.4", timeout=AUTH_TIMEOUT + SLACK)
    except socket.timeout:
        pytest.fail("the server kept a polling session that never sent the Socket.IO CONNECT")
    assert "1" in eio_packets(body) or status == 400  # CLOSE, or the session is gone already
    assert time.monotonic() - start <= AUTH_TIMEOUT + SLACK


def test_a_refused_login_does_not_keep_the_session_open(server):
    ws = raw_websocket(server, "127.0.0.4")
    ws.send('40{"token": "not-a-token"}')
    assert ws.recv().startswith("44")  # connect_error: refused, but the Engine.IO session stays
    assert websocket_closed_within(ws, AUTH_TIMEOUT + SLACK) is not None


def test_a_session_that_leaves_the_namespace_gets_the_deadline_too(server):
    ws = raw_websocket(server, "127.0.0.4")
    ws.send(json.dumps({"token": server["tokens"]["bob"]}).join(["40", ""]))
    assert ws.recv().startswith("40")  # connected
    ws.send("41")  # leave the namespace, keep the Engine.IO session
    # Found by the periodic pass over every session (every max(1 s, the deadline)), then the deadline.
    assert websocket_closed_within(ws, 2 * max(1.0, AUTH_TIMEOUT) + SLACK) is not None


def test_logged_in_sockets_stay_connected_well_past_every_deadline(server):
    """An idle websocket and a long-polling client outlive the login, header, body and keep-alive timeouts."""
    got = []
    bob = connect(server, "bob", transports=("polling",))
    bob.on("message", lambda data: got.append(data["body"]))
    alice = connect(server, "alice")
    try:
        time.sleep(2.5 * max(AUTH_TIMEOUT, HEADER_TIMEOUT, BODY_TIMEOUT, KEEPALIVE_TIMEOUT))
        assert alice.connected and bob.connected
        # Bob's GET has been waiting since before the sleep: a long poll longer than every timeout.
        ack = alice.call("send", {"room_id": server["room_id"], "body": "still here", "client_id": "idle-1"},
                         timeout=10)
        assert ack["ok"] is True
        deadline = time.monotonic() + 5
        while "still here" not in got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == ["still here"]
    finally:
        alice.disconnect()
        bob.disconnect()


# --- HTTP: request head, body and keep-alive timeouts ------------------------------------------

@pytest.mark.parametrize("sent", [
    b"GET /healthz HT",  # half a request line
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # half the headers
])
def test_an_unfinished_request_head_is_dropped_after_the_header_timeout(server, sent):
    sock = tcp(server, "127.0.0.7")
    sock.sendall(sent)
    took = closed_within(sock, HEADER_TIMEOUT + SLACK)
    sock.close()
    assert took is not None, "the server waited forever for the rest of the request"


def test_a_head_sent_a_byte_at_a_time_still_has_one_deadline(server):
    """A per-read timeout would never fire on a client that sends a byte every 0.2 s."""
    sock = tcp(server, "127.0.0.7")
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    start = time.monotonic()
    closed = None
    sock.settimeout(0.2)
    while time.monotonic() - start < HEADER_TIMEOUT + SLACK:
        try:
            sock.sendall(b"X")
            if sock.recv(1024) == b"":
                closed = time.monotonic() - start
                break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = time.monotonic() - start
            break
    sock.close()
    assert closed is not None


def test_slow_clients_filling_every_slot_do_not_keep_healthz_waiting(server):
    """POOL connections from as many addresses, each holding half a request: /healthz answers soon anyway."""
    slow = []
    try:
        for i in range(POOL):
            sock = tcp(server, f"127.0.1.{10 + i}")
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(sock)
        time.sleep(0.3)  # every slot taken
        took = healthz_seconds(server, "127.0.0.8", timeout=HEADER_TIMEOUT + SLACK + 3)
        assert took <= HEADER_TIMEOUT + SLACK
        assert all(closed_within(sock, SLACK) is not None for sock in slow)
    finally:
        for sock in slow:
            sock.close()
    assert healthz_seconds(server, "127.0.0.8") < 1.0


def test_a_body_that_never_arrives_whole_is_dropped_after_the_body_timeout(server):
    sock = tcp(server, "127.0.0.9")
    sock.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"username\":")
    start = time.monotonic()
    response = b""
    sock.settimeout(0.1)
    while time.monotonic() - start < BODY_TIMEOUT + SLACK:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        response += data
    else:
        pytest.fail("the server waited forever for the rest of the body")
    sock.close()
    assert not response.startswith(b"HTTP/1.1 5"), response  # a clear 4xx, or just the close


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, read from a raw socket: its head."""
    response = b""
    while b"\r\n\r\n" not in response:
        data = sock.recv(65536)
        assert data, response
        response += data
    head, _, body = response.partition(b"\r\n\r\n")
    length = int([line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0].split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(server):
    sock = tcp(server, "127.0.0.9")
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower()  # kept alive
    took = closed_within(sock, KEEPALIVE_TIMEOUT + SLACK)
    sock.close()
    assert took is not None, "an idle keep-alive connection stayed open"
    # Idle between requests is the keep-alive timeout's business, not the header timeout's.
    assert took >= KEEPALIVE_TIMEOUT - 0.5


def test_the_next_request_on_a_kept_connection_may_come_after_the_header_timeout(server):
    sock = tcp(server, "127.0.0.9")
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 200")
    time.sleep((HEADER_TIMEOUT + KEEPALIVE_TIMEOUT) / 2)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 200")
    sock.close()


# --- per-address caps --------------------------------------------------------------------------

def test_connections_past_the_per_address_cap_are_refused_while_others_get_in(server):
    held = []
    try:
        for _ in range(PER_ADDRESS):
            ws = raw_websocket(server, "127.0.0.5")
            ws.send(json.dumps({"token": server["tokens"]["alice"]}).join(["40", ""]))
            assert ws.recv().startswith("40")
            held.append(ws)
        status, body = http_get(server, "/healthz", source="127.0.0.5")
        assert status == 429 and body["error"]["code"] == "too_many_connections", body
        assert http_get(server, "/healthz", source="127.0.0.2")[0] == 200
        other = raw_websocket(server, "127.0.0.2")
        other.close()
        held.pop().close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and http_get(server, "/healthz", source="127.0.0.5")[0] != 200:
            time.sleep(0.1)
        assert http_get(server, "/healthz", source="127.0.0.5")[0] == 200
    finally:
        for ws in held:
            ws.close()


def test_sessions_waiting_to_log_in_are_capped_per_address(server):
    sids = []
    for _ in range(WAITING_PER_ADDRESS):
        status, sid = polling_handshake(server, "127.0.0.6")
        assert status == 200
        sids.append(sid)
    status, body = polling_handshake(server, "127.0.0.6")
    assert status == 429 and body["error"]["code"] == "too_many_connections", body
    assert polling_handshake(server, "127.0.0.2")[0] == 200
    # Once the waiting sessions are past the deadline, the address may try again.
    deadline = time.monotonic() + AUTH_TIMEOUT + SLACK
    while time.monotonic() < deadline and polling_handshake(server, "127.0.0.6")[0] != 200:
        time.sleep(0.2)
    assert polling_handshake(server, "127.0.0.6")[0] == 200


def test_logging_in_frees_a_waiting_place_at_once(server):
    sids = []
    for _ in range(WAITING_PER_ADDRESS):
        status, sid = polling_handshake(server, "127.0.0.3")
        assert status == 200
        sids.append(sid)
    assert post_packet(server, sids[0], "127.0.0.3", json.dumps({"token": server["tokens"]["bob"]}).join(["40", ""])) == 200
    status, body = poll(server, sids[0], "127.0.0.3")
    assert status == 200 and body.startswith("40"), body
    assert polling_handshake(server, "127.0.0.3")[0] == 200
    post_packet(server, sids[0], "127.0.0.3", "1")


def test_the_server_is_still_healthy(server):
    assert server["proc"].poll() is None
    assert healthz_seconds(server) < 1.0
    log = server["log"].read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


# --- behind a proxy, and in the other async modes ----------------------------------------------

def test_behind_a_proxy_the_caps_count_the_forwarded_client_address(tmp_path, migrated):
    """Every TCP peer is the proxy: no TCP cap (the proxy's job); waiting sessions count per X-Forwarded-For."""
    with running_server(tmp_path, migrated, TRUSTED_PROXIES=1, MAX_CONNECTIONS_PER_ADDRESS=2) as proxied:
        def handshake(client):
            # The proxy appends the address it saw; what the client wrote before it is not trusted.
            return http_get(proxied, "/socket.io/?EIO=4&transport=polling",
                            headers={"X-Forwarded-For": f"203.0.113.9, {client}"})[0]

        held = [tcp(proxied) for _ in range(4)]  # more than MAX_CONNECTIONS_PER_ADDRESS from the "proxy"
        try:
            assert http_get(proxied, "/healthz")[0] == 200
            assert [handshake("198.51.100.7") for _ in range(WAITING_PER_ADDRESS)] == [200] * WAITING_PER_ADDRESS
            assert handshake("198.51.100.7") == 429
            assert handshake("198.51.100.8") == 200
            # A request the proxy did not label comes from an unknown client: not counted as the proxy's.
            unlabelled = [http_get(proxied, "/socket.io/?EIO=4&transport=polling")[0] for _ in range(WAITING_PER_ADDRESS + 1)]
            assert unlabelled == [200] * (WAITING_PER_ADDRESS + 1)
        finally:
            for sock in held:
                sock.close()


@pytest.mark.parametrize("mode", ["gevent", "threading"])
def test_the_login_deadline_holds_in_the_other_async_modes(tmp_path, migrated, mode):
    """The deadline is app code on the async mode's own tasks: it holds under gevent and threads too."""
    with running_server(tmp_path, migrated, SOCKETIO_ASYNC_MODE=mode) as other:
        status, sid = polling_handshake(other, "127.0.0.4")
        assert status == 200
        try:
            status, body = poll(other, sid, "127.0.0.4", timeout=AUTH_TIMEOUT + SLACK)
        except socket.timeout:
            pytest.fail(f"{mode}: the server kept a polling session that never logged in")
        assert "1" in eio_packets(body) or status == 400
        ws = raw_websocket(other, "127.0.0.4")
        assert websocket_closed_within(ws, AUTH_TIMEOUT + SLACK) is not None
        alice = connect(other, "alice")
        try:
            time.sleep(2 * AUTH_TIMEOUT + 0.5)
            assert alice.connected
            ack = alice.call("send", {"room_id": other["room_id"], "body": "hello", "client_id": mode}, timeout=10)
            assert ack["ok"] is True
        finally:
            alice.disconnect()


def test_an_ipv6_client_is_counted_by_its_64_network():
    """One IPv6 host picks addresses from a whole /64: counting single addresses would cap nothing."""
    from app.ops.limits_conn import address_key, client_address

    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7" and address_key("192.0.2.7") == "192.0.2.7"
    forwarded = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.7"}
    assert client_address(forwarded, 0) == "10.0.0.2"
    assert client_address(forwarded, 1) == "198.51.100.7"
    # Fewer entries than proxies: the peer is a proxy and the client unknown, so nothing is counted.
    assert client_address(forwarded, 3) is None and client_address({"REMOTE_ADDR": "10.0.0.2"}, 1) is None
