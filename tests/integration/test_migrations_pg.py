"""The migrations on PostgreSQL: from empty to head, down to base and up again, matching the models."""
import uuid

import psycopg2
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.config import TestConfig
from app.extensions import db
from tests.integration.cluster import PG_ADMIN_URL, ROOT, require_services


@pytest.fixture
def pg_app():
    require_services()
    name = f"chorus_mig_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url.replace("postgresql://", "postgresql+psycopg2://")})
    app = create_app(config)
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_upgrade_downgrade_upgrade_on_postgresql(pg_app):
    directory = str(ROOT / "migrations")
    with pg_app.app_context():
        upgrade(directory=directory)
        tables = set(db.inspect(db.engine).get_table_names())
        assert set(db.metadata.tables) <= tables
        downgrade(directory=directory, revision="base")
        assert set(db.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(directory=directory)
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
        assert diff == []
