"""Room names and ids that reveal nothing private, and names that cannot pass for someone else."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from flask_migrate import downgrade, upgrade
from sqlalchemy.exc import IntegrityError

import app.actions.rooms as room_actions
from app import create_app
from app.actions import rooms
from app.config import TestConfig
from app.extensions import db
from app.lib.errors import ChatError
from app.models import Membership, Message, Room, User

ROOM_ID_MAX = 2**31 - 1  # rooms.id is an INTEGER
MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def row(model, ref):
    """The row behind a plain reference."""
    return db.session.get(model, ref.id)


def bearer_client(app, token_for, user):
    """A test client and headers carrying a bearer token for user."""
    return app.test_client(), {"Authorization": f"Bearer {token_for(user)}"}


# --- room names: unique among public rooms only ------------------------------------------------

def test_a_public_room_may_take_the_name_of_a_private_room(app, make_user, make_room, token_for):
    """Creating "payroll" must not answer 409 because someone's private "Payroll" exists."""
    alice, mallory = make_user("alice"), make_user("mallory")
    secret = make_room(alice, "Payroll", is_private=True)
    client, headers = bearer_client(app, token_for, mallory)
    response = client.post("/api/v1/rooms", json={"name": "payroll"}, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["is_private"] is False and body["id"] != secret.id
    # Mallory sees her room, not Alice's.
    listed = client.get("/api/v1/rooms", headers=headers).get_json()["rooms"]
    assert [(r["id"], r["name"]) for r in listed] == [(body["id"], "payroll")]


def test_private_rooms_may_share_any_name(app, make_user, make_room):
    """Private names are not unique at all: not against public rooms, other owners or the same owner."""
    alice, bob = make_user("alice"), make_user("bob")
    public = make_room(alice, "general")
    same_as_public = make_room(bob, "GENERAL", is_private=True)
    again = make_room(bob, "general", is_private=True)
    other_owner = make_room(alice, "general", is_private=True)
    assert len({public.id, same_as_public.id, again.id, other_owner.id}) == 4
    with app.app_context():
        listed = rooms.get_rooms_for_user(row(User, bob))
        # Bob's two private rooms and the public one, each once; one name, so in id order.
        assert [r["id"] for r in listed] == sorted([public.id, same_as_public.id, again.id])


@pytest.mark.parametrize("duplicate", ["general", "General", "GENERAL"])
def test_public_names_stay_unique_among_public_rooms_ignoring_case(app, make_user, make_room, token_for, duplicate):
    alice, bob = make_user("alice"), make_user("bob")
    make_room(alice, "General")
    client, headers = bearer_client(app, token_for, bob)
    response = client.post("/api/v1/rooms", json={"name": duplicate}, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"] == {
        "code": "conflict", "message": "A room with that name exists.", "field": "name",
    }


def test_the_database_refuses_a_second_public_name_but_not_a_private_one(app, make_user):
    """The partial unique index, not only the check before the insert."""
    alice = make_user("alice")
    with app.app_context():
        db.session.add(Room(name="ops", name_key="ops", is_private=False, owner_id=alice.id))
        db.session.commit()
        db.session.add(Room(name="OPS", name_key="ops", is_private=True, owner_id=alice.id))
        db.session.commit()
        db.session.add(Room(name="Ops", name_key="ops", is_private=False, owner_id=alice.id))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_a_concurrent_public_creation_is_a_conflict_not_a_500(app, make_user, make_room, monkeypatch):
    """The check passes (the other room is not committed yet), the index refuses: still 409."""
    alice, bob = make_user("alice"), make_user("bob")
    make_room(alice, "launch")
    monkeypatch.setattr(room_actions, "_public_name_taken", lambda key, _calls=iter([False]): next(_calls, True))
    with app.app_context():
        with pytest.raises(ChatError) as info:
            rooms.do_create_room(row(User, bob), "launch")
        assert info.value.code == "conflict" and info.value.field == "name"
        assert db.session.execute(sa.select(sa.func.count()).select_from(Room)).scalar_one() == 1


# --- room ids: random, not a counter -----------------------------------------------------------

def test_room_ids_do_not_count_rooms(app, make_user, make_room):
    """Ten rooms in a row: ids spread over the INTEGER range, not 1, 2, 3, ..."""
    alice = make_user("alice")
    ids = [make_room(alice, f"room-{n}", is_private=n % 2 == 0).id for n in range(10)]
    assert all(1 <= i <= ROOM_ID_MAX for i in ids)
    assert len(set(ids)) == 10
    gaps = [abs(b - a) for a, b in zip(ids, ids[1:])]
    # Sequential ids differ by 1; random ones by about 2**31 / 3 on average.
    assert sum(gaps) / len(gaps) > 1_000_000, ids


def test_an_id_collision_draws_again(app, make_user, make_room, monkeypatch):
    alice = make_user("alice")
    first = make_room(alice, "first")
    draws = iter([first.id, first.id, 424242])
    monkeypatch.setattr(room_actions, "random_room_id", lambda: next(draws))
    with app.app_context():
        room = rooms.do_create_room(row(User, alice), "second", "", True)
        assert room.id == 424242
        assert db.session.execute(
            sa.select(Membership.user_id).filter_by(room_id=424242)
        ).scalars().all() == [alice.id]


def test_seed_demo_uses_the_public_general_even_beside_a_private_one(app, make_user, make_room):
    """Room names are no longer keys: the CLI must not pick (or trip over) a private "general"."""
    stranger = make_user("stranger")
    private = make_room(stranger, "general", is_private=True)
    runner = app.test_cli_runner()
    for _ in range(2):  # and again, finding the same public room
        result = runner.invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        generals = db.session.execute(sa.select(Room).filter_by(name_key="general")).scalars().all()
        public = [r for r in generals if not r.is_private]
        assert len(generals) == 2 and len(public) == 1
        members = db.session.execute(sa.select(Membership.user_id).filter_by(room_id=private.id)).scalars().all()
        assert members == [stranger.id]


# --- the migration, on SQLite and on PostgreSQL -------------------------------------------------

@pytest.fixture
def keep_logging():
    """migrations/env.py calls fileConfig, which disables existing loggers: put them back."""
    manager = logging.root.manager
    disabled = {name: lg.disabled for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    root_level, root_handlers = logging.root.level, list(logging.root.handlers)
    yield
    for name, lg in manager.loggerDict.items():
        if isinstance(lg, logging.Logger):
            lg.disabled = disabled.get(name, False)
    logging.root.setLevel(root_level)
    logging.root.handlers[:] = root_handlers


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_app(request, tmp_path, keep_logging):
    """An empty database of each kind, built by the migrations only."""
    if request.param == "sqlite":
        config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'm.db'}"})
        app = create_app(config)
        yield app
        with app.app_context():
            db.engine.dispose()
    else:
        from tests.integration import cluster

        with cluster.pg_app("chorus_names") as app:
            yield app


def _insert(connection, table: str, **values) -> None:
    columns = ", ".join(values)
    connection.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


def test_the_migration_keeps_every_room_and_what_points_at_it(migrated_app):
    """Upgrading rebuilds rooms on SQLite: memberships, messages and names all survive it."""
    when = "2026-01-01 00:00:00+00:00"
    with migrated_app.app_context():
        upgrade(directory=MIGRATIONS, revision="c3a5e55100a1")
        with db.engine.begin() as c:
            _insert(c, "users", id=1, username="alice", username_key="alice", display_name="Alice",
                    password_hash="x", is_admin=False, is_disabled=False, created_at=when)
            _insert(c, "rooms", id=1, name="general", name_key="general", topic="t", is_private=False,
                    owner_id=1, created_at=when, last_seq=1)
            _insert(c, "rooms", id=2, name="secret", name_key="secret", topic="", is_private=True,
                    owner_id=1, created_at=when, last_seq=0)
            _insert(c, "memberships", room_id=1, user_id=1, joined_at=when, last_read_message_id=1)
            _insert(c, "memberships", room_id=2, user_id=1, joined_at=when, last_read_message_id=0)
            _insert(c, "messages", room_id=1, author_id=1, body="hi", html="<p>hi</p>", seq=1, created_at=when)
        upgrade(directory=MIGRATIONS)

        assert db.session.execute(sa.select(sa.func.count()).select_from(Membership)).scalar_one() == 2
        assert db.session.execute(sa.select(Message.body)).scalars().all() == ["hi"]
        assert db.session.get(Room, 1).last_seq == 1
        with db.engine.connect() as c:
            fks = c.exec_driver_sql("PRAGMA foreign_keys").scalar() if db.engine.dialect.name == "sqlite" else 1
        assert fks == 1, "a pooled connection was left without foreign keys"

        alice = db.session.get(User, 1)
        # The private "secret" no longer blocks a public "Secret".
        public = rooms.do_create_room(alice, "Secret")
        rooms.do_create_room(alice, "general", is_private=True)
        with pytest.raises(ChatError):
            rooms.do_create_room(alice, "GENERAL")
        with db.engine.begin() as c, pytest.raises(IntegrityError):
            _insert(c, "rooms", id=3, name="General", name_key="general", topic="", is_private=False,
                    owner_id=1, created_at=when, last_seq=0)

        # Down again: refused, naming the shared names, while two rooms share one.
        # (Alembic's own command: Flask-Migrate turns the error into an exit.)
        alembic_config = migrated_app.extensions["migrate"].migrate.get_config(MIGRATIONS)
        with pytest.raises(RuntimeError, match=re.escape("these names (ignoring case): general, secret.")):
            alembic_command.downgrade(alembic_config, "c3a5e55100a1")
        db.session.execute(sa.text("UPDATE rooms SET name = 'secret-2', name_key = 'secret-2' WHERE id = :id"),
                           {"id": public.id})
        db.session.execute(sa.text("DELETE FROM rooms WHERE name_key = 'general' AND is_private"))
        db.session.commit()
        db.session.remove()
        downgrade(directory=MIGRATIONS, revision="c3a5e55100a1")
        assert db.session.execute(sa.select(sa.func.count()).select_from(Membership)).scalar_one() == 3
        with db.engine.begin() as c, pytest.raises(IntegrityError):
            _insert(c, "rooms", id=4, name="SECRET", name_key="secret", topic="", is_private=True,
                    owner_id=1, created_at=when, last_seq=0)


# --- the admin console ---------------------------------------------------------------------

def test_the_console_lists_rooms_newest_first(app, make_user, make_room, login):
    """Ids no longer follow creation, so the rooms list sorts by creation time."""
    admin = make_user("root", is_admin=True)
    made = [make_room(admin, f"room-{n}").id for n in range(4)]
    page = login(admin).get("/admin/room/")
    assert page.status_code == 200
    shown = [int(i) for i in re.findall(r'<td class="col-id">\s*(\d+)', page.get_data(as_text=True))]
    assert shown == made[::-1]


def test_the_console_has_no_inline_handlers_for_the_csp_to_refuse(app, make_user, login):
    """The users list: actions named in data attributes, run by a same-origin script."""
    admin = make_user("root", is_admin=True)
    make_user("bob")
    html = login(admin).get("/admin/user/").get_data(as_text=True)
    assert re.findall(r"<[^>]+\son[a-z]+\s*=", html) == []
    assert set(re.findall(r'data-admin-action="([a-z_]+)"', html)) == {"disable", "enable", "make_admin"}
    assert '/static/js/admin.js"' in html
