"""A cluster per test module: two eventlet servers and a Celery worker on PostgreSQL and Redis."""
import pytest

from tests.integration.cluster import require_services, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Servers "a" and "b" and one worker, started from the repository's own entry points."""
    require_services()
    with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster
