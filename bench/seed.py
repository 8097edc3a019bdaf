"""Fast seeding: users, bearer tokens, rooms and memberships in a few bulk inserts.

Rows go into the models' tables in bulk, with one password hash computed once for
everyone (scrypt per user would take minutes for 10,000 users) and tokens made here,
stored as their SHA-256 digests exactly as `actions.users.do_create_api_token` stores them.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import MetaData, create_engine, insert, inspect, select, text
from werkzeug.security import generate_password_hash


PASSWORD = "bench-password-1"


@dataclass
class Team:
    """Who was seeded: users (id, username, token) and rooms (id, member user ids)."""

    users: list[tuple[int, str, str]] = field(default_factory=list)
    rooms: list[tuple[int, list[int]]] = field(default_factory=list)
    dms: list[tuple[int, list[int]]] = field(default_factory=list)

    def write_baseline_members(self, path: Path) -> Path:
        """The baseline server's view of the same users, tokens and rooms."""
        rooms_of: dict[int, list[int]] = {uid: [] for uid, _, _ in self.users}
        for room_id, members in self.rooms:
            for uid in members:
                rooms_of[uid].append(room_id)
        data = {
            "tokens": {token: uid for uid, _, token in self.users},
            "users": {uid: [name, rooms_of[uid]] for uid, name, _ in self.users},
        }
        path.write_text(json.dumps(data))
        return path


def _filled(table, rows: list[dict]) -> list[dict]:
    """rows with a neutral value ('' / False / 0) for each NOT NULL column of table that they leave out
    and that has no server default (columns a migration added with a default it then dropped)."""
    from sqlalchemy import Boolean, Integer, String

    extra = {}
    for col in table.columns:
        if col.nullable or col.server_default is not None or col.primary_key or (rows and col.name in rows[0]):
            continue
        if isinstance(col.type, String):
            extra[col.name] = ""
        elif isinstance(col.type, Boolean):
            extra[col.name] = False
        elif isinstance(col.type, Integer):
            extra[col.name] = 0
    return [{**extra, **row} for row in rows] if extra else rows


def _engine(database_url: str):
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg2://" + database_url[len("postgresql://"):]
    return create_engine(database_url)


def seed(database_url: str, n_users: int, rooms: list[list[int]], *, prefix: str = "b",
         dms: list[list[int]] | None = None) -> Team:
    """Create n_users users with tokens, one room per list of user indices (the first owns it), and
    one direct conversation per list in dms (kind "dm", keyed as app.actions.dms keys it)."""
    now = datetime.now(timezone.utc)
    password_hash = generate_password_hash(PASSWORD)
    tokens = [secrets.token_urlsafe(24) for _ in range(n_users)]
    engine = _engine(database_url)
    team = Team()
    with engine.begin() as conn:
        # The tables as the database has them (migrated by whichever checkout is measured),
        # so columns added since then are left to their server defaults.
        meta = MetaData()
        meta.reflect(conn, only=["users", "api_tokens", "rooms", "memberships"])
        users_t, tokens_t, rooms_t, members_t = (meta.tables[t] for t in ("users", "api_tokens", "rooms", "memberships"))
        names = [f"{prefix}{i}" for i in range(n_users)]
        conn.execute(insert(users_t), _filled(users_t, [
            {"username": n, "username_key": n.lower(), "display_name": "", "password_hash": password_hash,
             "is_admin": False, "is_disabled": False, "created_at": now}
            for n in names
        ]))
        ids = dict(conn.execute(select(users_t.c.username, users_t.c.id).where(users_t.c.username.in_(names))).all())
        user_ids = [ids[n] for n in names]
        conn.execute(insert(tokens_t), [
            {"user_id": uid, "token_hash": hashlib.sha256(tok.encode()).hexdigest(), "name": "bench",
             "created_at": now}
            for uid, tok in zip(user_ids, tokens)
        ])
        room_names = [f"{prefix}-room-{k}" for k in range(len(rooms))]
        if rooms:
            conn.execute(insert(rooms_t), _filled(rooms_t, [
                {"name": n, "name_key": n.lower(), "topic": "", "is_private": False,
                 "owner_id": user_ids[members[0]], "created_at": now}
                for n, members in zip(room_names, rooms)
            ]))
            room_ids = dict(conn.execute(select(rooms_t.c.name, rooms_t.c.id).where(rooms_t.c.name.in_(room_names))).all())
            conn.execute(insert(members_t), [
                {"room_id": room_ids[n], "user_id": user_ids[i], "joined_at": now, "last_read_message_id": 0}
                for n, members in zip(room_names, rooms) for i in members
            ])
            team.rooms = [(room_ids[n], [user_ids[i] for i in members]) for n, members in zip(room_names, rooms)]
        if dms:
            # As app.actions.dms.do_open_dm makes them: private, nameless, no owner, the sorted ids as key.
            keys = [",".join(str(i) for i in sorted({user_ids[k] for k in people})) for people in dms]
            conn.execute(insert(rooms_t), _filled(rooms_t, [
                {"name": "", "name_key": "", "topic": "", "is_private": True, "owner_id": None, "created_at": now,
                 "kind": "dm", "dm_key": key}
                for key in keys
            ]))
            dm_ids = dict(conn.execute(select(rooms_t.c.dm_key, rooms_t.c.id).where(rooms_t.c.kind == "dm")).all())
            conn.execute(insert(members_t), [
                {"room_id": dm_ids[key], "user_id": user_ids[i], "joined_at": now, "last_read_message_id": 0}
                for key, people in zip(keys, dms) for i in people
            ])
            team.dms = [(dm_ids[key], [user_ids[i] for i in people]) for key, people in zip(keys, dms)]
    engine.dispose()
    team.users = list(zip(user_ids, names, tokens))
    return team


def load_history(database_url: str, room_id: int, author_ids: list[int], count: int) -> int:
    """Insert count messages into one room with INSERT ... SELECT generate_series (PostgreSQL).

    Every hundredth message mentions the next author, so history pages carry mentions.
    Returns the highest message id.
    """
    engine = _engine(database_url)
    authors = "ARRAY[" + ",".join(str(a) for a in author_ids) + "]"
    n = len(author_ids)
    # A per-room sequence number, where the schema has one.
    columns = {t: {c["name"] for c in inspect(engine).get_columns(t)} for t in ("messages", "rooms", "mentions")}
    has_seq = "seq" in columns["messages"]
    with engine.begin() as conn:
        conn.execute(text(f"""
            INSERT INTO messages (room_id, author_id, body, html, client_id, created_at{", seq" if has_seq else ""})
            SELECT :room, ({authors})[1 + g % {n}],
                   'history message ' || g || ' lorem ipsum dolor sit amet',
                   '<p>history message ' || g || ' lorem ipsum dolor sit amet</p>',
                   NULL, now() - make_interval(secs => (:count - g)){", g" if has_seq else ""}
            FROM generate_series(1, :count) AS g
        """), {"room": room_id, "count": count})
        if "last_seq" in columns["rooms"]:
            conn.execute(text("UPDATE rooms SET last_seq = :count WHERE id = :room"), {"room": room_id, "count": count})
        # Mark them handled (where the schema tracks it), as the mention task would have.
        handled = "handled_at" in columns["mentions"]
        conn.execute(text(f"""
            INSERT INTO mentions (message_id, user_id{", handled_at" if handled else ""})
            SELECT m.id, ({authors})[1 + (m.id + 1) % {n}]{", now()" if handled else ""}
            FROM messages m WHERE m.room_id = :room AND m.id % 100 = 0
              AND ({authors})[1 + (m.id + 1) % {n}] <> m.author_id
        """), {"room": room_id})
        top = conn.execute(text("SELECT max(id) FROM messages WHERE room_id = :room"), {"room": room_id}).scalar_one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE messages"))
        conn.execute(text("VACUUM ANALYZE mentions"))
    engine.dispose()
    return top
