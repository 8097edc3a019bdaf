"""room names unique among public rooms only

Revision ID: d4a11e5ca1e2
Revises: c3a5e55100a1
Create Date: 2026-12-02 10:00:00.000000

A globally unique rooms.name_key made "create a room named X" answer 409 when a private
room X existed, which told anyone the name of a private room they could not see. Public
names stay unique ignoring case (a partial unique index); private names need not be unique.

Existing rooms keep their ids; new rooms get random ones (app.models.rooms.random_room_id).
"""
from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4a11e5ca1e2'
down_revision = 'c3a5e55100a1'
branch_labels = None
depends_on = None

PUBLIC_ONLY = sa.text('NOT is_private')


def upgrade():
    with _rebuild_rooms() as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_rooms_name_key'), type_='unique')
        batch_op.create_index('uq_rooms_public_name_key', ['name_key'], unique=True,
                              postgresql_where=PUBLIC_ONLY, sqlite_where=PUBLIC_ONLY)


def downgrade():
    # The old schema wants every name unique: refuse, naming them, while rooms share one.
    shared = op.get_bind().execute(sa.text(
        'SELECT name_key FROM rooms GROUP BY name_key HAVING COUNT(*) > 1 ORDER BY name_key'
    )).scalars().all()
    if shared:
        raise RuntimeError(
            'Cannot downgrade: several rooms share each of these names (ignoring case): '
            + ', '.join(shared) + '. Rename all but one of each first.'
        )
    with _rebuild_rooms() as batch_op:
        batch_op.drop_index('uq_rooms_public_name_key')
        batch_op.create_unique_constraint(batch_op.f('uq_rooms_name_key'), ['name_key'])


@contextmanager
def _rebuild_rooms():
    """A batch alteration of rooms that keeps every row that points at a room.

    SQLite alters by copying the table and dropping the old one, and with foreign keys on
    (app/__init__.py turns them on for every connection) that DROP first deletes every
    membership, message and notification (ON DELETE CASCADE). The pragma can only be turned
    off outside a transaction; the connection is then detached from the pool, so that no
    later user of the pool gets a connection without foreign keys.
    """
    bind = op.get_bind()
    guarded = bind.dialect.name == 'sqlite' and bind.exec_driver_sql('PRAGMA foreign_keys').scalar()
    if guarded:
        bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
        if bind.exec_driver_sql('PRAGMA foreign_keys').scalar():
            raise RuntimeError('SQLite cannot turn foreign keys off inside a transaction, and copying '
                               'rooms with them on would delete every room\'s memberships and messages')
        bind.detach()
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        yield batch_op
    if guarded:
        dangling = bind.exec_driver_sql('PRAGMA foreign_key_check').all()
        if dangling:
            raise RuntimeError(f'rows point at missing rows after rebuilding rooms: {dangling[:5]}')
