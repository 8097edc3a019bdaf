"""A cluster per test module: two eventlet servers and a Celery worker on PostgreSQL and Redis."""
import pytest

from tests.integration.cluster import Cluster, require_services


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Servers "a" and "b" and one worker, started from the repository's own entry points."""
    require_services()
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    cluster.create_database()
    try:
        cluster.start_server("a")
        cluster.start_server("b")
        cluster.start_worker()
        yield cluster
    finally:
        cluster.stop_all()
        cluster.drop_database()
