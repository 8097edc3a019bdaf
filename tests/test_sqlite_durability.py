"""The embedded mode's SQLite: how durable a commit is, and checkpoints off the serving connections."""
from __future__ import annotations

import pytest

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.ops.sqlite_wal import start_background_checkpoints
from app.security import ConfigError
from tests.test_actions import send


def pragma(name: str):
    return db.session.execute(db.text(f"PRAGMA {name}")).scalar()


def test_commits_sync_at_checkpoints_not_every_commit(app):
    with app.app_context():
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1, "NORMAL"
        assert pragma("wal_autocheckpoint") == 1000, "SQLite's own checkpoints unless a server takes them over"


def test_full_durability_is_one_setting_away_and_nonsense_is_refused(tmp_path):
    base = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'full.db'}"}
    full = create_app(type("Cfg", (TestConfig,), {**base, "SQLITE_SYNCHRONOUS": "FULL"}))
    with full.app_context():
        assert pragma("synchronous") == 2
        db.engine.dispose()
    with pytest.raises(ConfigError, match="SQLITE_SYNCHRONOUS"):
        create_app(type("Cfg", (TestConfig,), {**base, "SQLITE_SYNCHRONOUS": "OFF"}))


def test_a_server_checkpoints_in_the_background_instead_of_inside_commits(app, team, monkeypatch):
    calls = []

    def run_blocking(call):
        calls.append(call)
        return call()

    started = []
    monkeypatch.setattr("app.ops.sqlite_wal.socketio.start_background_task",
                        lambda *args: started.append(args))
    checkpointer = start_background_checkpoints(app, run_blocking)
    assert checkpointer is not None and started == [(checkpointer.run, 1.0)]
    with app.app_context():
        assert pragma("wal_autocheckpoint") == 0, "new connections leave checkpoints to the server"
        for i in range(30):
            send(team["alice"], team["room"].id, f"message {i} " + "x" * 2000)
        db.session.commit()
        db.session.close()
    busy, log_pages, copied = checkpointer.checkpoint()
    assert len(calls) == 1, "through the runner the entry point supplied"
    assert busy == 0 and log_pages > 10 and copied == log_pages


def test_no_background_checkpoints_for_other_databases_or_when_turned_off(app):
    app.config["SQLITE_CHECKPOINT_SECONDS"] = 0
    assert start_background_checkpoints(app, lambda call: call()) is None
    with app.app_context():
        assert pragma("wal_autocheckpoint") == 1000
