"""Real processes for integration tests: PostgreSQL database, Redis namespace, servers, worker."""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg2
import pytest
import redis
import requests
import socketio

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("CHORUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("CHORUS_TEST_REDIS", "redis://127.0.0.1:6379")
PASSWORD = "integration-pw-1"


def require_services() -> None:
    """Skip (or, under CI, fail) when PostgreSQL or Redis is not reachable."""
    missing = []
    try:
        psycopg2.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:
        missing.append(f"PostgreSQL at {PG_ADMIN_URL} ({str(exc).strip().splitlines()[0]})")
    try:
        redis.Redis.from_url(REDIS_BASE_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        missing.append(f"Redis at {REDIS_BASE_URL} ({exc})")
    if missing:
        reason = "integration tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def require_redis_server() -> str:
    """The redis-server binary for tests that stop and restart their own Redis; skip (fail under CI) without it."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "this test needs the redis-server binary to run a private Redis"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@contextmanager
def pg_app(prefix: str, **settings):
    """An app on a PostgreSQL database of its own, dropped afterwards; `settings` override TestConfig."""
    from app import create_app
    from app.config import TestConfig
    from app.extensions import db

    require_services()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    settings["SQLALCHEMY_DATABASE_URI"] = url.replace("postgresql://", "postgresql+psycopg2://")
    app = create_app(type("Cfg", (TestConfig,), settings))
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(database: Path, port: int, **settings) -> dict:
    """The environment of an embedded-mode server: SQLite at `database`, no Redis, `settings` on top."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "PORT": str(port),
           **{name: str(value) for name, value in settings.items()}}
    env.pop("REDIS_URL", None)
    return env


def migrate(env: dict) -> None:
    """`flask db upgrade` on the database that env names."""
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    """Wait until the server answers /healthz; raise with its log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(log_path.read_text())


@contextmanager
def embedded_server(env: dict, log_path: Path):
    """`python wsgi.py` (eventlet) with env until it is healthy; yields {url, port, proc, log}; stops it after."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{env['PORT']}"
            wait_healthy(url, proc, log_path)
            yield {"url": url, "port": int(env["PORT"]), "proc": proc, "log": log_path}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def alice_and_bob_in_general(url: str, password: str) -> tuple[dict, int]:
    """Register alice and bob on a fresh server, with a token each, both in alice's room "general"."""
    tokens = {}
    for name in ("alice", "bob"):
        created = requests.post(f"{url}/api/v1/users", json={"username": name, "password": password})
        assert created.status_code == 201, created.text
        tokens[name] = requests.post(f"{url}/api/v1/auth/token",
                                     json={"username": name, "password": password}).json()["token"]
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    room = requests.post(f"{url}/api/v1/rooms", json={"name": "general"}, headers=alice).json()
    added = requests.post(f"{url}/api/v1/rooms/{room['id']}/members", json={"username": "bob"}, headers=alice)
    assert added.status_code == 201, added.text
    return tokens, room["id"]


class Background:
    """A client workload run in a thread of its own for the length of a `with` block:
    subclasses define `_run`, which returns soon after `_stop` is set, and count what they
    queued in `count`, drawing their choices from `random` (seeded, so a run can be repeated)."""

    name = "background"

    def __init__(self, *, seed: int = 0):
        self.random = random.Random(seed)
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        raise NotImplementedError


class RedisServer:
    """A private redis-server on a free port, without persistence, that a test may stop and restart."""

    def __init__(self, tmp: Path):
        self.binary = require_redis_server()
        self.tmp = tmp
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 15.0) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        self.starts += 1
        log = open(self.tmp / f"redis-{self.port}-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer")

    def stop(self, kill: bool = False) -> None:
        """Stop it: SIGTERM (a clean shutdown that drops every key, as nothing is saved) or SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill() if kill else proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Cluster:
    """A PostgreSQL database and a Redis namespace of its own, with server and worker processes.

    `redis_url` points the cluster at another Redis (a private RedisServer) instead of a
    database number on the shared one; `env` adds settings for every process.
    """

    def __init__(self, tmp: Path, *, redis_url: str | None = None, env: dict | None = None):
        self.tmp = tmp
        self.run_id = uuid.uuid4().hex[:10]
        self.db_name = f"chorus_it_{self.run_id}"
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        self.database_url = f"{base}/{self.db_name}"
        self.redis_db = 1 + int(self.run_id, 16) % 15
        self.redis_url = redis_url or f"{REDIS_BASE_URL}/{self.redis_db}"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            # Pub/sub channels ignore Redis database numbers: a channel per run keeps
            # concurrent runs apart.
            "SOCKETIO_CHANNEL": f"chorus-it-{self.run_id}",
            "REDIS_KEY_PREFIX": f"chorus-it-{self.run_id}:",
            "SECRET_KEY": f"it-{self.run_id}",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.servers: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------
    def create_database(self) -> None:
        """Create the run's database and migrate it to head."""
        conn = psycopg2.connect(PG_ADMIN_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.db_name}"')
        conn.close()
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
            cwd=ROOT, env=self.env, check=True, capture_output=True, timeout=120,
        )

    def drop_database(self) -> None:
        """Drop the run's database and its Redis keys."""
        conn = psycopg2.connect(PG_ADMIN_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        conn.close()
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=3)
        try:
            # The run's prefix, also inside other names (Flask-Limiter's "LIMITS:LIMITER/<prefix>...").
            for key in client.scan_iter(match=f"*chorus-it-{self.run_id}:*"):
                client.delete(key)
        except redis.ConnectionError:
            pass  # a private Redis that is already gone took its keys with it

    def _spawn(self, name: str, args: list[str], extra_env: dict | None = None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        # A session of its own, so a kill can take the process with its children (a worker's pool).
        proc = subprocess.Popen(
            args, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_server(self, name: str) -> str:
        """Start an eventlet server process; returns its base URL once /healthz answers 200."""
        port = free_port()
        self._spawn(name, [sys.executable, "wsgi.py"], {"PORT": str(port), "SOCKETIO_ASYNC_MODE": "eventlet"})
        url = f"http://127.0.0.1:{port}"
        self.servers[name] = url
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not become healthy:\n{self.log(name)}")

    def start_worker(self, name: str = "worker") -> None:
        """Start a Celery prefork worker and wait until it is ready."""
        self._spawn(name, [
            sys.executable, "-m", "celery", "-A", "celery_worker.celery", "worker",
            "--loglevel=INFO", "--concurrency=2", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-n", f"{name}-{self.run_id}@%h",
        ])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self._check_alive(name)
            if "ready." in self.log(name):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not become ready:\n{self.log(name)}")

    def _check_alive(self, name: str) -> None:
        if self.procs[name].poll() is not None:
            raise RuntimeError(f"{name} exited with {self.procs[name].returncode}:\n{self.log(name)}")

    def log(self, name: str) -> str:
        """What a process has printed so far."""
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, kill: bool = False) -> None:
        """Stop one process (SIGKILL to it and its children when kill is true)."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            if kill:
                _kill_group(proc.pid)
            else:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait(timeout=10)

    def kill(self, name: str) -> None:
        """kill -9 a process and its children, as a crash or an OOM kill would."""
        self.stop(name, kill=True)

    def stop_all(self) -> None:
        """Stop every process."""
        for name in list(self.procs):
            self.stop(name)

    def alive(self, name: str) -> bool:
        """Whether a started process is still running."""
        return name in self.procs and self.procs[name].poll() is None

    # -- users and clients ---------------------------------------------------------
    def register(self, server: str, username: str) -> str:
        """Register a user on a server and return a bearer token."""
        url = self.servers[server]
        r = requests.post(f"{url}/api/v1/users", json={"username": username, "password": PASSWORD}, timeout=10)
        assert r.status_code == 201, r.text
        r = requests.post(f"{url}/api/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def api(self, server: str, token: str, method: str, path: str, **kwargs) -> requests.Response:
        """An authenticated REST call to one server."""
        return requests.request(
            method, f"{self.servers[server]}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs,
        )

    def connect(self, server: str, token: str) -> "Listener":
        """A real Socket.IO client on one server, recording every event."""
        return Listener(self.servers[server], token)

    def sql(self, query: str, *params):
        """Rows from the run's database."""
        conn = psycopg2.connect(self.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall()
        finally:
            conn.close()


def _kill_group(pgid: int) -> None:
    # Only called while the group's leader (a process started here) has not been reaped yet.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def running_cluster(tmp: Path, *, servers=("a", "b"), worker: bool = True, redis_url: str | None = None,
                    env: dict | None = None):
    """A migrated database with the named servers and a worker started; everything removed afterwards."""
    cluster = Cluster(tmp, redis_url=redis_url, env=env)
    cluster.create_database()
    try:
        for name in servers:
            cluster.start_server(name)
        if worker:
            cluster.start_worker()
        yield cluster
    finally:
        cluster.stop_all()
        cluster.drop_database()


class Listener:
    """A python-socketio client that records what it receives."""

    EVENTS = ("message", "notification", "room_membership", "member_joined", "member_left")

    def __init__(self, url: str, token: str, events=EVENTS):
        self.events: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        for name in events:
            self.client.on(name, self._recorder(name))
        self.client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def _recorder(self, name):
        def record(data):
            with self._lock:
                self.events.append((name, data))
        return record

    def of(self, name: str) -> list[dict]:
        """Payloads received of one event type."""
        with self._lock:
            return [data for event, data in self.events if event == name]

    def wait_for(self, name: str, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until at least count events of a type arrived; returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(name)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.of(name)

    def send(self, room_id: int, body: str, client_id: str) -> dict:
        """Emit send and return the ack."""
        return self.client.call("send", {"room_id": room_id, "body": body, "client_id": client_id}, timeout=10)

    def close(self) -> None:
        """Disconnect."""
        if self.client.connected:
            self.client.disconnect()
