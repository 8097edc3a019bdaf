"""threads: replies, quote-replies, root summaries, follows

Revision ID: f2a8d61c0b37
Revises: e7b3c9a14f20
Create Date: 2026-12-07 20:30:00.000000

Existing messages are all top-level: no thread, no quote, no replies.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f2a8d61c0b37'
down_revision = 'e7b3c9a14f20'
branch_labels = None
depends_on = None

KEEP_AUTOINCREMENT = {'sqlite_autoincrement': True}
UNNOTIFIED = 'thread_root_id IS NOT NULL AND notified_at IS NULL'


def upgrade():
    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.add_column(sa.Column('thread_root_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('also_in_room', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('quote_of_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reply_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_reply_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('thread_repliers', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_messages_thread_root_id_messages'), 'messages',
                                    ['thread_root_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_messages_quote_of_id_messages'), 'messages',
                                    ['quote_of_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_messages_thread_root_id_id', ['thread_root_id', 'id'], unique=False)
        batch_op.create_index('ix_messages_unnotified_replies', ['created_at'], unique=False,
                              postgresql_where=sa.text(UNNOTIFIED), sqlite_where=sa.text(UNNOTIFIED))

    op.create_table(
        'thread_follows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('root_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('following', sa.Boolean(), nullable=False),
        sa.Column('last_read_id', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['root_id'], ['messages.id'], name=op.f('fk_thread_follows_root_id_messages'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_thread_follows_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_thread_follows')),
        sa.UniqueConstraint('root_id', 'user_id', name=op.f('uq_thread_follows_root_id_user_id')),
    )
    op.create_index('ix_thread_follows_user_id_following', 'thread_follows', ['user_id', 'following'],
                    unique=False)


def downgrade():
    op.drop_index('ix_thread_follows_user_id_following', table_name='thread_follows')
    op.drop_table('thread_follows')
    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.drop_index('ix_messages_unnotified_replies', postgresql_where=sa.text(UNNOTIFIED),
                            sqlite_where=sa.text(UNNOTIFIED))
        batch_op.drop_index('ix_messages_thread_root_id_id')
        batch_op.drop_constraint(batch_op.f('fk_messages_quote_of_id_messages'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_messages_thread_root_id_messages'), type_='foreignkey')
        batch_op.drop_column('notified_at')
        batch_op.drop_column('thread_repliers')
        batch_op.drop_column('last_reply_at')
        batch_op.drop_column('reply_count')
        batch_op.drop_column('quote_of_id')
        batch_op.drop_column('also_in_room')
        batch_op.drop_column('thread_root_id')
