"""A real Chorus server for browser tests: `python wsgi.py` (eventlet) on SQLite and a free port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "e2e-password-1"
# Fixed, so that session cookies stay valid across a restart of the server.
SECRET_KEY = "e2e-secret-key-that-survives-restarts-0123456789"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class User:
    """A registered account and a bearer token for it."""

    id: int
    username: str
    display_name: str
    token: str


class ChorusServer:
    """One server process on one port and one database file; stop() and start() keep both."""

    def __init__(self, tmp: Path, name: str = "server"):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CHORUS_ENV", "DATABASE_URL"}}
        self.env = {
            **env,
            "DATABASE_URL": f"sqlite:///{tmp / 'e2e.db'}",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "SECRET_KEY": SECRET_KEY,
            "SOCKETIO_ASYNC_MODE": "eventlet",
            # The tests register many accounts and send quickly from one address.
            "RATELIMIT_ENABLED": "0",
            "REGISTRATION_OPEN": "1",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.http = requests.Session()

    def sibling(self, name: str) -> "ChorusServer":
        """Another server process on the same database, on a port of its own.

        Without a message queue it shares no live events with this one: what is sent through
        it reaches this server's pages only when they ask for it, as after a reconnect.
        """
        return ChorusServer(self.tmp, name)

    # -- lifecycle -------------------------------------------------------------------
    def migrate(self) -> None:
        """Create the schema from the migrations, as a deployment does."""
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"flask db upgrade failed:\n{done.stdout}\n{done.stderr}")

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until /healthz answers."""
        assert self.proc is None, "already running"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "wsgi.py"], cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"the server exited with {code}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server with SIGTERM, as an operator or a supervisor would."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- REST, as a bot would use it -----------------------------------------------
    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> dict:
        """One REST call; fails the test on an error status."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else {}

    def register(self, username: str, display_name: str) -> User:
        """Create an account and a bearer token for it."""
        body = {"username": username, "password": PASSWORD, "display_name": display_name}
        user = self.api("POST", "/users", json=body)
        token = self.api("POST", "/auth/token", json={"username": username, "password": PASSWORD})["token"]
        return User(user["id"], username, display_name, token)

    def create_room(self, owner: User, name: str, topic: str = "", members: tuple[User, ...] = ()) -> dict:
        """A public room owned by owner, with members added."""
        room = self.api("POST", "/rooms", owner.token, json={"name": name, "topic": topic})
        for member in members:
            self.api("POST", f"/rooms/{room['id']}/members", owner.token, json={"username": member.username})
        return room

    def post(self, user: User, room_id: int, body: str) -> dict:
        """Send a message over REST; returns it as stored."""
        return self.api("POST", f"/rooms/{room_id}/messages", user.token, json={"body": body})

    def messages(self, user: User, room_id: int, **params) -> list[dict]:
        """A page of a room's history."""
        return self.api("GET", f"/rooms/{room_id}/messages", user.token, params=params)["messages"]
