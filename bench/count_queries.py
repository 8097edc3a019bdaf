"""SQL statements per socket `send` and per history page: a noise-free figure for the hot paths.

    .venv/bin/python bench/count_queries.py [CHECKOUT]

Runs in-process (SQLite, Socket.IO test client) against this checkout, or another one
(e.g. `git archive` of an older commit) to compare before and after a change.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root))
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)

from sqlalchemy import event  # noqa: E402

from app import create_app  # noqa: E402
from app.actions import rooms, users  # noqa: E402
from app.config import TestConfig  # noqa: E402
from app.extensions import db, socketio  # noqa: E402


def main() -> None:
    """Print the statements one send and one history page issue."""
    with tempfile.TemporaryDirectory() as tmp:
        config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/q.db"})
        app = create_app(config)
        with app.app_context():
            db.create_all()
            alice = users.do_register_user("alice", "password-1", check_open=False)
            bob = users.do_register_user("bob", "password-1", check_open=False)
            room = rooms.do_create_room(alice, "general")
            rooms.do_invite_user(alice, room.id, "bob")
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
        print(f"{root}:")
        print(f"  socket send: {len(sent)} statements")
        for s in sent:
            print(f"    {s}")
        print(f"  history page: {len(page)} statements")
        for s in page:
            print(f"    {s}")
        _ = bob


if __name__ == "__main__":
    main()
