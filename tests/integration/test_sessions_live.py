"""Login sessions and the secret key against real processes: `python wsgi.py` (eventlet), Celery, the flask CLI."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time

import pytest
import requests
import socketio

from tests.integration.cluster import REDIS_BASE_URL, ROOT, free_port, migrate, require_services, wait_healthy

PASSWORD = "live-sessions-pw-1"
NEW_PASSWORD = "live-sessions-pw-2"


class Server:
    """One embedded-mode server process on a SQLite file, started without SECRET_KEY."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key_file = tmp / "instance" / "secret_key"
        env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "REDIS_URL", "CHORUS_ENV"}}
        self.env = {**env, "DATABASE_URL": f"sqlite:///{tmp / 'sessions.db'}", "PORT": str(self.port),
                    "SECRET_KEY_FILE": str(self.key_file), "PYTHONUNBUFFERED": "1"}
        self.proc = None
        self.starts = 0

    def migrate(self):
        migrate(self.env)

    def start(self):
        self.starts += 1
        log = open(self.tmp / f"server-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "wsgi.py"], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        wait_healthy(self.url, self.proc, self.tmp / f"server-{self.starts}.log")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("sessions"))
    server.migrate()
    server.start()
    for name in ("alice", "bob", "carol"):
        created = requests.post(f"{server.url}/api/v1/users", json={"username": name, "password": PASSWORD})
        assert created.status_code == 201, created.text
    yield server
    server.stop()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def browser(server, username, password=PASSWORD, remember=False) -> requests.Session:
    """A requests session logged in through the login form, CSRF token and all, as a browser is."""
    http = requests.Session()
    page = http.get(f"{server.url}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    data = {"username": username, "password": password, "csrf_token": token}
    if remember:
        data["remember"] = "y"
    done = http.post(f"{server.url}/login", data=data, allow_redirects=False, timeout=10)
    assert done.status_code == 302, done.text
    return http


def cookie_header(cookies: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def replay(server, cookies: dict) -> requests.Session:
    """A fresh client holding only the given cookies."""
    http = requests.Session()
    for name, value in cookies.items():
        http.cookies.set(name, value, domain="127.0.0.1", path="/")
    return http


def logged_in(server, http) -> bool:
    status = http.get(f"{server.url}/api/v1/me", timeout=10).status_code
    assert status in (200, 401)
    return status == 200


def open_socket(server, cookies: dict):
    """A Socket.IO client over a websocket, sending the given cookies; raises if refused."""
    client = socketio.Client(reconnection=False)
    client.connect(server.url, headers={"Cookie": cookie_header(cookies)}, transports=["websocket"],
                   wait_timeout=10)
    return client


def refused(server, cookies: dict) -> bool:
    try:
        client = open_socket(server, cookies)
    except socketio.exceptions.ConnectionError:
        return True
    client.disconnect()
    return False


def wait_closed(client, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    return not client.connected


def post_form(server, http, path: str, **data):
    page = http.get(f"{server.url}/account", timeout=10).text
    return http.post(f"{server.url}{path}", data={"csrf_token": csrf_of(page), **data}, allow_redirects=False,
                     timeout=10)


def test_a_key_is_made_on_first_start_kept_private_and_survives_a_restart(server):
    key = server.key_file.read_text().strip()
    assert len(key) >= 32 and key != "chorus-embedded-dev-key"
    assert stat.S_IMODE(server.key_file.stat().st_mode) == 0o600
    http = browser(server, "carol")
    assert logged_in(server, http)
    server.stop()
    server.start()
    assert server.key_file.read_text().strip() == key
    assert logged_in(server, http)  # the same key signs the cookie, the session row is still live


def test_after_logout_the_old_cookies_open_nothing(server):
    http = browser(server, "alice", remember=True)
    old = http.cookies.get_dict()
    assert set(old) >= {"session", "remember_token"}
    sock = open_socket(server, old)
    page = http.get(f"{server.url}/", timeout=10).text
    done = http.post(f"{server.url}/logout", data={"csrf_token": csrf_of(page)}, allow_redirects=False, timeout=10)
    assert done.status_code == 302
    assert wait_closed(sock)
    for cookies in (old, {"session": old["session"]}, {"remember_token": old["remember_token"]}):
        assert not logged_in(server, replay(server, cookies)), cookies
        assert refused(server, cookies), cookies
    page = replay(server, old).get(f"{server.url}/", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_each_login_gets_its_own_remember_cookie(server):
    one, two = browser(server, "bob", remember=True), browser(server, "bob", remember=True)
    assert one.cookies["remember_token"] != two.cookies["remember_token"]


def test_log_out_everywhere_ends_another_browsers_session_and_socket(server):
    laptop, here = browser(server, "bob", remember=True), browser(server, "bob")
    laptop_cookies = laptop.cookies.get_dict()
    laptop_socket = open_socket(server, laptop_cookies)
    done = post_form(server, here, "/account/sessions/logout-all")
    assert done.status_code == 302 and "/login" in done.headers["Location"]
    assert wait_closed(laptop_socket)
    assert not logged_in(server, laptop) and not logged_in(server, here)
    assert refused(server, laptop_cookies)
    assert refused(server, {"remember_token": laptop_cookies["remember_token"]})


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(server):
    laptop, here = browser(server, "alice"), browser(server, "alice")
    laptop_cookies = laptop.cookies.get_dict()
    laptop_socket = open_socket(server, laptop_cookies)
    token = csrf_of(here.get(f"{server.url}/account", timeout=10).text)

    wrong = here.post(f"{server.url}/api/v1/me/password", headers={"X-CSRFToken": token}, timeout=10,
                      json={"current_password": "not-the-password", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    assert laptop_socket.connected and logged_in(server, laptop)

    done = here.post(f"{server.url}/api/v1/me/password", headers={"X-CSRFToken": token}, timeout=10,
                     json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert done.status_code == 200 and done.json() == {"revoked_sessions": 1}
    assert wait_closed(laptop_socket)
    assert not logged_in(server, laptop) and refused(server, laptop_cookies)
    assert logged_in(server, here)
    open_socket(server, here.cookies.get_dict()).disconnect()
    old = requests.post(f"{server.url}/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    assert logged_in(server, browser(server, "alice", NEW_PASSWORD))


# --- The cluster mode needs a key from the operator; CLI commands do not ---------------------

def keyless_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "CHORUS_ENV"}}
    return {**env, "PORT": str(free_port()), **extra}


@pytest.mark.parametrize("args", [
    [sys.executable, "wsgi.py"],
    [sys.executable, "-m", "celery", "-A", "celery_worker.celery", "worker", "--loglevel=WARNING"],
], ids=["server", "worker"])
def test_the_cluster_mode_refuses_to_start_without_a_key(tmp_path, args):
    env = keyless_env(REDIS_URL=f"{REDIS_BASE_URL}/0", DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
                      SECRET_KEY_FILE=str(tmp_path / "secret_key"))
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot start: SECRET_KEY must be set in the cluster mode" in lines[0]
    assert not (tmp_path / "secret_key").exists()


def test_cli_commands_need_no_key_in_the_cluster_mode(tmp_path):
    require_services()
    import psycopg2

    from tests.integration.cluster import PG_ADMIN_URL

    name = f"chorus_keyless_{os.getpid()}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        # PostgreSQL alone is the cluster mode (no Redis: seed-demo's tasks then run in-process).
        env = keyless_env(DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}",
                          SECRET_KEY_FILE=str(tmp_path / "secret_key"))
        env.pop("REDIS_URL", None)
        for command in (["db", "upgrade"], ["seed-demo"]):
            done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *command], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        assert "Demo ready" in done.stdout
        assert not (tmp_path / "secret_key").exists()
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
