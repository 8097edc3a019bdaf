"""people: direct messages, profiles and status, wildcard policy, notify_due

Revision ID: a91c4d7e5b22
Revises: f2a8d61c0b37
Create Date: 2026-12-07 23:45:00.000000

Existing rooms are ordinary rooms open to wildcards from every member; existing users have no
time zone and no status. `notify_due` replaces the thread-reply-only index of unnotified
messages: replies whose task is still due keep being found by the sweep.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a91c4d7e5b22'
down_revision = 'f2a8d61c0b37'
branch_labels = None
depends_on = None

KEEP_AUTOINCREMENT = {'sqlite_autoincrement': True}
DUE = 'notify_due AND notified_at IS NULL'
UNNOTIFIED_REPLIES = 'thread_root_id IS NOT NULL AND notified_at IS NULL'


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('status_text', sa.String(length=100), server_default='', nullable=False))
        batch_op.add_column(sa.Column('status_emoji', sa.String(length=32), server_default='', nullable=False))
        batch_op.add_column(sa.Column('dnd_until', sa.DateTime(timezone=True), nullable=True))
    # The empty default fills the existing rows only; new users get theirs from the model.
    with op.batch_alter_table('users', schema=None) as batch_op:
        for name in ('time_zone', 'status_text', 'status_emoji'):
            batch_op.alter_column(name, server_default=None)

    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='room', nullable=False))
        batch_op.add_column(sa.Column('dm_key', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('wildcard_policy', sa.String(length=8), server_default='members',
                                      nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_rooms_dm_key'), ['dm_key'])

    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hidden_before_id', sa.Integer(), nullable=True))

    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.add_column(sa.Column('notify_due', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.drop_index('ix_messages_unnotified_replies')
    op.execute('UPDATE messages SET notify_due = (thread_root_id IS NOT NULL)')
    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.create_index('ix_messages_notify_due', ['created_at'], unique=False,
                              postgresql_where=sa.text(DUE), sqlite_where=sa.text(DUE))


def downgrade():
    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.drop_index('ix_messages_notify_due')
        batch_op.create_index('ix_messages_unnotified_replies', ['created_at'], unique=False,
                              postgresql_where=sa.text(UNNOTIFIED_REPLIES),
                              sqlite_where=sa.text(UNNOTIFIED_REPLIES))
        batch_op.drop_column('notify_due')

    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_column('hidden_before_id')

    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_rooms_dm_key'), type_='unique')
        batch_op.drop_column('wildcard_policy')
        batch_op.drop_column('dm_key')
        batch_op.drop_column('kind')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('dnd_until')
        batch_op.drop_column('status_emoji')
        batch_op.drop_column('status_text')
        batch_op.drop_column('time_zone')
