"""The Alembic migrations build the schema the models describe, and can be undone."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.models import User

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


@pytest.fixture
def bare_app(tmp_path, keep_logging):
    """An app on an empty SQLite file: no create_all, the migrations build everything."""
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'migrated.db'}"})
    app = create_app(config)
    yield app
    with app.app_context():
        db.engine.dispose()


def tables(app) -> set[str]:
    """The tables in the app's database, Alembic's own left out."""
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def schema_differences(app) -> list:
    """What autogenerate would change to make the database match the models."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True, "render_as_batch": True}
        )
        return compare_metadata(context, db.metadata)


def test_upgrade_creates_every_table(bare_app):
    assert tables(bare_app) == set()
    with bare_app.app_context():
        upgrade(directory=MIGRATIONS)
    assert tables(bare_app) == set(db.metadata.tables)
    assert {"users", "api_tokens", "rooms", "memberships", "messages", "mentions", "notifications"} <= tables(bare_app)


def test_models_and_migrations_agree(bare_app):
    with bare_app.app_context():
        upgrade(directory=MIGRATIONS)
    assert schema_differences(bare_app) == []


def test_downgrade_to_base_and_upgrade_again(bare_app):
    with bare_app.app_context():
        upgrade(directory=MIGRATIONS)
        downgrade(directory=MIGRATIONS, revision="base")
    assert tables(bare_app) == set()
    with bare_app.app_context():
        upgrade(directory=MIGRATIONS)
    assert tables(bare_app) == set(db.metadata.tables)
    assert schema_differences(bare_app) == []


def test_migrated_schema_enforces_the_constraints(bare_app):
    """Unique keys and foreign keys come from the migration, not only from the models."""
    with bare_app.app_context():
        upgrade(directory=MIGRATIONS)
        inspector = sa.inspect(db.engine)
        uniques = {
            table: {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
            for table in ("users", "rooms", "memberships", "messages", "mentions", "notifications", "api_tokens")
        }
        assert ("username_key",) in uniques["users"]
        # Room names are unique among public rooms only: a partial unique index.
        public_names = {i["name"]: i for i in inspector.get_indexes("rooms")}["uq_rooms_public_name_key"]
        assert public_names["unique"] and public_names["column_names"] == ["name_key"]
        assert "is_private" in str(public_names["dialect_options"]["sqlite_where"])
        assert ("room_id", "user_id") in uniques["memberships"]
        assert ("author_id", "client_id") in uniques["messages"]
        assert ("message_id", "user_id") in uniques["mentions"]
        assert ("user_id", "message_id", "kind") in uniques["notifications"]
        assert ("token_hash",) in uniques["api_tokens"]
        messages_sql = db.session.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE name = 'messages'")
        ).scalar_one()
        # Message ids are the history cursor: SQLite must never hand out a deleted id again.
        assert "AUTOINCREMENT" in messages_sql.upper()
        foreign_keys = {(fk["referred_table"], tuple(fk["constrained_columns"]))
                        for fk in inspector.get_foreign_keys("notifications")}
        assert foreign_keys == {("users", ("user_id",)), ("rooms", ("room_id",)), ("messages", ("message_id",))}


def test_migrated_database_serves_the_app(bare_app, fast_hashing):
    """A quick round trip on the migrated schema: register, create a room, send."""
    from app.actions import messages, rooms, users

    with bare_app.app_context():
        upgrade(directory=MIGRATIONS)
        alice = users.do_register_user("alice", "long-enough-pw")
        room = rooms.do_create_room(alice, "general")
        sent = messages.do_send_message(alice, room.id, "hello, migrated world")
        assert sent.created and sent.message.id == 1


def test_data_survives_every_migration_down_and_up(bare_app, fast_hashing):
    """SQLite rebuilds tables to alter them: nothing pointing at a rebuilt table may be lost."""
    from app.actions import memberships, messages, notifications, rooms, users
    from app.models import Mention, Message, Membership, Notification

    def counts() -> dict:
        return {model.__tablename__: db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
                for model in (Membership, Message, Mention, Notification)}

    with bare_app.app_context():
        upgrade(directory=MIGRATIONS)
        alice = users.do_register_user("alice", "long-enough-pw")
        bob = users.do_register_user("bob", "long-enough-pw")
        room = rooms.do_create_room(alice, "general")
        memberships.do_invite_user(alice, room.id, "bob")
        sent = messages.do_send_message(alice, room.id, "@bob have a look")
        notifications.do_create_mention_notifications(sent.message.id)
        before, bob_id = counts(), bob.id
        assert before == {"memberships": 2, "messages": 1, "mentions": 1, "notifications": 1}
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision="9ae37e631f50")  # the first schema
        upgrade(directory=MIGRATIONS)
        assert counts() == before
        assert db.session.get(User, bob_id).username == "bob"
