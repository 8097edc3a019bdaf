"""SQL statements per socket `send` and per history page: a noise-free figure for the hot paths.

    .venv/bin/python bench/count_queries.py [CHECKOUT] [--pg]

Runs in-process (Socket.IO test client) against this checkout, or another one (e.g.
`git archive` of an older commit) to compare before and after a change; on SQLite, or with
--pg on a throw-away PostgreSQL database (CHORUS_BENCH_PG's server, as bench/run.py uses).
"""
from __future__ import annotations

import os
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

USE_PG = "--pg" in sys.argv[1:]
_args = [a for a in sys.argv[1:] if a != "--pg"]
root = Path(_args[0]).resolve() if _args else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root))
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)

from sqlalchemy import event  # noqa: E402

from app import create_app  # noqa: E402
from app.actions import memberships, rooms, users  # noqa: E402
from app.config import TestConfig  # noqa: E402
from app.extensions import db, socketio  # noqa: E402


@contextmanager
def database_url():
    """A SQLite file, or a PostgreSQL database created for the run and dropped after it."""
    if not USE_PG:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/q.db"
        return
    import psycopg2

    admin_url = os.environ.get("CHORUS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"chorus_count_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + f"/{name}"
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> None:
    """Print the statements one send and one history page issue."""
    with database_url() as url:
        config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url})
        app = create_app(config)
        with app.app_context():
            db.create_all()
            alice = users.do_register_user("alice", "password-1", check_open=False)
            bob = users.do_register_user("bob", "password-1", check_open=False)
            room = rooms.do_create_room(alice, "general")
            memberships.do_invite_user(alice, room.id, "bob")
            token = users.do_create_api_token(alice)
            room_id = room.id
        statements: list[str] = []
        with app.app_context():
            engine = db.engine

        @event.listens_for(engine, "before_cursor_execute")
        def _count(_conn, _cursor, statement, *_args):
            statements.append(" ".join(statement.split())[:90])

        client = socketio.test_client(app, auth={"token": token})
        client.emit("send", {"room_id": room_id, "body": "warm up", "client_id": "warm"}, callback=True)
        statements.clear()
        ack = client.emit("send", {"room_id": room_id, "body": "hello **world**", "client_id": "c1"}, callback=True)
        assert ack["ok"], ack
        sent = list(statements)
        http = app.test_client()
        statements.clear()
        r = http.get(f"/api/v1/rooms/{room_id}/messages?before=1000", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.data
        page = list(statements)
        client.disconnect()
        with app.app_context():
            db.engine.dispose()
        print(f"{root} ({'PostgreSQL' if USE_PG else 'SQLite'}):")
        print(f"  socket send: {len(sent)} statements")
        for s in sent:
            print(f"    {s}")
        print(f"  history page: {len(page)} statements")
        for s in page:
            print(f"    {s}")
        _ = bob


if __name__ == "__main__":
    main()
