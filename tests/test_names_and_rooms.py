"""Room names and ids that reveal nothing private, and names that cannot pass for someone else."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from flask_migrate import downgrade, upgrade
from sqlalchemy.exc import IntegrityError

import app.actions.rooms as room_actions
from app import create_app
from app.actions import messages, notifications, rooms
from app.config import TestConfig
from app.extensions import db
from app.lib import validation
from app.lib.errors import ChatError
from app.models import Membership, Message, Room, User
from app.queries import rooms as room_queries

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
        listed = room_queries.get_rooms_for_user(row(User, bob))
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

        # Read now, and end the session's transaction: the downgrade alters rooms from a
        # connection of its own, and (on SQLite) the refused one still undoes later revisions.
        public_id = public.id
        db.session.remove()
        # Down again: refused, naming the shared names, while two rooms share one.
        # (Alembic's own command: Flask-Migrate turns the error into an exit.)
        alembic_config = migrated_app.extensions["migrate"].migrate.get_config(MIGRATIONS)
        with pytest.raises(RuntimeError, match=re.escape("these names (ignoring case): general, secret.")):
            alembic_command.downgrade(alembic_config, "c3a5e55100a1")
        db.session.execute(sa.text("UPDATE rooms SET name = 'secret-2', name_key = 'secret-2' WHERE id = :id"),
                           {"id": public_id})
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


# --- cleaning: what survives in names, topics and bodies ---------------------------------------

FLAG_ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


@pytest.mark.parametrize(
    ("raw", "text", "name"),
    [
        # bidi embeddings, overrides and isolates: gone everywhere
        ("Alice\u202eremmargorp", "Aliceremmargorp", "Aliceremmargorp"),
        ("a\u202ab\u202bc\u202cd\u202de", "abcde", "abcde"),
        ("x\u2066y\u2067z\u2068w\u2069", "xyzw", "xyzw"),
        # bidi marks: kept in prose (RTL text with LTR words needs them), not in names
        ("\u05e9\u05dc\u05d5\u05dd\u200f OK", "\u05e9\u05dc\u05d5\u05dd\u200f OK", "\u05e9\u05dc\u05d5\u05dd OK"),
        ("a\u200eb\u061cc", "a\u200eb\u061cc", "abc"),
        # C0 (but tab and newline) and C1 controls
        ("a\x00b\x1bc\x7fd", "abcd", "abcd"),
        ("a\x85b\x9bc\x80d\x9fe", "abcde", "abcde"),
        ("tab\there\nnext", "tab\there\nnext", "tab here next"),
        ("line\u2028sep", "line\nsep", "line sep"),
        # zero-width space, word joiner, BOM: gone; ZWNJ and ZWJ kept in prose only
        ("ze\u200bro\u2060wi\ufeffdth", "zerowidth", "zerowidth"),
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
         "\u0645\u06cc\u062e\u0648\u0627\u0647\u0645"),
        (FAMILY, FAMILY, "\U0001f468\U0001f469\U0001f467"),
        # other format characters: soft hyphen, invisible operators, interlinear annotation
        ("soft\u00adhyphen", "softhyphen", "softhyphen"),
        ("f\u2061(x)\u2062y", "f(x)y", "f(x)y"),
        ("\ufff9shown\ufffahidden\ufffb", "shownhidden", "shownhidden"),
        # tag characters: hidden text, except inside an emoji flag (in prose)
        ("hi\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065", "hi", "hi"),
        (f"go {FLAG_ENGLAND}!", f"go {FLAG_ENGLAND}!", "go \U0001f3f4!"),
        # visible Arabic number sign stays in prose
        ("\u0600\u0661\u0662", "\u0600\u0661\u0662", "\u0661\u0662"),
        # NFC
        ("Cafe\u0301", "Caf\u00e9", "Caf\u00e9"),
        # letters of every script stay
        ("Ζωή Иван 李小龙 أحمد हिन्दी", "Ζωή Иван 李小龙 أحمد हिन्दी", "Ζωή Иван 李小龙 أحمد हिन्दी"),
        # invisible "letters" and variation selectors: kept in prose, not in names
        ("\u3164\uffa0", "\u3164\uffa0", ""),
        ("A\ufe0fl\u034fi\U000e0100ce", "A\ufe0fl\u034fi\U000e0100ce", "Alice"),
        # whitespace: one space in names
        ("  Alice \u3000\u00a0 Archer  ", "  Alice \u3000\u00a0 Archer  ", "Alice Archer"),
    ],
)
def test_cleaning_each_class(raw, text, name):
    assert validation.clean_text(raw) == text
    assert validation.clean_display_name(raw) == name


@pytest.mark.parametrize(
    ("name", "looks_like"),
    [
        ("alice", "alice"), ("ALICE", "alice"), ("Alice", "alice"), ("@alice", "alice"),
        ("\u0430lice", "alice"),  # Cyrillic а
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth
        ("\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e", "alice"),  # mathematical bold
        ("al\u200bice", "alice"),  # with a zero-width space
        ("aIice", "alice"),  # capital I for l
        ("b0b", "bob"), ("B0B", "bob"), ("paypa1", "paypal"),
    ],
)
def test_look_alikes_share_a_skeleton(name, looks_like):
    assert validation.name_skeletons(name) & validation.name_skeletons(looks_like)


@pytest.mark.parametrize(("a", "b"), [("alice", "alicia"), ("bob", "rob"), ("Alice Archer", "alice"), ("Zoë", "zoe")])
def test_different_names_have_different_skeletons(a, b):
    assert not validation.name_skeletons(a) & validation.name_skeletons(b)


def test_bodies_and_topics_are_cleaned_where_they_are_stored(app, make_user, make_room):
    alice = make_user("alice")
    with app.app_context():
        room = rooms.do_create_room(row(User, alice), "ops", "Deploys \u202eevil\u202c here\x85")
        assert room.topic == "Deploys evil here"
        sent = messages.do_send_message(
            row(User, alice), room.id, f"see moc.\u202elive\u202c {FAMILY} ze\u200bro \x9b{FLAG_ENGLAND}"
        ).message
        assert sent.body == f"see moc.live {FAMILY} zero {FLAG_ENGLAND}"
        assert "\u202e" not in sent.html and "\u200b" not in sent.html


# --- registering a name that passes for someone else ---------------------------------------------

@pytest.mark.parametrize("display_name", ["alice", "ALICE", "@alice", "\u0430lice", "\uff41lice", "a\u200blice", "aIice"])
def test_a_display_name_that_passes_for_another_username_is_refused(app, make_user, fast_hashing, display_name):
    make_user("alice", display_name="Alice Archer")
    response = app.test_client().post("/api/v1/users", json={
        "username": "mallory", "password": "long-enough-pw", "display_name": display_name,
    })
    assert response.status_code == 409, response.get_data(as_text=True)
    assert response.get_json()["error"] == {
        "code": "conflict", "message": "That display name looks like the username @alice.", "field": "display_name",
    }


@pytest.mark.parametrize("username", ["b0b", "B0B", "BOB"])
def test_a_username_that_passes_for_another_is_refused(app, make_user, fast_hashing, username):
    make_user("bob")
    response = app.test_client().post("/api/v1/users", json={"username": username, "password": "long-enough-pw"})
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "username"


def test_own_username_other_display_names_and_real_names_are_fine(app, make_user, fast_hashing):
    """Display names may repeat (people share names): the @username beside them tells them apart."""
    make_user("alice", display_name="Alice Archer")
    client = app.test_client()
    for username, display_name in [("alice2", "ALICE2"), ("mallory", "Alice Archer"), ("zoe", "Zo\u00eb \u0417\u043e\u044f")]:
        response = client.post("/api/v1/users", json={
            "username": username, "password": "long-enough-pw", "display_name": display_name,
        })
        assert response.status_code == 201, response.get_data(as_text=True)
    response = client.post("/api/v1/users", json={
        "username": "eve", "password": "long-enough-pw", "display_name": "\u202eAlice\u200b Archer\u2066",
    })
    assert response.status_code == 201
    assert response.get_json()["display_name"] == "Alice Archer"


# --- the username beside the display name -------------------------------------------------------

def test_the_author_line_and_the_notifications_show_the_username(app, make_user, make_room, login):
    alice = make_user("alice", display_name="Alice Archer")
    mallory = make_user("mallory", display_name="Alice Archer")
    plain = make_user("bob", display_name="")
    room = make_room(alice, "general", members=(mallory, plain))
    with app.app_context():
        for user, body in ((alice, "real"), (mallory, "fake @alice"), (plain, "plain")):
            messages.do_send_message(row(User, user), room.id, body)
        mention = db.session.execute(sa.select(Message).filter_by(body="fake @alice")).scalar_one()
        notifications.do_create_mention_notifications(mention.id)
    client = login(alice)
    html = client.get(f"/rooms/{room.id}").get_data(as_text=True)
    lines = re.findall(r'<span class="msg-author" title="@(\w+)">([^<]*)</span>\s*(<span class="msg-handle">[^<]*</span>)?', html)
    assert lines == [
        ("alice", "Alice Archer", '<span class="msg-handle">@alice</span>'),
        ("mallory", "Alice Archer", '<span class="msg-handle">@mallory</span>'),
        ("bob", "bob", ""),  # no display name: the username once
    ]
    assert re.search(r'<span class="member-name">Alice Archer</span>\s*<span class="member-handle">@mallory</span>', html)
    page = client.get("/notifications").get_data(as_text=True)
    assert re.search(r'<strong class="notification-author">Alice Archer</strong>\s*'
                     r'<span class="notification-handle">@mallory</span>', page)
