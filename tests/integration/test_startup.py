"""A server or worker that cannot reach its engines says so in one line and exits 2."""
import os
import subprocess
import sys

import pytest

from tests.integration.cluster import ROOT, free_port

DEAD_REDIS = f"redis://127.0.0.1:{free_port()}/0"
DEAD_PG = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"


def run(args, **env):
    # A valid key, so that what is missing is only the engine under test.
    env.setdefault("SECRET_KEY", "startup-test-secret-key-0123456789abcdef")
    return subprocess.run(
        args, cwd=ROOT, env={**os.environ, "PORT": str(free_port()), **env},
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "part"),
    [
        ({"REDIS_URL": DEAD_REDIS}, "redis unreachable"),
        ({"DATABASE_URL": DEAD_PG}, "database unreachable"),
    ],
)
def test_server_refuses_to_start_without_its_engines(tmp_path, env, part):
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    result = run([sys.executable, "wsgi.py"], **env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chorus: cannot start: ") and part in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_worker_refuses_to_start_without_redis(tmp_path):
    result = run(
        [sys.executable, "-m", "celery", "-A", "celery_worker.celery", "worker", "--loglevel=WARNING"],
        REDIS_URL=DEAD_REDIS, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
    )
    assert result.returncode == 2
    assert "chorus worker: cannot start: redis unreachable" in result.stderr
    assert "Traceback" not in result.stderr
