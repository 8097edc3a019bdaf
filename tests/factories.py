"""factory_boy factories for test setup (tests only: the app writes through app.actions)."""
import factory
from factory.alchemy import SQLAlchemyModelFactory
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import User

PASSWORD = "correct-horse-1"
# Hashing once keeps hundreds of test users cheap.
_PASSWORD_HASH = generate_password_hash(PASSWORD)


class UserFactory(SQLAlchemyModelFactory):
    """A user whose password is PASSWORD."""

    class Meta:
        model = User
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "commit"

    username = factory.Sequence(lambda n: f"user{n}")
    username_key = factory.LazyAttribute(lambda o: o.username.lower())
    display_name = factory.LazyAttribute(lambda o: o.username.title())
    password_hash = _PASSWORD_HASH
    is_admin = False
    is_disabled = False
