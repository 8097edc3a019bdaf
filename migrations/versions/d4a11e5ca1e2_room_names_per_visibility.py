"""room names unique among public rooms only

Revision ID: d4a11e5ca1e2
Revises: c3a5e55100a1
Create Date: 2026-12-02 10:00:00.000000

A globally unique rooms.name_key made "create a room named X" answer 409 when a private
room X existed, which told anyone the name of a private room they could not see. Public
names stay unique ignoring case (a partial unique index); private names need not be unique.

Existing rooms keep their ids; new rooms get random ones (app.models.rooms.random_room_id).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4a11e5ca1e2'
down_revision = 'c3a5e55100a1'
branch_labels = None
depends_on = None

PUBLIC_ONLY = sa.text('NOT is_private')


def upgrade():
    # On SQLite a copy of the table; migrations/env.py turns foreign keys off around it.
    with op.batch_alter_table('rooms', schema=None) as batch_op:
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
    # On SQLite a copy of the table; migrations/env.py turns foreign keys off around it.
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_index('uq_rooms_public_name_key')
        batch_op.create_unique_constraint(batch_op.f('uq_rooms_name_key'), ['name_key'])

