"""message changes: one change sequence per room, edits with history, deletes, reactions

Revision ID: e7b3c9a14f20
Revises: d4a11e5ca1e2
Create Date: 2026-12-07 18:00:00.000000

Every visible change in a room takes the room's next `last_rev`; a message's `rev` is the
number of its latest change. Existing messages had one change each (their creation), so
their rev is their seq and each room's last_rev its last_seq.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e7b3c9a14f20'
down_revision = 'd4a11e5ca1e2'
branch_labels = None
depends_on = None

KEEP_AUTOINCREMENT = {'sqlite_autoincrement': True}


def upgrade():
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_rev', sa.Integer(), server_default='0', nullable=False))
    op.execute('UPDATE rooms SET last_rev = last_seq')

    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.add_column(sa.Column('rev', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deleted_by_id', sa.Integer(), nullable=True))
    op.execute('UPDATE messages SET rev = seq')
    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.alter_column('rev', existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_messages_room_id_rev'), ['room_id', 'rev'])
        batch_op.create_foreign_key(batch_op.f('fk_messages_deleted_by_id_users'), 'users', ['deleted_by_id'],
                                    ['id'], ondelete='SET NULL')

    op.create_table(
        'message_edits',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('editor_id', sa.Integer(), nullable=True),
        sa.Column('previous_body', sa.Text(), nullable=False),
        sa.Column('previous_html', sa.Text(), nullable=False),
        sa.Column('edited_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['editor_id'], ['users.id'], name=op.f('fk_message_edits_editor_id_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_edits_message_id_messages'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_edits')),
    )
    op.create_index(op.f('ix_message_edits_message_id'), 'message_edits', ['message_id'], unique=False)

    op.create_table(
        'reactions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('emoji', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_reactions_message_id_messages'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_reactions_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reactions')),
        sa.UniqueConstraint('message_id', 'user_id', 'emoji', name=op.f('uq_reactions_message_id_user_id_emoji')),
    )
    op.create_index(op.f('ix_reactions_user_id'), 'reactions', ['user_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_reactions_user_id'), table_name='reactions')
    op.drop_table('reactions')
    op.drop_index(op.f('ix_message_edits_message_id'), table_name='message_edits')
    op.drop_table('message_edits')
    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_messages_deleted_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_messages_room_id_rev'), type_='unique')
        batch_op.drop_column('deleted_by_id')
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('edited_at')
        batch_op.drop_column('rev')
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_column('last_rev')
