"""Processes, databases and Redis namespaces for the benchmarks; everything cleans up after itself."""
from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("CHORUS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("CHORUS_BENCH_REDIS", "redis://127.0.0.1:6379")


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards wanted (children inherit it); returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> float:
    """The one-minute load average."""
    return os.getloadavg()[0]


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores' worth of CPU the whole machine used over the last `seconds` (blocking)."""
    t0 = psutil.cpu_times()
    time.sleep(seconds)
    t1 = psutil.cpu_times()
    total = sum(t1) - sum(t0)
    idle = (t1.idle + t1.iowait) - (t0.idle + t0.iowait)
    return (total - idle) / total * psutil.cpu_count() if total > 0 else 0.0


async def wait_for_quiet(max_busy: float, timeout: float, log=print) -> float:
    """Between steps (our processes idle), wait up to timeout until the machine is quiet.

    Quiet: under max_busy cores busy over a one-second sample. Other agents' test suites
    would otherwise land inside a measurement. Asynchronous, so the load generator's
    sockets keep answering pings meanwhile. Returns the last sample.
    """
    import asyncio

    deadline = time.monotonic() + timeout
    busy = await asyncio.to_thread(busy_cores)
    if busy > max_busy:
        log(f"  machine busy ({busy:.2f} cores, load {load_average():.2f}); waiting up to {timeout:.0f} s")
    while busy > max_busy and time.monotonic() < deadline:
        await asyncio.sleep(2)
        busy = await asyncio.to_thread(busy_cores)
    return busy


class _Process:
    """A subprocess with its output in a log file: what it printed, and how to stop it."""

    stop_timeout = 15
    log_path: Path
    proc: subprocess.Popen

    def log(self) -> str:
        """What the process printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Terminate (then kill) the process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


class Server(_Process):
    """A web process (Chorus's wsgi.py or the baseline) started with its own environment."""

    def __init__(self, name: str, kind: str, env: dict, logdir: Path, port: int | None = None,
                 root: Path | None = None):
        self.name = name
        self.kind = kind
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        script = "wsgi.py" if kind == "chorus" else str(ROOT / "bench" / "baseline_server.py")
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, script], cwd=root or ROOT, env={**env, "HOST": "127.0.0.1", "PORT": str(self.port)},
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until /healthz answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log()[-3000:]}")

    def rss(self) -> int:
        """Resident memory in bytes."""
        return self.ps.memory_info().rss

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far."""
        t = self.ps.cpu_times()
        return t.user + t.system

    stop_timeout = 15


class Worker(_Process):
    """A Celery prefork worker from celery_worker.py."""

    def __init__(self, name: str, env: dict, logdir: Path, concurrency: int = 2):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "celery_worker.celery", "worker", "--loglevel=INFO",
             f"--concurrency={concurrency}", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the worker says it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            if "ready." in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log()[-3000:]}")

    stop_timeout = 20


def _pg_admin(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the PostgreSQL server, outside a transaction."""
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_URL)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


class Backend:
    """A database of its own (PostgreSQL `chorus_bench_<id>` or a SQLite file) and a Redis namespace."""

    def __init__(self, kind: str, workdir: Path, *, redis: bool = False):
        self.kind = kind
        self.run_id = uuid.uuid4().hex[:10]
        self.workdir = workdir
        if kind == "postgres":
            self.db_name = f"chorus_bench_{self.run_id}"
            self.database_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{self.db_name}"
        else:
            self.db_name = str(workdir / f"chorus-bench-{self.run_id}.db")
            self.database_url = f"sqlite:///{self.db_name}"
        self.redis_url = f"{REDIS_BASE_URL}/{1 + int(self.run_id, 16) % 15}" if redis else None
        self.key_prefix = f"chorus-bench-{self.run_id}:"
        self.channel = f"chorus-bench-{self.run_id}"

    def env(self, **extra: str) -> dict:
        """The environment every Chorus process of this backend gets."""
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "SOCKETIO_CHANNEL": self.channel,
            "REDIS_KEY_PREFIX": self.key_prefix,
            "SECRET_KEY": f"bench-{self.run_id}-" + "x" * 32,
            "RATELIMIT_ENABLED": "0",
            # Every simulated client connects from 127.0.0.1: no per-address caps.
            "MAX_CONNECTIONS_PER_ADDRESS": "0",
            "MAX_UNAUTHENTICATED_SOCKETS_PER_ADDRESS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("REDIS_URL", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(extra)
        return env

    def create(self, root: Path | None = None) -> None:
        """Create the database and migrate it to head (with the migrations of root, by default ours)."""
        if self.kind == "postgres":
            _pg_admin(f'CREATE DATABASE "{self.db_name}"')
        subprocess.run([PYTHON, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=root or ROOT, env=self.env(),
                       check=True, capture_output=True, timeout=180)

    def drop(self) -> None:
        """Drop the database and every Redis key of the namespace."""
        if self.kind == "postgres":
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(self.db_name + suffix).unlink(missing_ok=True)
        if self.redis_url:
            import redis

            client = redis.Redis.from_url(self.redis_url)
            for key in client.scan_iter(match=f"{self.key_prefix}*", count=1000):
                client.delete(key)
            client.close()
