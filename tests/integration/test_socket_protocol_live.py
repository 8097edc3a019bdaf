"""The Socket.IO protocol attacked on a real eventlet server, with frames written by hand.

A raw client speaks Engine.IO v4 / Socket.IO v5 itself (python-socketio's Client refuses
to emit reserved names): reserved event names, session ids used without their cookie,
JSONP polling, and frames that do not parse.
"""
from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.parse

import pytest
import requests
import socketio
import websocket

from tests.integration.cluster import ROOT, embedded_env, embedded_server, free_port, migrate

PASSWORD = "protocol-pw-12345"
EIO = "/socket.io/?EIO=4&transport="


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """wsgi.py (eventlet) in the embedded mode, with an administrator and a few users."""
    tmp = tmp_path_factory.mktemp("protocol")
    env = embedded_env(tmp / "live.db", free_port(), SECRET_KEY="protocol-live-secret-0123456789abcdef",
                       REGISTER_RATE_LIMIT="1000 per hour", LOGIN_RATE_LIMIT="1000 per minute", SOCKET_AUTH_TIMEOUT=0)
    migrate(env)
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "create-admin", "root", "--password", PASSWORD],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    with embedded_server(env, tmp / "server.log") as running:
        yield _populated(running)


def _populated(running: dict) -> dict:
    """The running server with five users in a public and a private room, alice owning both."""
    url = running["url"]
    info = {**running, "users": {}}
    for name in ("alice", "bob", "carol", "dora", "erin"):
        created = requests.post(f"{url}/api/v1/users", json={"username": name, "password": PASSWORD})
        assert created.status_code == 201, created.text
        info["users"][name] = created.json()["id"]
    alice = {"Authorization": f"Bearer {token(info, 'alice')}"}
    info["general"] = requests.post(f"{url}/api/v1/rooms", json={"name": "general"}, headers=alice).json()["id"]
    info["secret"] = requests.post(f"{url}/api/v1/rooms", json={"name": "secret", "is_private": True},
                                   headers=alice).json()["id"]
    for room in ("general", "secret"):
        for name in ("bob", "carol", "dora", "erin"):
            added = requests.post(f"{url}/api/v1/rooms/{info[room]}/members", json={"username": name}, headers=alice)
            assert added.status_code in (200, 201), added.text
    return info


def token(server, name: str) -> str:
    """A fresh bearer token for a user."""
    got = requests.post(f"{server['url']}/api/v1/auth/token", json={"username": name, "password": PASSWORD})
    assert got.status_code == 200, got.text
    return got.json()["token"]


def bearer(server, name: str) -> dict:
    return {"Authorization": f"Bearer {token(server, name)}"}


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def web_login(server, name: str) -> requests.Session:
    """A browser-like session logged in through the login form."""
    session = requests.Session()
    page = session.get(f"{server['url']}/login")
    done = session.post(f"{server['url']}/login", data={"username": name, "password": PASSWORD,
                                                         "csrf_token": csrf_token(page.text)})
    assert done.status_code == 200 and "/login" not in done.url, done.text[:300]
    return session


def session_cookie(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


class RawSocket:
    """A Socket.IO client over a websocket, one frame at a time (pings answered)."""

    def __init__(self, server, *, auth: dict | None = None, cookie: str | None = None, connect: bool = True):
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{server['port']}{EIO}websocket", timeout=10,
                                              cookie=cookie)
        opened = self.ws.recv()
        assert opened.startswith("0"), opened
        self.sid = json.loads(opened[1:])["sid"]
        self.events: list[tuple[str, object]] = []
        self.acks: dict[int, object] = {}
        self.closed = False
        self._next_id = 100
        if connect:
            self.ws.send("40" + (json.dumps(auth) if auth else ""))
            reply = self._read(10)
            assert reply is not None and reply.startswith("0{"), reply  # Socket.IO CONNECT

    def _read(self, timeout: float) -> str | None:
        """The next Socket.IO packet (Engine.IO message content), None on timeout; closed on the end."""
        self.ws.settimeout(timeout)
        while True:
            try:
                data = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return None
            except (websocket.WebSocketException, ConnectionError, OSError):
                # Closed; frames sent after the close may be answered by the HTTP server as a request.
                self.closed = True
                return None
            if data in ("", None) or data == "1":  # the connection ended, or Engine.IO CLOSE
                self.closed = True
                return None
            if data == "2":
                self.ws.send("3")
                continue
            if isinstance(data, str) and data.startswith("4"):
                return data[1:]

    def pump(self, timeout: float) -> None:
        """Read what arrives within timeout into events and acks."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            packet = self._read(max(0.01, deadline - time.monotonic()))
            if packet is None:
                continue
            self._file(packet)

    def _file(self, packet: str) -> None:
        if packet.startswith("2"):
            name, *args = json.loads(packet[1:])
            self.events.append((name, args[0] if args else None))
        elif packet.startswith("3"):
            digits = re.match(r"3(\d+)", packet)
            self.acks[int(digits.group(1))] = json.loads(packet[len(digits.group(0)):])[0]
        elif packet.startswith("1"):  # Socket.IO DISCONNECT: the server left the namespace
            self.events.append(("__disconnect__", None))

    def emit_raw(self, text: str) -> bool:
        """Send one Engine.IO message; False when the connection is closed."""
        try:
            self.ws.send("4" + text)
            return True
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            self.closed = True
            return False

    def call_raw(self, body: str, timeout: float = 5) -> object | None:
        """Send `2<id><body>` and wait for its ack; None if none came."""
        self._next_id += 1
        ack_id = self._next_id
        if not self.emit_raw(f"2{ack_id}{body}"):
            return None
        deadline = time.monotonic() + timeout
        while ack_id not in self.acks and not self.closed and time.monotonic() < deadline:
            self.pump(0.05)
        return self.acks.pop(ack_id, None)

    def send(self, room_id: int, body: str) -> object | None:
        return self.call_raw(json.dumps(["send", {"room_id": room_id, "body": body}]))

    def wait_closed(self, timeout: float = 5) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.pump(0.1)
        return self.closed

    def messages(self) -> list[dict]:
        return [data for name, data in self.events if name == "message"]

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


def refused_reserved(ack) -> bool:
    return isinstance(ack, dict) and ack.get("ok") is False and ack["error"]["code"] == "invalid"


def messages_in(server, room_id: int, headers: dict) -> list[dict]:
    return requests.get(f"{server['url']}/api/v1/rooms/{room_id}/messages?limit=200", headers=headers).json()["messages"]


# --- 1. Reserved event names ------------------------------------------------------------------

def test_a_disconnect_frame_does_not_outlive_a_logout(server):
    web = web_login(server, "bob")
    raw = RawSocket(server, cookie=session_cookie(web))
    try:
        raw.emit_raw('2["disconnect"]')
        assert refused_reserved(raw.call_raw('["disconnect"]'))
        assert raw.send(server["general"], "bob before logout")["ok"] is True
        page = web.get(f"{server['url']}/")
        assert web.post(f"{server['url']}/logout", data={"csrf_token": csrf_token(page.text)}).status_code == 200
        assert raw.wait_closed(), "the socket survived the logout"
        assert raw.send(server["general"], "bob after logout") is None
        bodies = [m["body"] for m in messages_in(server, server["general"], bearer(server, "alice"))]
        assert "bob before logout" in bodies and "bob after logout" not in bodies
    finally:
        raw.close()


def test_a_disconnect_frame_does_not_outlive_a_revoked_token(server):
    headers = bearer(server, "carol")
    revoked = token(server, "carol")
    raw = RawSocket(server, auth={"token": revoked})
    try:
        raw.emit_raw('2["disconnect"]')
        assert raw.send(server["general"], "carol before")["ok"] is True
        tokens = requests.get(f"{server['url']}/api/v1/tokens", headers=headers).json()["tokens"]
        newest = max(t["id"] for t in tokens)  # `revoked` was issued last
        assert requests.delete(f"{server['url']}/api/v1/tokens/{newest}", headers=headers).status_code == 204
        assert raw.wait_closed(), "the socket survived the revocation"
        assert raw.send(server["general"], "carol after revocation") is None
        again = RawSocket(server, connect=False)
        again.emit_raw("0" + json.dumps({"token": revoked}))
        reply = again._read(5)
        assert reply is not None and reply.startswith("4"), reply  # CONNECT_ERROR: the token is dead
        again.close()
    finally:
        raw.close()


def test_a_disconnect_frame_does_not_outlive_disabling_by_an_administrator(server):
    raw = RawSocket(server, auth={"token": token(server, "dora")})
    admin = web_login(server, "root")
    try:
        raw.emit_raw('2["disconnect"]')
        assert raw.send(server["general"], "dora before")["ok"] is True
        page = admin.get(f"{server['url']}/admin/user/")
        form = re.search(r'id="action_form".*?name="csrf_token"[^>]*value="([^"]+)"', page.text, re.S)
        data = {"action": "disable", "rowid": str(server["users"]["dora"])}
        if form:
            data["csrf_token"] = form.group(1)
        assert admin.post(f"{server['url']}/admin/user/action/", data=data).status_code == 200
        assert raw.wait_closed(), "the socket survived disabling"
        assert raw.send(server["general"], "dora after") is None
    finally:
        raw.close()


def test_a_disconnect_frame_does_not_keep_a_private_room_after_leaving(server):
    erin = RawSocket(server, auth={"token": token(server, "erin")})
    alice = bearer(server, "alice")
    try:
        erin.emit_raw('2["disconnect"]')
        erin.pump(0.3)
        left = requests.delete(f"{server['url']}/api/v1/rooms/{server['secret']}/members/me",
                               headers=bearer(server, "erin"))
        assert left.status_code in (200, 204), left.text
        erin.pump(0.5)
        erin.events.clear()
        for room, body in ((server["secret"], "for the secret room"), (server["general"], "for general")):
            sent = requests.post(f"{server['url']}/api/v1/rooms/{room}/messages", json={"body": body}, headers=alice)
            assert sent.status_code == 201
        deadline = time.monotonic() + 5
        while "for general" not in [m["body"] for m in erin.messages()] and time.monotonic() < deadline:
            erin.pump(0.1)
        assert [m["body"] for m in erin.messages()] == ["for general"]
    finally:
        erin.close()


def test_a_connect_frame_does_not_change_the_sockets_user(server):
    bob_token = token(server, "bob")
    raw = RawSocket(server, auth={"token": token(server, "alice")})
    try:
        raw.emit_raw("2" + json.dumps(["connect", {"token": bob_token}]))
        assert refused_reserved(raw.call_raw(json.dumps(["connect", {"token": bob_token}])))
        assert refused_reserved(raw.call_raw(json.dumps(["connect", {}, {"token": bob_token}])))
        ack = raw.send(server["general"], "who am I")
        assert ack["ok"] is True and ack["message"]["author"]["username"] == "alice"
        assert not raw.closed
    finally:
        raw.close()


# --- 2. JSONP, headers and who may use a session id -------------------------------------------

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin"}


def assert_security_headers(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert "default-src 'self'" in response.headers.get("Content-Security-Policy", "")


class Polling:
    """A long-polling Engine.IO session opened by `opener` (a requests.Session with its cookies)."""

    def __init__(self, server, opener: requests.Session):
        self.url = f"{server['url']}/socket.io/"
        self.opener = opener
        opened = opener.get(self.url, params={"EIO": "4", "transport": "polling"})
        assert opened.status_code == 200, opened.text
        self.sid = json.loads(opened.text[1:])["sid"]

    def params(self) -> dict:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    def post(self, body: str | bytes, via=None) -> requests.Response:
        data = body.encode() if isinstance(body, str) else body
        return (via or self.opener).post(self.url, params=self.params(), data=data)

    def poll(self, via=None) -> requests.Response:
        return (via or self.opener).get(self.url, params=self.params(), timeout=30)

    def packets(self) -> list[str]:
        got = self.poll()
        assert got.status_code == 200, got.text
        return got.text.split("\x1e")


def test_jsonp_polling_is_refused(server):
    web = web_login(server, "bob")
    refused = web.get(f"{server['url']}/socket.io/", params={"EIO": "4", "transport": "polling", "j": "0"})
    assert refused.status_code == 400
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "invalid"
    assert "sid" not in refused.text
    assert_security_headers(refused)


def test_engineio_responses_carry_the_security_headers(server):
    web = web_login(server, "bob")
    session = Polling(server, web)
    handshake = web.get(f"{server['url']}/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert_security_headers(handshake)
    assert_security_headers(session.post("40"))
    assert_security_headers(web.get(f"{server['url']}/socket.io/", params={"EIO": "4", "transport": "polling",
                                                                           "sid": "no-such-session"}))
    assert_security_headers(requests.get(f"{server['url']}/socket.io/", params={"EIO": "3"}))


def test_a_session_id_without_its_handshake_cookie_is_refused(server):
    web = web_login(server, "bob")
    session = Polling(server, web)
    assert session.post("40").status_code == 200
    assert session.packets()[0].startswith("40{")
    stranger = requests.Session()  # no cookie, no Origin: what a page that learned the sid could send
    alice = web_login(server, "alice")  # someone else's valid login
    body = "42" + json.dumps(["send", {"room_id": server["general"], "body": "sent with a stolen sid"}])
    for other in (stranger, alice):
        assert session.poll(via=other).status_code == 403
        refused = session.post(body, via=other)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert_security_headers(refused)
    with pytest.raises(websocket.WebSocketBadStatusException) as upgrade:
        websocket.create_connection(f"ws://127.0.0.1:{server['port']}{EIO}websocket&sid={session.sid}", timeout=5)
    assert upgrade.value.status_code == 403
    # From another address, even with the right cookie.
    other_address = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10,
                                               source_address=("127.0.0.2", 0))
    query = urllib.parse.urlencode(session.params())
    other_address.request("GET", f"/socket.io/?{query}", headers={"Cookie": session_cookie(web)})
    assert other_address.getresponse().status == 403
    other_address.close()
    bodies = [m["body"] for m in messages_in(server, server["general"], bearer(server, "alice"))]
    assert "sent with a stolen sid" not in bodies
    # The session itself was not touched: its owner carries on.
    assert session.post("421" + json.dumps(["send", {"room_id": server["general"], "body": "mine"}])).status_code == 200
    deadline = time.monotonic() + 10
    acks = []
    while not acks and time.monotonic() < deadline:
        acks = [p for p in session.packets() if p.startswith("431")]
    assert json.loads(acks[0][3:])[0]["ok"] is True


def test_a_websocket_upgrade_with_its_own_cookie_works(server):
    web = web_login(server, "bob")
    session = Polling(server, web)
    assert session.post("40").status_code == 200
    session.packets()
    ws = websocket.create_connection(f"ws://127.0.0.1:{server['port']}{EIO}websocket&sid={session.sid}", timeout=5,
                                     cookie=session_cookie(web))
    try:
        ws.send("2probe")
        assert ws.recv() == "3probe"
        ws.send("5")
        ws.send("421" + json.dumps(["send", {"room_id": server["general"], "body": "upgraded"}]))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = ws.recv()
            if got.startswith("431"):
                assert json.loads(got[3:])[0]["ok"] is True
                break
        else:
            pytest.fail("no ack over the upgraded socket")
    finally:
        ws.close()


# --- 6. Frames that do not parse ---------------------------------------------------------------

MALFORMED = ["4xyz", '4{"a"', "42[]", "42", "42[1]", "47", "4" + "[" * 3000, "42" + '{"x":' * 200]


def log_since(server, offset: int) -> str:
    time.sleep(0.3)  # what the server writes after answering
    with open(server["log"], "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_malformed_frames_are_logged_once_and_close_the_connection(server):
    bystander = socketio.Client(reconnection=False)
    bystander.connect(server["url"], auth={"token": token(server, "alice")}, transports=["websocket"],
                      wait_timeout=10)
    try:
        before = server["log"].stat().st_size
        sent = 0
        for connection in range(8):  # half of them logged in, half not
            auth = {"token": token(server, "bob")} if connection % 2 else None
            raw = RawSocket(server, connect=auth is not None, auth=auth)
            for i in range(200):  # far more than it takes: the server closes the connection
                frame = MALFORMED[i % len(MALFORMED)]
                if not raw.emit_raw(frame[1:]):
                    break
                sent += len(frame)
                if i % 10 == 9:
                    raw.pump(0.05)
                    if raw.closed:
                        break
            assert raw.wait_closed(5), f"connection {connection} stayed open"
            raw.close()
        grown = log_since(server, before)
        assert "Traceback" not in grown, grown[-3000:]
        assert grown.count("cannot be handled") == 8, grown
        assert len(grown) < 8 * 400 and sent > 10 * len(grown), (sent, grown)

        before = server["log"].stat().st_size
        polling = Polling(server, requests.Session())
        statuses = [polling.post(body).status_code for body in ("x", "\x1e\x1e9", b"\xff\xfe", "x", "40")]
        assert statuses == [400] * 5  # the last ones: the session was closed after the third
        grown = log_since(server, before)
        assert "Traceback" not in grown and grown.count("cannot be handled") == 1, grown

        assert requests.get(f"{server['url']}/healthz", timeout=5).status_code == 200
        ack = bystander.call("send", {"room_id": server["general"], "body": "unbothered"}, timeout=10)
        assert ack["ok"] is True and bystander.connected
    finally:
        bystander.disconnect()
