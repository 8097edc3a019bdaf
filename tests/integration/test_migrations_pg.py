"""The migrations on PostgreSQL: from empty to head, down to base and up again, matching the models."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app.extensions import db
from tests.integration import cluster
from tests.integration.cluster import ROOT


@pytest.fixture
def pg_app():
    with cluster.pg_app("chorus_mig") as app:
        yield app


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
