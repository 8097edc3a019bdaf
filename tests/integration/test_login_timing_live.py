"""A real eventlet server: refused logins take as long whoever the username names; forwarded hosts are not origins."""
import statistics
import time

import pytest
import requests

from tests.integration.cluster import embedded_env, embedded_server, free_port, migrate

PASSWORD = "timing-live-pw-1"
TRIES = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """wsgi.py (eventlet) on SQLite with rate limits off, so every login runs to the password check."""
    tmp = tmp_path_factory.mktemp("timing")
    env = embedded_env(tmp / "timing.db", free_port(), SECRET_KEY="timing-live-server-secret-0123456789",
                       RATELIMIT_ENABLED=0, TRUSTED_PROXIES=0)
    migrate(env)
    with embedded_server(env, tmp / "server.log") as running:
        url = running["url"]
        created = requests.post(f"{url}/api/v1/users", json={"username": "alice", "password": PASSWORD})
        assert created.status_code == 201
        token = requests.post(f"{url}/api/v1/auth/token",
                              json={"username": "alice", "password": PASSWORD}).json()["token"]
        yield {"url": url, "token": token}

def _refusal_seconds(session, url, username) -> float:
    started = time.perf_counter()
    response = session.post(f"{url}/api/v1/auth/token", json={"username": username, "password": "not-the-password"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 401, response.text
    return elapsed


def test_a_missing_user_is_refused_as_slowly_as_a_wrong_password(server):
    url = server["url"]
    session = requests.Session()
    names = {"existing": "alice", "missing": "nobody_here", "not a username": "no such user!"}
    for name in names.values():  # warm up: connections, the stand-in hash made on first use
        _refusal_seconds(session, url, name)
    times = {kind: [] for kind in names}
    for _ in range(TRIES):  # interleaved, so a slow moment of the machine hits every kind alike
        for kind, name in names.items():
            times[kind].append(_refusal_seconds(session, url, name))
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    for kind in ("missing", "not a username"):
        ratio = medians[kind] / medians["existing"]
        assert 0.7 <= ratio <= 1.4, (kind, medians)


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    {"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"},
])
def test_a_client_sent_forwarded_host_does_not_make_a_foreign_origin_acceptable(server, headers):
    handshake = requests.get(f"{server['url']}/socket.io/", params={"EIO": "4", "transport": "polling"},
                             headers={**headers, "Authorization": f"Bearer {server['token']}"}, timeout=10)
    assert handshake.status_code == 400, handshake.text
    assert "sid" not in handshake.text
    # The same handshake from the server's own origin is accepted.
    same = requests.get(f"{server['url']}/socket.io/", params={"EIO": "4", "transport": "polling"},
                        headers={"Origin": server["url"]}, timeout=10)
    assert same.status_code == 200 and '"sid"' in same.text
