"""Pooled PostgreSQL connections are checked before use only after sitting idle."""
import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.extensions import db
from tests.integration.cluster import PG_ADMIN_URL, pg_app


def _backend_pid() -> int:
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    db.session.remove()  # back to the pool
    return pid


def _terminate(pid: int) -> None:
    with psycopg2.connect(PG_ADMIN_URL) as admin, admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert cur.fetchone()[0] is True
    admin.close()


def test_a_connection_killed_while_idle_is_replaced_before_use():
    with pg_app("chorus_pool", DB_PING_IDLE_SECONDS=0) as app, app.app_context():
        pid = _backend_pid()
        _terminate(pid)
        # Idle for longer than the threshold: checked, found dead, replaced; no error.
        assert _backend_pid() != pid


def test_a_connection_in_steady_use_is_not_pinged():
    """Within the threshold nothing is checked: the dead connection's first statement fails,
    SQLAlchemy invalidates the pool, and the next statement gets a fresh connection."""
    with pg_app("chorus_pool", DB_PING_IDLE_SECONDS=3600) as app, app.app_context():
        pid = _backend_pid()
        _terminate(pid)
        with pytest.raises(OperationalError):
            _backend_pid()
        db.session.remove()
        assert _backend_pid() != pid
