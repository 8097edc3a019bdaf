"""SQLite's write-ahead log in the embedded mode: checkpoints off the connections that serve.

SQLite copies the log back into the database file (a checkpoint, with an fsync) from
whichever connection commits when the log passes 1,000 pages. In a server whose sockets
share one eventlet hub, that commit stopped every socket for as long as the checkpoint
took. The server turns automatic checkpoints off on its own connections and runs them
here instead: every SQLITE_CHECKPOINT_SECONDS, through `run_blocking`, which the entry
point supplies for its async mode (eventlet's thread pool in `wsgi.py`), so the hub keeps
serving while the checkpoint reads, writes and syncs in another thread.
"""
from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable

from flask import Flask

from app.extensions import db, socketio

log = logging.getLogger(__name__)


class Checkpointer:
    """One connection of its own that checkpoints the log without waiting for anyone."""

    def __init__(self, path: str, run_blocking: Callable[[Callable[[], Any]], Any]) -> None:
        self.path = path
        self.run_blocking = run_blocking
        self._conn: sqlite3.Connection | None = None

    def _checkpoint(self) -> tuple[int, int, int]:
        if self._conn is None:
            # Used by one thread at a time, not always the same one (a thread pool's).
            self._conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False)
        # PASSIVE: copies what no reader still needs and never makes a writer or reader wait.
        return self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def checkpoint(self) -> tuple[int, int, int]:
        """Run one checkpoint off the calling thread; (busy, log pages, pages copied)."""
        return self.run_blocking(self._checkpoint)

    def run(self, interval: float) -> None:
        """Checkpoint every `interval` seconds, forever."""
        while True:
            socketio.sleep(interval)
            try:
                self.checkpoint()
            except Exception:  # a locked or busy database: the next round tries again
                log.warning("SQLite checkpoint failed", exc_info=True)


def start_background_checkpoints(app: Flask, run_blocking: Callable[[Callable[[], Any]], Any]) -> Checkpointer | None:
    """On SQLite: no automatic checkpoints on the app's connections, a background task instead."""
    interval = app.config["SQLITE_CHECKPOINT_SECONDS"]
    with app.app_context():
        engine = db.engine
        path = engine.url.database
        if engine.dialect.name != "sqlite" or not path or path == ":memory:" or interval <= 0:
            return None
        app.config["SQLITE_WAL_AUTOCHECKPOINT"] = 0
        engine.dispose()  # connections made so far still checkpoint automatically
    checkpointer = Checkpointer(path, run_blocking)
    socketio.start_background_task(checkpointer.run, interval)
    return checkpointer
